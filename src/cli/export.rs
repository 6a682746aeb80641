//! `alexnet export`: a run's network as PyTorch's state dict (safetensors) or as an ONNX model,
//! with a Triton model folder if asked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};

use super::{BackendArgs, ModelArgs};
use crate::backend::{Devices, InferenceTask};
use crate::inference::LoadedModel;
use crate::onnx::{self, Batch, Description, OnnxError};
use crate::{inference, interop, run};

/// Flags of `alexnet export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The file to write. A `.safetensors` file is PyTorch's state dict
    /// (`net.load_state_dict(safetensors.torch.load_file(FILE))`); a `.onnx` file is an ONNX
    /// model for ONNX Runtime, tract, TensorRT or Triton.
    #[arg(long, value_name = "FILE", required_unless_present = "triton")]
    pub out: Option<PathBuf>,
    /// What to write [default: told by --out's extension, safetensors unless it is .onnx].
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// The ONNX opset (11 to 21).
    #[arg(long, default_value_t = onnx::DEFAULT_OPSET, value_parser = parse_opset, value_name = "N")]
    pub opset: i64,
    /// The ONNX model's batch dimension: `dynamic` (any size, named `batch`) or a fixed size.
    #[arg(long, default_value = "dynamic", value_parser = parse_batch, value_name = "dynamic|N")]
    pub batch: Batch,
    /// Also write a Triton model repository here (created if missing): NAME/config.pbtxt with
    /// dynamic batching, NAME/1/model.onnx and NAME/labels.txt. Implies --format onnx.
    #[arg(long, value_name = "DIR")]
    pub triton: Option<PathBuf>,
    /// The model's name in the Triton repository.
    #[arg(
        long,
        default_value = "alexnet",
        value_name = "NAME",
        requires = "triton"
    )]
    pub triton_name: String,
    /// The most images Triton batches into one call (with a dynamic batch).
    #[arg(long, default_value_t = 128, value_name = "N", requires = "triton")]
    pub triton_max_batch: usize,
    /// Replace files that exist.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The file formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// PyTorch's state dict in safetensors (d2l's or torchvision's keys and layouts).
    Safetensors,
    /// An ONNX model: the graph, its weights, the class names and the preprocessing.
    Onnx,
}

fn parse_opset(text: &str) -> Result<i64, String> {
    let opset: i64 = text.parse().map_err(|_| {
        let (first, last) = (onnx::OPSETS.start(), onnx::OPSETS.end());
        format!("`{text}` is not an opset number; pass one from {first} to {last}")
    })?;
    onnx::OPSETS
        .contains(&opset)
        .then_some(opset)
        .ok_or_else(|| OnnxError::UnknownOpset(opset).to_string())
}

fn parse_batch(text: &str) -> Result<Batch, String> {
    match text {
        "dynamic" => Ok(Batch::Dynamic),
        _ => match text.parse::<usize>() {
            Ok(0) => Err(OnnxError::EmptyBatch.to_string()),
            Ok(n) => Ok(Batch::Fixed(n)),
            Err(_) => Err(format!("`{text}` is neither `dynamic` nor a batch size")),
        },
    }
}

impl ExportArgs {
    /// The format to write: --format, else --triton's ONNX, else --out's extension.
    fn chosen_format(&self) -> Result<ExportFormat> {
        let by_name =
            self.out
                .as_deref()
                .map(|out| match out.extension().and_then(|e| e.to_str()) {
                    Some("onnx") => ExportFormat::Onnx,
                    _ => ExportFormat::Safetensors,
                });
        let format = match (self.format, self.triton.is_some()) {
            (Some(ExportFormat::Safetensors), true) => {
                bail!("--triton writes an ONNX model; drop --format safetensors or --triton")
            }
            (Some(format), _) => format,
            (None, true) => ExportFormat::Onnx,
            (None, false) => by_name.unwrap_or(ExportFormat::Safetensors),
        };
        let extension = self.out.as_deref().map(|out| (out, out.extension()));
        match (format, extension) {
            (ExportFormat::Safetensors, Some((out, ext)))
                if ext != Some("safetensors".as_ref()) =>
            {
                bail!(
                    "--out {} must end in .safetensors, which PyTorch loads with \
                     safetensors.torch.load_file (torch.save can then make a .pt), or in .onnx \
                     for an ONNX model",
                    out.display()
                )
            }
            (ExportFormat::Onnx, Some((out, ext))) if ext != Some("onnx".as_ref()) => {
                bail!(
                    "--out {} must end in .onnx for --format onnx",
                    out.display()
                )
            }
            _ => {}
        }
        Ok(format)
    }
}

/// The export, on the chosen backend (the weights only pass through it).
pub struct ExportTask<'a>(pub &'a ExportArgs);

impl InferenceTask for ExportTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let args = self.0;
        let format = args.chosen_format()?;
        let triton = args
            .triton
            .as_ref()
            .map(|dir| TritonFolder::new(dir, &args.triton_name));
        if let Some(out) = &args.out {
            check_target(out, args.overwrite)?;
            check_folder(out)?;
        }
        for file in triton.iter().flat_map(TritonFolder::files) {
            check_target(file, args.overwrite)?;
        }
        let run = args.model.run::<B>(&devices.main)?;
        let model = inference::load_model::<B>(&run, &args.model.checkpoint, &devices.main)?;
        match format {
            ExportFormat::Safetensors => export_safetensors(&model, args.out.as_deref())?,
            ExportFormat::Onnx => {
                let bytes = onnx_bytes(&model, args)?;
                if let Some(out) = &args.out {
                    run::write_atomically(out, &bytes)?;
                    print_onnx(&model, out, bytes.len(), args);
                }
                if let Some(triton) = &triton {
                    triton.write(&model, &bytes, args)?;
                }
            }
        }
        Ok(())
    }
}

fn export_safetensors<B: Backend>(model: &LoadedModel<B>, out: Option<&Path>) -> Result<()> {
    let out = out.expect("clap requires --out without --triton, which is ONNX");
    let bytes = interop::export_net(&model.net, (&model.config, &model.data.classes), out)?;
    println!(
        "exported {} (--resize {}) to {} ({:.1} MB): PyTorch's keys and layouts",
        model.source.display(),
        model.config.image_size,
        out.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}

fn onnx_bytes<B: Backend>(model: &LoadedModel<B>, args: &ExportArgs) -> Result<Vec<u8>> {
    let description = Description {
        config: &model.config,
        preprocess: model.data.preprocess,
        classes: &model.data.classes,
    };
    Ok(onnx::to_onnx(
        &model.net,
        &description,
        args.opset,
        args.batch,
    )?)
}

fn print_onnx<B: Backend>(model: &LoadedModel<B>, out: &Path, bytes: usize, args: &ExportArgs) {
    let batch = match args.batch {
        Batch::Dynamic => "a dynamic batch".to_string(),
        Batch::Fixed(n) => format!("batches of {n}"),
    };
    println!(
        "exported {} to {} ({:.1} MB): ONNX opset {}, input `{}` [{}, {}, {side}, {side}], \
         output `{}`, {batch}",
        model.source.display(),
        out.display(),
        bytes as f64 / 1e6,
        args.opset,
        onnx::INPUT,
        args.batch.dimension(),
        model.config.in_channels,
        onnx::OUTPUT,
        side = model.config.image_size,
    );
}

/// Refuses a file that exists, without --overwrite, before anything is read or written.
fn check_target(path: &Path, overwrite: bool) -> Result<()> {
    if path.exists() && !overwrite {
        bail!(
            "{} exists; pass --overwrite to replace it, or choose another path",
            path.display()
        );
    }
    Ok(())
}

/// Refuses an --out whose folder does not exist (a typo there should not create folders).
fn check_folder(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) if !folder.is_dir() => bail!(
            "the folder {} does not exist; create it or choose another --out",
            folder.display()
        ),
        _ => Ok(()),
    }
}

/// A model's folder in a Triton model repository.
struct TritonFolder {
    name: String,
    model_dir: PathBuf,
    files: [PathBuf; 3],
}

impl TritonFolder {
    fn new(repository: &Path, name: &str) -> Self {
        let model_dir = repository.join(name);
        let files = [
            model_dir.join("1").join("model.onnx"),
            model_dir.join("config.pbtxt"),
            model_dir.join(onnx::LABELS_FILE),
        ];
        Self {
            name: name.to_string(),
            model_dir,
            files,
        }
    }

    fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }

    /// Writes the model, its configuration and its labels, each whole or not at all.
    fn write<B: Backend>(
        &self,
        model: &LoadedModel<B>,
        onnx: &[u8],
        args: &ExportArgs,
    ) -> Result<()> {
        let [model_file, config_file, labels_file] = &self.files;
        let version_dir = model_file.parent().expect("a version folder");
        std::fs::create_dir_all(version_dir)
            .with_context(|| format!("cannot create {}", version_dir.display()))?;
        let config = &model.config;
        let shape = (config.in_channels, config.image_size, config.num_classes);
        let text = onnx::triton_config(&self.name, shape, args.batch, args.triton_max_batch);
        let labels = model.data.classes.join("\n") + "\n";
        run::write_atomically(model_file, onnx)?;
        run::write_atomically(labels_file, labels.as_bytes())?;
        run::write_atomically(config_file, text.as_bytes())?;
        println!(
            "wrote the Triton model `{}` to {} (config.pbtxt, 1/model.onnx, {}): \
             tritonserver --model-repository {}",
            self.name,
            self.model_dir.display(),
            onnx::LABELS_FILE,
            args.triton.as_ref().expect("a Triton folder").display()
        );
        Ok(())
    }
}
