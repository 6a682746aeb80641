//! A network judged on a split and written into its run: `eval.json`, `confusion.svg` and the
//! gallery of its most confident mistakes, each with the Grad-CAM map of the class it was taken
//! for. `eval`, `report` and the end of `train` all write these through here, so the three agree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::data::dataset::Dataset;
use burn::tensor::backend::AutodiffBackend;

use crate::data::{
    Encoded, FashionMnist, ImageFiles, ImageFolder, ImageTransform, Split, SplitImages, path_text,
};
use crate::evaluation::{self, Evaluation, Mistake};
use crate::explain::{GradCam, Legend, Method, Target, overlay_png};
use crate::inference::{self, LoadedModel, Reader};
use crate::report::{Drawn, EvaluationSummary, save_evaluation, write_mistakes};
use crate::run::{DataConfig, RunDir};

/// How to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Assess {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Leave images that cannot be read out (counted) instead of refusing the split.
    pub skip_bad: bool,
    /// Also write `confusion.png`.
    pub png: bool,
}

/// What an assessment found and wrote.
#[derive(Debug, Clone)]
pub struct Assessed {
    /// The figures, as `eval.json` holds them.
    pub evaluation: Evaluation,
    /// The files written into the run.
    pub written: Vec<PathBuf>,
}

/// A split's images and the name the report gives them.
pub type NamedImages = (String, SplitImages);

/// The run's own images of `split`: Fashion-MNIST's (read from `data_dir`), or the run's image
/// folder (`test` is its held-out `val` part). An imported network of other classes has none.
pub fn run_split(
    run: &RunDir,
    data: &DataConfig,
    split: Split,
    data_dir: Option<&Path>,
) -> Result<NamedImages> {
    if data.reads_fashion_mnist() {
        let images = FashionMnist::load(split, data_dir)?;
        let name = split_name(data, split).to_string();
        return Ok((name, SplitImages::FashionMnist(images)));
    }
    if data.images.is_none() {
        anyhow::bail!(
            "{} holds a network of other classes than Fashion-MNIST's and no image folder of its \
             own (an imported one); evaluate it on a labelled folder with --images DIR",
            run.path().display()
        );
    }
    let folder: ImageFolder = run.load_json(&run.images_file())?;
    let files = folder.files(split == Split::Test).to_vec();
    Ok((
        split_name(data, split).to_string(),
        SplitImages::Files(ImageFiles::new(folder.root, files)),
    ))
}

/// What the report calls `split` of a run's images: Fashion-MNIST's `test` or `train`, an
/// image folder's `val` or `train`.
pub fn split_name(data: &DataConfig, split: Split) -> &'static str {
    match (data.reads_fashion_mnist(), split) {
        (_, Split::Train) => "train",
        (true, Split::Test) => "test",
        (false, Split::Test) => "val",
    }
}

/// Evaluates `loaded` on `images` and writes the evaluation and its gallery of mistakes into
/// `run`. The gallery is left out (said on stderr) when images were left out, since the places
/// of the rest in the split are then unknown.
pub fn assess<A: AutodiffBackend>(
    run: &RunDir,
    loaded: LoadedModel<A>,
    (name, images): NamedImages,
    how: Assess,
    device: &A::Device,
) -> Result<Assessed> {
    let (model, explainer) = (loaded.valid(), GradCam::new(loaded.net));
    let transform = ImageTransform::new(model.config.image_size, model.config.in_channels)
        .with_preprocess(model.data.preprocess);
    let classes = model.data.classes.clone();
    let settings = (transform, how.batch_size, classes.len());
    let scored = evaluation::evaluate(&model.net, images.clone(), settings, how.skip_bad, device)?;
    let gallery = match scored.left_out {
        0 => {
            let split = (name.as_str(), &images);
            Some(draw_mistakes(
                &explainer,
                &model,
                split,
                &scored.mistakes,
                device,
            )?)
        }
        _ => None,
    };
    let evaluation = Evaluation::new(&model.source, (name.clone(), classes), scored);
    let mut written = save_evaluation(run, &evaluation, how.png)?;
    match gallery {
        Some(drawn) => written.extend(write_mistakes(run, &name, &drawn)?),
        None => {
            remove_gallery(run)?;
            eprintln!(
                "note: no gallery of mistakes this time: images were left out, so their places \
                 in the split are not known"
            )
        }
    }
    Ok(Assessed {
        evaluation,
        written,
    })
}

/// Removes an earlier evaluation's gallery, which would otherwise pass for this one's.
fn remove_gallery(run: &RunDir) -> Result<()> {
    let html = run.mistakes_file();
    for path in [html.with_extension("png"), html] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the run's `eval.json` and gallery already hold the evaluation of the record
/// `source` on all `images` (named `name`), written after the record was.
pub fn is_current(run: &RunDir, source: &Path, (name, images): (&str, &SplitImages)) -> bool {
    let Some(last) = EvaluationSummary::of(run) else {
        return false;
    };
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let newer = match (modified(&run.eval_file()), modified(source)) {
        (Some(eval), Some(record)) => eval >= record,
        _ => false,
    };
    let counted = last.examples as usize + last.left_out == images.len();
    newer
        && counted
        && (last.gallery || last.left_out > 0)
        && last.split == name
        && last.checkpoint == source.display().to_string()
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
    let (maps, _) = explainer.explain(batch, &Target::all(&predicted, Method::GradCam))?;
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
