//! `alexnet infer`: top classes of image files or test-set images.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use clap::Args;
use serde::Serialize;

use super::{BackendArgs, ModelArgs};
use crate::backend::{Devices, InferenceTask};
use crate::data::{CLASS_NAMES, FashionMnist, FashionMnistItem, Split};
use crate::inference::{self, Prediction};

/// Flags of `alexnet infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Image files (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM, ICO; any size; colour becomes grey).
    #[arg(value_name = "IMAGE", required_unless_present = "test_index")]
    pub images: Vec<PathBuf>,
    /// Predict test-set images by index instead (comma-separated), showing the true label.
    #[arg(long, value_name = "I,J,…", value_delimiter = ',')]
    pub test_index: Vec<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Fashion-MNIST shows light objects on a dark background; pass --invert for photos of
    /// dark objects on a light background.
    #[arg(long)]
    pub invert: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory with the Fashion-MNIST files (for --test-index).
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The outcome for one input.
#[derive(Debug, Serialize)]
struct InputResult {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    true_label: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top: Vec<Prediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl InputResult {
    fn line(&self) -> String {
        let truth = self
            .true_label
            .map_or(String::new(), |t| format!(" (true: {t})"));
        let ranked: Vec<String> = self
            .top
            .iter()
            .map(|p| format!("{} {:.1}%", p.label, 100.0 * p.probability))
            .collect();
        format!("{}{truth}: {}", self.input, ranked.join(", "))
    }
}

/// Inputs read so far: items to predict and the results they will fill.
struct Inputs {
    items: Vec<FashionMnistItem>,
    results: Vec<InputResult>,
}

impl Inputs {
    fn read(args: &InferArgs) -> Result<Self> {
        let mut inputs = Inputs {
            items: Vec::new(),
            results: Vec::new(),
        };
        if !args.test_index.is_empty() {
            let test = FashionMnist::load(Split::Test, args.data_dir.as_deref())?;
            for &index in &args.test_index {
                let Some(item) = test.get(index) else {
                    bail!(
                        "--test-index {index} is out of range: the test set has {} images (0..{})",
                        test.len(),
                        test.len()
                    );
                };
                inputs.push(
                    format!("test[{index}]"),
                    Some(CLASS_NAMES[item.label as usize]),
                    Ok(item),
                );
            }
        }
        for path in &args.images {
            let item = inference::load_image(path, args.invert);
            inputs.push(path.display().to_string(), None, item);
        }
        Ok(inputs)
    }

    fn push(
        &mut self,
        input: String,
        true_label: Option<&'static str>,
        item: Result<FashionMnistItem>,
    ) {
        let error = match item {
            Ok(item) => {
                self.items.push(item);
                None
            }
            Err(err) => Some(format!("{err:#}")),
        };
        self.results.push(InputResult {
            input,
            true_label,
            top: Vec::new(),
            error,
        });
    }
}

/// Prediction on the chosen backend, without autodiff.
pub struct InferTask<'a>(pub &'a InferArgs);

impl InferenceTask for InferTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let device = devices.main;
        let args = self.0;
        let model = inference::load_model::<B>(&args.model.run(), &args.model.checkpoint, &device)?;
        let mut inputs = Inputs::read(args)?;
        let predictions = inference::predict(
            &model.net,
            inputs.items,
            model.config.image_size,
            args.top,
            &device,
        );
        let mut predictions = predictions.into_iter();
        for result in inputs.results.iter_mut().filter(|r| r.error.is_none()) {
            result.top = predictions.next().unwrap_or_default();
        }
        report(&inputs.results, args.json);
        let failed = inputs.results.iter().filter(|r| r.error.is_some()).count();
        if failed > 0 {
            bail!(
                "{failed} of {} inputs could not be read (see above); the others were predicted",
                inputs.results.len()
            );
        }
        Ok(())
    }
}

fn report(results: &[InputResult], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(results).expect("results serialise")
        );
        return;
    }
    for result in results {
        match &result.error {
            Some(err) => eprintln!("error: {err}"),
            None => println!("{}", result.line()),
        }
    }
}
