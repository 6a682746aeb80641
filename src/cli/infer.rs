//! `alexnet infer`: the top classes of image files, folders of them, or test-set images.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use alexnet_model::Arch;
use anyhow::{Context, Result, bail};
use burn::data::dataset::Dataset;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use super::{BackendArgs, ModelArgs, check_batch};
use crate::backend::{Devices, InferenceTask, TrainingTask};
use crate::data::{Encoded, FashionMnist, Split, images_in, path_text};
use crate::explain::{Explainer, GradCam, Legend, Method, Target, overlay_png};
use crate::human::thousands;
use crate::inference::{self, LoadedModel, Prediction, Reader};

/// Flags of `alexnet infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Image files (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM, ICO; any size), or folders of them.
    #[arg(value_name = "IMAGE", required_unless_present = "test_index")]
    pub images: Vec<PathBuf>,
    /// Predict test-set images by index instead (comma-separated), showing the true label.
    #[arg(long, value_name = "I,J,…", value_delimiter = ',')]
    pub test_index: Vec<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many classes to show per image (at most the model's classes are shown) [default: 5
    /// with ImageNet's network, 3 with d2l's].
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
    /// Fashion-MNIST shows light objects on a dark background; pass --invert for photos of
    /// dark objects on a light background (Fashion-MNIST runs).
    #[arg(long)]
    pub invert: bool,
    /// Also classify the images in the folders' subfolders.
    #[arg(long)]
    pub recursive: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub batch_size: usize,
    /// Write one row per image to FILE: path, top class, its probability, the top classes.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write one JSON object per image to FILE (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also give each image's logits (the network's scores before softmax, one per class) in
    /// the JSON of --json and --jsonl, to compare with another runtime (an exported ONNX model).
    #[arg(long)]
    pub logits: bool,
    /// Explain each prediction: a Grad-CAM heatmap of the last convolution over the image the
    /// network saw, written as a PNG per image to --explain-dir (computed on the backend's
    /// autodiff form; no training state is needed).
    #[arg(long, requires = "explain_dir")]
    pub explain: bool,
    /// The class to explain, by index [default: each image's top class].
    #[arg(long, value_name = "K", requires = "explain")]
    pub explain_class: Option<usize>,
    /// How to weight the last convolution's channels: Grad-CAM's gradient means, or
    /// Grad-CAM++'s weights (which cover several objects of a class better).
    #[arg(long, value_enum, default_value = "gradcam", requires = "explain")]
    pub explain_method: Method,
    /// Folder for the heatmaps (created if missing), one `NAME.png` per image.
    #[arg(long, value_name = "DIR", requires = "explain")]
    pub explain_dir: Option<PathBuf>,
    /// Directory with the Fashion-MNIST files (for --test-index).
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// One input: an image file, or a test-set image with its true class.
enum Input {
    File(PathBuf),
    Test { index: usize, data: FashionMnist },
}

impl Input {
    fn name(&self) -> String {
        match self {
            // Escaped where the name is not UTF-8, so that a CSV or JSON row maps back to it.
            Self::File(path) => path_text::encode(path),
            Self::Test { index, .. } => format!("test[{index}]"),
        }
    }
}

/// The outcome for one input.
#[derive(Debug, Serialize)]
struct InputResult {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    true_label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top: Vec<Prediction>,
    /// With --logits: the network's scores, in class order.
    #[serde(skip_serializing_if = "Option::is_none")]
    logits: Option<Vec<f32>>,
    /// How the image's colours were changed to the network's: `grey to RGB` (as PIL's
    /// `convert("RGB")` does) or `colour to grey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    converted: Option<&'static str>,
    /// With --explain: the class explained, the heatmap's file and the map's grid.
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<ExplanationResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One image's explanation, as `--json` shows it.
#[derive(Debug, Serialize)]
struct ExplanationResult {
    class: usize,
    method: Method,
    png: String,
    grid: Vec<Vec<f32>>,
}

impl InputResult {
    fn line(&self) -> String {
        let truth = self
            .true_label
            .as_ref()
            .map_or(String::new(), |t| format!(" (true: {t})"));
        let ranked: Vec<String> = self
            .top
            .iter()
            .map(|p| format!("{} {:.1}%", p.label, 100.0 * p.probability))
            .collect();
        let explained = self.explanation.as_ref().map_or(String::new(), |e| {
            format!(" ({} of class {}: {})", e.method.title(), e.class, e.png)
        });
        format!("{}{truth}: {}{explained}", self.input, ranked.join(", "))
    }
}

impl InferArgs {
    /// Every input in order: test images, then files, each folder's images in sorted order.
    fn inputs(&self) -> Result<Vec<Input>> {
        let mut inputs = Vec::new();
        if !self.test_index.is_empty() {
            let data = FashionMnist::load(Split::Test, self.data_dir.as_deref())?;
            for &index in &self.test_index {
                if index >= data.len() {
                    bail!(
                        "--test-index {index} is out of range: the test set has {} images (0..{})",
                        data.len(),
                        data.len()
                    );
                }
                let data = data.clone();
                inputs.push(Input::Test { index, data });
            }
        }
        for path in &self.images {
            if !path.is_dir() {
                inputs.push(Input::File(path.clone()));
                continue;
            }
            let (found, passed_over) = images_in(path, self.recursive)?;
            if passed_over.total() > 0 {
                eprintln!(
                    "note: {}: passed over {}",
                    path_text::Shown(path),
                    passed_over.describe()
                );
            }
            if found.is_empty() {
                let hint = if self.recursive {
                    ""
                } else {
                    " (--recursive looks in subfolders)"
                };
                bail!("{} holds no images{hint}", path.display());
            }
            inputs.extend(found.into_iter().map(Input::File));
        }
        Ok(inputs)
    }
}

/// Where results go: lines or JSON on stdout, and the files asked for.
struct Outputs {
    json: Option<Vec<InputResult>>,
    csv: Option<(PathBuf, csv::Writer<File>)>,
    jsonl: Option<(PathBuf, BufWriter<File>)>,
    /// Whether each result is printed on stdout as it comes.
    lines: bool,
}

impl Outputs {
    fn open(args: &InferArgs) -> Result<Self> {
        let create = |path: &PathBuf| {
            File::create(path).with_context(|| format!("cannot write {}", path.display()))
        };
        let csv = match &args.csv {
            Some(path) => {
                let mut writer = csv::Writer::from_writer(create(path)?);
                writer.write_record(["path", "top_class", "probability", "top_k"])?;
                Some((path.clone(), writer))
            }
            None => None,
        };
        let jsonl = match &args.jsonl {
            Some(path) => Some((path.clone(), BufWriter::new(create(path)?))),
            None => None,
        };
        Ok(Self {
            lines: !args.json && csv.is_none() && jsonl.is_none(),
            json: args.json.then(Vec::new),
            csv,
            jsonl,
        })
    }

    fn write(&mut self, result: InputResult) -> Result<()> {
        if let Some(err) = &result.error {
            eprintln!("error: {err}");
        } else if self.lines {
            println!("{}", result.line());
        }
        if let (Some((path, csv)), Some(best)) = (&mut self.csv, result.top.first()) {
            let top_k: Vec<String> = result
                .top
                .iter()
                .map(|p| format!("{}:{:.4}", p.label, p.probability))
                .collect();
            let probability = format!("{:.6}", best.probability);
            csv.write_record([&result.input, &best.label, &probability, &top_k.join(";")])
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some((path, out)) = &mut self.jsonl {
            let line = serde_json::to_string(&result).expect("results serialise");
            writeln!(out, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(all) = &mut self.json {
            all.push(result);
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if let Some(all) = self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&all).expect("results serialise")
            );
        }
        if let Some((path, mut csv)) = self.csv {
            csv.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some((path, mut out)) = self.jsonl {
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Reads one input as the run's network reads images.
fn read(reader: &Reader, input: &Input) -> Result<Vec<f32>> {
    match input {
        Input::File(path) => reader.read(Encoded::File(path)),
        Input::Test { index, data } => reader.item(data.get(*index).expect("checked index")),
    }
}

/// Prediction on the chosen backend, batch by batch: without autodiff, or with it for
/// `--explain` (Grad-CAM needs one gradient).
pub struct InferTask<'a>(pub &'a InferArgs);

impl InferenceTask for InferTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let device = devices.main;
        let model = load::<B>(self.0, &device)?;
        infer(self.0, &model, None, &device)
    }
}

impl TrainingTask for InferTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        let device = devices.main;
        let loaded = load::<B>(self.0, &device)?;
        let (model, explainer) = (loaded.valid(), GradCam::new(loaded.net));
        infer(self.0, &model, Some(&explainer), &device)
    }
}

/// The run's model, after the checks of the flags that need it.
fn load<B: Backend>(args: &InferArgs, device: &B::Device) -> Result<LoadedModel<B>> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let run = args.model.run::<B>(device)?;
    let model = inference::load_model::<B>(&run, &args.model.checkpoint, device)?;
    check_batch(&model.config, args.batch_size, "--batch-size")?;
    let classes = model.data.classes.len();
    if let Some(class) = args.explain_class.filter(|&class| class >= classes) {
        bail!(
            "--explain-class {class} is out of range: the model has {classes} classes (0 to {})",
            classes - 1
        );
    }
    Ok(model)
}

fn infer<B: Backend>(
    args: &InferArgs,
    model: &LoadedModel<B>,
    explainer: Option<&dyn Explainer<B>>,
    device: &B::Device,
) -> Result<()> {
    let top = args.top.unwrap_or(match model.config.arch {
        Arch::Imagenet => 5,
        Arch::D2l => 3,
    });
    if top == 0 {
        bail!(
            "--top 0 shows no class: use 1 to {} (the model's classes)",
            model.data.classes.len()
        );
    }
    let reader = Reader::of(model, args.invert)?;
    let inputs = args.inputs()?;
    let mut explaining = match (explainer, &args.explain_dir) {
        (Some(explainer), Some(dir)) => {
            let target = Target {
                class: args.explain_class,
                method: args.explain_method,
            };
            Some(Explaining::new(explainer, dir, target)?)
        }
        _ => None,
    };
    let mut outputs = Outputs::open(args)?;
    let mut progress = Progress::new(inputs.len(), args.batch_size);
    let mut failed = 0;
    for chunk in inputs.chunks(args.batch_size) {
        let batch = Batch {
            model,
            reader: &reader,
            inputs: chunk,
            top,
            logits: args.logits,
        };
        let results = batch.classify(explaining.as_mut(), device)?;
        // One input that cannot be read is the command's one error line.
        if let (
            [_],
            [
                InputResult {
                    error: Some(err), ..
                },
            ],
        ) = (&inputs[..], &results[..])
        {
            bail!("{err}");
        }
        let failures = results.iter().filter(|r| r.error.is_some()).count();
        failed += failures;
        for result in results {
            outputs.write(result)?;
        }
        progress.after(chunk.len(), failures);
    }
    outputs.finish()?;
    match failed {
        0 => {}
        n if n == inputs.len() => bail!("none of the {n} inputs could be read (see above)"),
        n => bail!(
            "{n} of {} inputs could not be read (see above); the others were predicted",
            inputs.len()
        ),
    }
    Ok(())
}

/// `--explain`: the explainer, the class and method asked for, and where the pictures go.
struct Explaining<'a, B: Backend> {
    explainer: &'a dyn Explainer<B>,
    target: Target,
    dir: PathBuf,
    /// File names given so far, so that two images of the same name get two pictures (a
    /// picture of an earlier command is replaced).
    taken: HashSet<String>,
}

impl<'a, B: Backend> Explaining<'a, B> {
    fn new(explainer: &'a dyn Explainer<B>, dir: &Path, target: Target) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            explainer,
            target,
            dir: dir.to_path_buf(),
            taken: HashSet::new(),
        })
    }

    /// A new file name in the folder for `input`'s picture: its file stem, or `test-I`.
    fn file_for(&mut self, input: &Input) -> PathBuf {
        let stem = match input {
            Input::File(path) => path
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned()),
            Input::Test { index, .. } => format!("test-{index}"),
        };
        let name = (1..)
            .map(|n| match n {
                1 => format!("{stem}.png"),
                n => format!("{stem}-{n}.png"),
            })
            .find(|name| !self.taken.contains(name))
            .expect("a free name");
        self.taken.insert(name.clone());
        self.dir.join(name)
    }
}

/// One batch of inputs and how to read and rank them.
struct Batch<'a, B: Backend> {
    model: &'a LoadedModel<B>,
    reader: &'a Reader,
    inputs: &'a [Input],
    top: usize,
    logits: bool,
}

impl<B: Backend> Batch<'_, B> {
    /// The results in order; the inputs are read in parallel.
    fn classify(
        &self,
        explaining: Option<&mut Explaining<B>>,
        device: &B::Device,
    ) -> Result<Vec<InputResult>> {
        let read: Vec<Result<Vec<f32>>> = self
            .inputs
            .par_iter()
            .map(|i| read(self.reader, i))
            .collect();
        let good: Vec<(&Input, &Vec<f32>)> = self
            .inputs
            .iter()
            .zip(&read)
            .filter_map(|(input, values)| Some((input, values.as_ref().ok()?)))
            .collect();
        let values: Vec<Vec<f32>> = good.iter().map(|(_, v)| (*v).clone()).collect();
        let (logits, explanations) = match explaining {
            _ if values.is_empty() => {
                return Ok(self.results(read, Vec::new(), Vec::new(), Vec::new()));
            }
            None => {
                let images = inference::input_batch(self.model, values, device);
                (self.model.net.forward(images), Vec::new())
            }
            Some(explaining) => self.explain(&good, values, explaining, device)?,
        };
        let rows = match self.logits {
            true => inference::logit_rows(logits.clone()),
            false => Vec::new(),
        };
        let predictions = inference::rank(logits, &self.model.data.classes, self.top);
        Ok(self.results(read, predictions, rows, explanations))
    }

    /// Each input's result, from what was read and what the readable ones gave, in order.
    fn results(
        &self,
        read: Vec<Result<Vec<f32>>>,
        predictions: Vec<Vec<Prediction>>,
        logits: Vec<Vec<f32>>,
        explanations: Vec<ExplanationResult>,
    ) -> Vec<InputResult> {
        let mut predictions = predictions.into_iter();
        let mut logits = logits.into_iter();
        let mut explanations = explanations.into_iter();
        self.inputs
            .iter()
            .zip(read)
            .map(|(input, values)| {
                let true_label = match input {
                    Input::Test { index, data } => {
                        let label = data.labels()[*index] as usize;
                        self.model.data.classes.get(label).cloned()
                    }
                    Input::File(_) => None,
                };
                let (top, scores, explanation, error) = match values {
                    Ok(_) => (
                        predictions.next().unwrap_or_default(),
                        logits.next(),
                        explanations.next(),
                        None,
                    ),
                    Err(err) => (Vec::new(), None, None, Some(format!("{err:#}"))),
                };
                let converted = match (input, &error) {
                    (Input::File(path), None) => self.reader.conversion(path),
                    _ => None,
                };
                InputResult {
                    input: input.name(),
                    true_label,
                    top,
                    logits: scores,
                    converted,
                    explanation,
                    error,
                }
            })
            .collect()
    }

    /// The logits of the readable inputs (`values`) and their explanations, each picture
    /// written.
    fn explain(
        &self,
        good: &[(&Input, &Vec<f32>)],
        values: Vec<Vec<f32>>,
        explaining: &mut Explaining<B>,
        device: &B::Device,
    ) -> Result<(Tensor<B, 2>, Vec<ExplanationResult>)> {
        let images = inference::input_batch(self.model, values, device);
        let targets = vec![explaining.target; good.len()];
        let (maps, logits) = explaining.explainer.explain(images, &targets)?;
        let classes = &self.model.data.classes;
        let mut results = Vec::with_capacity(good.len());
        for ((input, values), map) in good.iter().zip(maps) {
            let label = classes.get(map.class).map_or("?", String::as_str);
            let title = format!("{} of {label} (class {})", map.method.title(), map.class);
            let legend = Legend {
                title: &title,
                opacity: 0.5,
            };
            let config = &self.model.config;
            let preprocess = self.model.data.preprocess;
            let png = overlay_png(values, config.in_channels, preprocess, &map, legend)?;
            let path = explaining.file_for(input);
            std::fs::write(&path, png)
                .with_context(|| format!("cannot write {}", path.display()))?;
            results.push(ExplanationResult {
                class: map.class,
                method: map.method,
                png: path_text::encode(&path),
                grid: map.grid,
            });
        }
        Ok((logits, results))
    }
}

/// Progress on stderr for inputs of more than one batch, at most once a second.
struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    shown: bool,
    last: Instant,
    start: Instant,
}

impl Progress {
    fn new(total: usize, batch_size: usize) -> Self {
        Self {
            total,
            done: 0,
            failed: 0,
            shown: total > batch_size,
            last: Instant::now(),
            start: Instant::now(),
        }
    }

    /// After `count` more inputs, `failed` of which could not be read.
    fn after(&mut self, count: usize, failed: usize) {
        self.done += count;
        self.failed += failed;
        let due = self.last.elapsed().as_secs_f64() >= 1.0 || self.done == self.total;
        if !self.shown || !due {
            return;
        }
        self.last = Instant::now();
        let rate = self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let unread = match self.failed {
            0 => String::new(),
            n => format!(" ({} could not be read)", thousands(n)),
        };
        eprintln!(
            "classified {} of {} images{unread}, {rate:.0} images/s",
            thousands(self.done - self.failed),
            thousands(self.total)
        );
    }
}
