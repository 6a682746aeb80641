//! `alexnet summary`.

use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;

use super::BackendArgs;
use super::config_flags::{Network, SettingFlags};
use crate::backend::{Devices, InferenceTask};
use crate::summary;

/// Flags of `alexnet summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Input side (d2l: 224).
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    #[command(flatten)]
    pub network: SettingFlags<Network>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The layer table on the chosen backend.
pub struct SummaryTask<'a>(pub &'a SummaryArgs);

impl InferenceTask for SummaryTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let config = super::model_config(&self.0.network, self.0.resize)?;
        let (rows, parameters) = summary::layer_table::<B>(&config, &devices.main)?;
        print!("{}", summary::format_table(&rows, parameters));
        Ok(())
    }
}
