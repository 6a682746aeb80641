//! `alexnet summary`.

use alexnet_model::AlexNetConfig;
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use crate::backend::BackendTask;
use crate::summary;

/// Flags of `alexnet summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Input side (d2l: 224).
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The layer table on the chosen backend.
pub struct SummaryTask(pub usize);

impl BackendTask for SummaryTask {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>, _label: String) -> Result<()> {
        let device = devices.into_iter().next().expect("one device");
        let config = AlexNetConfig::new().with_image_size(self.0);
        let (rows, parameters) = summary::layer_table::<B::InnerBackend>(&config, &device)?;
        print!("{}", summary::format_table(&rows, parameters));
        Ok(())
    }
}
