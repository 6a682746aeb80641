//! `alexnet eval`: evaluate a record on the test (or training) split, or on a labelled folder.

use std::path::PathBuf;

use anyhow::Result;
use burn::data::dataset::Dataset;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;

use super::{BackendArgs, ModelArgs, check_batch};
use crate::backend::{Devices, TrainingTask, count_tuned_keys};
use crate::data::{
    Encoded, FashionMnist, ImageFiles, ImageFolder, ImageTransform, Purpose, ScanOptions, Split,
    SplitImages, path_text,
};
use crate::evaluation::{self, Evaluation, Mistake};
use crate::explain::{GradCam, Legend, overlay_png};
use crate::inference::{self, LoadedModel, Reader};
use crate::report::{Drawn, write_mistakes};
use crate::run::RunDir;

/// Flags of `alexnet eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The split to evaluate (an image-folder run: test is its held-out images).
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// Evaluate on this labelled folder instead: its val/ split if it has one, else all of it;
    /// its class folders must be the run's classes.
    #[arg(long, value_name = "DIR", conflicts_with = "split")]
    pub images: Option<PathBuf>,
    /// Evaluate the first N images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// With --images: leave images that cannot be read out (counted in the result) instead of
    /// refusing the folder.
    #[arg(long, requires = "images")]
    pub skip_bad_images: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write confusion.png beside confusion.svg.
    #[arg(long)]
    pub png: bool,
    /// Directory with the Fashion-MNIST files.
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl EvalArgs {
    /// The images to evaluate and their name in the report: a folder given here, the run's own
    /// folder split, or a Fashion-MNIST split.
    fn images<B: Backend>(
        &self,
        model: &LoadedModel<B>,
        run: &RunDir,
    ) -> Result<(String, SplitImages)> {
        let split = self.split;
        if let Some(dir) = &self.images {
            let options = ScanOptions {
                val_fraction: 0.0,
                seed: 0,
                skip_bad: self.skip_bad_images,
                purpose: Purpose::Evaluation,
            };
            let folder = ImageFolder::scan(dir, options)?;
            let files = folder.for_run(&model.data.classes)?;
            let images = SplitImages::Files(ImageFiles::new(folder.root.clone(), files));
            return Ok((dir.display().to_string(), images));
        }
        if model.data.reads_fashion_mnist() {
            let data = FashionMnist::load(split, self.data_dir.as_deref())?;
            return Ok((split.to_string(), SplitImages::FashionMnist(data)));
        }
        if model.data.images.is_none() {
            anyhow::bail!(
                "{} holds a network of other classes than Fashion-MNIST's and no image folder \
                 of its own (an imported one); evaluate it on a labelled folder with --images DIR",
                run.path().display()
            );
        }
        let folder: ImageFolder = run.load_json(&run.images_file())?;
        let val = split == Split::Test;
        let files = folder.files(val).to_vec();
        let name = if val { "val" } else { "train" };
        let images = SplitImages::Files(ImageFiles::new(folder.root, files));
        Ok((name.to_string(), images))
    }
}

/// Evaluation on the chosen backend: the network without autodiff, and Grad-CAM on its autodiff
/// form for the gallery of mistakes.
pub struct EvalTask<'a>(pub &'a EvalArgs);

impl TrainingTask for EvalTask<'_> {
    type Output = Result<()>;

    fn run<A: AutodiffBackend>(self, devices: Devices<A>) -> Result<()> {
        if let Some(cache) = &devices.kernel_cache {
            eprintln!(
                "kernels: the first batches compile and tune GPU kernels ({} tuned kernels \
                 cached in {}; `alexnet warmup` does this once, ahead)",
                count_tuned_keys(cache),
                cache.display()
            );
        }
        let device = devices.main;
        let args = self.0;
        if args.batch_size == 0 || args.limit == Some(0) {
            anyhow::bail!("--batch-size and --limit must be at least 1");
        }
        let run = args.model.run::<A>(&device)?;
        let loaded = inference::load_model::<A>(&run, &args.model.checkpoint, &device)?;
        let (model, explainer) = (loaded.valid(), GradCam::new(loaded.net));
        check_batch(&model.config, args.batch_size, "--batch-size")?;
        let (name, images) = args.images(&model, &run)?;
        let transform = ImageTransform::new(model.config.image_size, model.config.in_channels)
            .with_preprocess(model.data.preprocess);
        let classes = model.data.classes.clone();
        let settings = (transform, args.batch_size, classes.len());
        let images = images.limited(args.limit);
        let scored = evaluation::evaluate(
            &model.net,
            images.clone(),
            settings,
            args.skip_bad_images,
            &device,
        )?;
        let gallery = match scored.left_out {
            0 => Some(draw_mistakes(
                &explainer,
                &model,
                (&name, &images),
                &scored.mistakes,
                &device,
            )?),
            _ => None,
        };
        let report = Evaluation::new(&model.source, (name.clone(), classes), scored);
        let mut written = crate::report::save_evaluation(&run, &report, args.png)?;
        match gallery {
            Some(drawn) => written.extend(write_mistakes(&run, &name, &drawn)?),
            None => eprintln!(
                "note: no gallery of mistakes this time: images were left out, so their places \
                 in the split are not known"
            ),
        }
        match args.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            ),
            false => print!(
                "{}\nwrote {}\n",
                report.to_text(),
                written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        Ok(())
    }
}

/// The mistakes of an evaluation of `images` (named `split`), each drawn with the Grad-CAM map
/// of the class it was taken for.
fn draw_mistakes<A: AutodiffBackend>(
    explainer: &GradCam<A>,
    model: &LoadedModel<A::InnerBackend>,
    (split, images): (&str, &SplitImages),
    mistakes: &[Mistake],
    device: &A::Device,
) -> Result<Vec<Drawn>> {
    if mistakes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = Reader::of(model, false)?;
    let mut names = Vec::new();
    let mut inputs = Vec::new();
    for mistake in mistakes {
        let (name, input) = match images {
            SplitImages::FashionMnist(data) => {
                let item = data.get(mistake.position).expect("an evaluated image");
                (format!("{split}[{}]", mistake.position), reader.item(item)?)
            }
            SplitImages::Files(files) => {
                let file = files.get(mistake.position).expect("an evaluated image");
                let input = reader.read(Encoded::File(&file.path))?;
                (path_text::encode(&file.path), input)
            }
        };
        names.push(name);
        inputs.push(input);
    }
    let batch = inference::input_batch(model, inputs.clone(), device);
    let predicted: Vec<Option<usize>> = mistakes.iter().map(|m| Some(m.predicted)).collect();
    let (maps, _) = explainer.explain(batch, &predicted)?;
    let (classes, channels) = (&model.data.classes, model.config.in_channels);
    mistakes
        .iter()
        .zip(maps)
        .zip(inputs.iter().zip(names))
        .map(|((mistake, map), (input, name))| {
            let (predicted, truth) = (&classes[mistake.predicted], &classes[mistake.truth]);
            let title = format!(
                "{predicted} {:.0}%, true {truth}",
                100.0 * mistake.probability
            );
            let legend = Legend {
                title: &title,
                opacity: 0.5,
            };
            let picture = overlay_png(input, channels, model.data.preprocess, &map, legend)?;
            Ok(Drawn {
                name,
                truth: (truth.clone(), mistake.truth_probability),
                predicted: (predicted.clone(), mistake.probability),
                picture,
            })
        })
        .collect()
}
