//! The server's core, which knows nothing of HTTP: the queue to the model worker, how uploads
//! are read, what the model is, reloads, the token, the limits and the metrics; and why a
//! prediction or a reload has no answer (`http` words each as a status).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use alexnet_model::{Arch, Preprocess};
use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::data::Encoded;
use crate::explain::{Method, Target, heatmap_png};
use crate::inference::{LoadedModel, Prediction, Reader};

use super::metrics::Metrics;
use super::worker::{Answer, Arriving, Job, ModelFailed, Queue, Refused};

/// What `GET /v1/model` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Class names in the order of the network's outputs.
    pub classes: Vec<String>,
    /// Input channels: 1 (grey) or 3 (colour).
    pub channels: usize,
    /// The side of the square image the network sees.
    pub image_size: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// The backend the model runs on.
    pub backend: String,
    /// The record loaded.
    pub checkpoint: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// `fashion-mnist` (uploads read as `infer` reads photos for it) or `image-folder`.
    pub reads: &'static str,
    /// The network's architecture: `d2l` or `imagenet`.
    pub arch: Arch,
    /// How uploads become the network's input: `d2l` or `imagenet`.
    pub preprocess: Preprocess,
}

impl ModelInfo {
    /// The description of `model`, loaded from `run_dir` on `backend`.
    pub fn of<B: Backend>(model: &LoadedModel<B>, backend: &str, run_dir: PathBuf) -> Self {
        Self {
            classes: model.data.classes.clone(),
            channels: model.config.in_channels,
            image_size: model.config.image_size,
            parameters: model.net.num_params(),
            backend: backend.into(),
            checkpoint: model.source.clone(),
            run_dir,
            reads: if model.data.reads_fashion_mnist() {
                "fashion-mnist"
            } else {
                "image-folder"
            },
            arch: model.config.arch,
            preprocess: model.data.preprocess,
        }
    }

    /// Whether a model described by `other` reads images as this one does and answers the same
    /// classes, so that it can replace it while serving (clients and the page rely on both).
    pub fn same_input(&self, other: &Self) -> Result<(), ReloadRefused> {
        if self.classes != other.classes {
            return Err(ReloadRefused::OtherClasses {
                new: other.classes.clone(),
                served: self.classes.clone(),
            });
        }
        let reads = |info: &Self| (info.reads, info.channels, info.image_size);
        if reads(self) != reads(other) {
            return Err(ReloadRefused::OtherImages {
                new: reads(other),
                served: reads(self),
            });
        }
        Ok(())
    }
}

/// What `POST /v1/predict` answers.
#[derive(Debug, Serialize)]
pub struct Predicted {
    /// The most probable classes, most probable first.
    pub top: Vec<Prediction>,
    /// Every class name, in the order of the network's outputs.
    pub classes: Vec<String>,
    /// The side of the square image the network saw.
    pub image_size: usize,
    /// The record that answered.
    pub checkpoint: PathBuf,
    /// Images in the forward pass that answered (micro-batching).
    pub batch_size: usize,
    /// Milliseconds from the request's arrival to the answer.
    pub time_ms: f64,
    /// The image as the network saw it (a PNG data URL), when asked with `?preview=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// Why, from `POST /v1/explain`: the Grad-CAM map of one class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<ExplainedMap>,
}

/// The Grad-CAM map of one class, as `POST /v1/explain` answers it.
#[derive(Debug, Serialize)]
pub struct ExplainedMap {
    /// The class explained.
    pub class: usize,
    /// How: `gradcam` or `gradcam++`.
    pub method: Method,
    /// Its name.
    pub label: String,
    /// The map on the last convolution's grid, scaled to [0, 1], row by row.
    pub grid: Vec<Vec<f32>>,
    /// The map upsampled to the network's input side in viridis (0 dark violet, 1 yellow), a
    /// PNG data URL to lay over the preview.
    pub png: String,
}

/// What a prediction asks for beyond the top classes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// Read the image with Fashion-MNIST's inversion.
    pub invert: bool,
    /// Answer the image as the network saw it.
    pub preview: bool,
    /// Explain the prediction: which class (its top one where the target's class is `None`),
    /// by which method.
    pub explain: Option<Target>,
}

/// The limits of a request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest body.
    pub body_bytes: usize,
    /// The longest a request may take, reading its body included.
    pub request_timeout: Duration,
}

/// Loads the run's record again: the new model's description, or why it cannot.
pub type Reloader = Box<dyn Fn() -> anyhow::Result<ModelInfo> + Send + Sync>;

/// Why a reload was refused; the old model keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefused {
    /// The record cannot be loaded.
    #[error("{0:#}")]
    Unloadable(anyhow::Error),
    /// It answers other classes.
    #[error(
        "the new record answers other classes ({}) than the served one ({}); restart the \
         server to serve it", new.join(", "), served.join(", ")
    )]
    OtherClasses {
        /// The new record's classes.
        new: Vec<String>,
        /// The served model's.
        served: Vec<String>,
    },
    /// It reads other images: (what it reads, channels, side).
    #[error(
        "the new record reads {} {}-channel {}-px images, the served one {} {}-channel {}-px \
         ones; restart the server to serve it", new.0, new.1, new.2, served.0, served.1, served.2
    )]
    OtherImages {
        /// The new record's input.
        new: (&'static str, usize, usize),
        /// The served model's.
        served: (&'static str, usize, usize),
    },
    /// Loading crashed.
    #[error("loading the record failed")]
    Crashed,
}

/// Why a prediction has no answer.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// `top` is not a class count of the model.
    #[error("top={top} is out of range: the model has {classes} classes (use 1 to {classes})")]
    TopOutOfRange {
        /// Asked for.
        top: usize,
        /// The model's classes.
        classes: usize,
    },
    /// This run has no inverted reading (`?invert=true`).
    #[error("invert=true: {0}")]
    NoInvert(String),
    /// `class` is not a class of the model.
    #[error("class={class} is out of range: the model has {classes} classes (use 0 to {})", classes - 1)]
    ClassOutOfRange {
        /// Asked for.
        class: usize,
        /// The model's classes.
        classes: usize,
    },
    /// The upload is not an image the network can read.
    #[error("{0:#}")]
    Unreadable(anyhow::Error),
    /// Reading the upload crashed.
    #[error("reading the image failed")]
    ReaderCrashed,
    /// The queue is full.
    #[error("the server is busy (its queue is full); retry after the time in Retry-After")]
    Busy,
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
    /// The model failed on the batch.
    #[error(transparent)]
    ModelFailed(#[from] ModelFailed),
}

/// Why a run has no inverted reading of uploads (`?invert=true`): it reads a folder's images.
#[derive(Debug, Clone)]
pub struct NoInvert(pub String);

/// The state the routes share.
pub struct App {
    queue: Queue,
    plain: Reader,
    /// The reader of `?invert=true`, or why the run has none.
    inverted: Result<Reader, NoInvert>,
    info: RwLock<ModelInfo>,
    reloader: Arc<Reloader>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Bounds the uploads decoded at once (each may take up to 64 MiB), so that many
    /// concurrent large uploads cannot exhaust memory.
    decoding: tokio::sync::Semaphore,
    token: Option<String>,
    ready: AtomicBool,
    /// The limits of a request.
    pub limits: Limits,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
}

/// The parts an [`App`] is made of.
pub struct Parts {
    /// The queue to the model worker.
    pub queue: Queue,
    /// The reader of uploads, and of `?invert=true` ones.
    pub readers: (Reader, Result<Reader, NoInvert>),
    /// The loaded model.
    pub info: ModelInfo,
    /// Loads the record again.
    pub reloader: Reloader,
    /// The bearer token, when the server has one.
    pub token: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

impl App {
    /// The state, ready to serve.
    pub fn new(parts: Parts) -> Self {
        Self {
            queue: parts.queue,
            plain: parts.readers.0,
            inverted: parts.readers.1,
            info: RwLock::new(parts.info),
            reloader: Arc::new(parts.reloader),
            reloading: tokio::sync::Mutex::new(()),
            decoding: tokio::sync::Semaphore::new(decoders()),
            token: parts.token,
            ready: AtomicBool::new(true),
            limits: parts.limits,
            metrics: parts.metrics,
        }
    }

    /// The served model.
    pub fn info(&self) -> ModelInfo {
        self.info.read().expect("not poisoned").clone()
    }

    /// The bearer token, when the server has one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the server takes new work (false once it is stopping).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the server as stopping.
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Reads `body` as the network reads images, queues it and waits for its answer.
    pub async fn predict(
        &self,
        body: Bytes,
        top: usize,
        extras: Extras,
        arrived: Instant,
    ) -> Result<Predicted, PredictError> {
        let info = self.info();
        let classes = info.classes.len();
        if top == 0 || top > classes {
            return Err(PredictError::TopOutOfRange { top, classes });
        }
        if let Some(class) = extras
            .explain
            .and_then(|t| t.class)
            .filter(|&class| class >= classes)
        {
            return Err(PredictError::ClassOutOfRange { class, classes });
        }
        let arriving = self.queue.arriving();
        let input = self.read_upload(body, extras.invert).await?;
        let preview = extras.preview.then(|| preview_png(&input, &info));
        let mut answer = self.ask_model(input, top, extras.explain, arriving).await?;
        let explanation = answer.explanation.take().map(|map| ExplainedMap {
            class: map.class,
            method: map.method,
            label: info.classes.get(map.class).cloned().unwrap_or_default(),
            png: data_url(&heatmap_png(&map, info.image_size)),
            grid: map.grid,
        });
        Ok(Predicted {
            explanation,
            top: answer.top,
            classes: info.classes,
            image_size: info.image_size,
            checkpoint: answer.checkpoint,
            batch_size: answer.batch,
            time_ms: arrived.elapsed().as_secs_f64() * 1e3,
            preview,
        })
    }

    /// The network's input for an uploaded image, decoded off the async threads.
    async fn read_upload(&self, body: Bytes, invert: bool) -> Result<Vec<f32>, PredictError> {
        let reader = match invert {
            false => self.plain.clone(),
            true => self
                .inverted
                .clone()
                .map_err(|NoInvert(why)| PredictError::NoInvert(why))?,
        };
        let _permit = self.decoding.acquire().await.expect("never closed");
        let read = tokio::task::spawn_blocking(move || {
            reader.read(Encoded::Bytes {
                name: "the uploaded image",
                bytes: &body,
            })
        })
        .await;
        match read {
            Ok(input) => input.map_err(PredictError::Unreadable),
            Err(_) => Err(PredictError::ReaderCrashed),
        }
    }

    /// Queues `input` for the model thread (no longer `arriving`) and waits for its answer.
    async fn ask_model(
        &self,
        input: Vec<f32>,
        top: usize,
        explain: Option<Target>,
        arriving: Arriving,
    ) -> Result<Answer, PredictError> {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.submit(Job {
            input,
            top,
            explain,
            reply,
        });
        drop(arriving);
        queued.map_err(|refused| match refused {
            Refused::Busy => PredictError::Busy,
            Refused::Stopped => PredictError::Stopping,
        })?;
        Ok(answer.await.map_err(|_| PredictError::Stopping)??)
    }

    /// Loads the run's record again and hands it to the worker, which takes it before its next
    /// batch; requests in flight finish on the old model. A record that cannot be loaded, or
    /// reads other images, is refused and the old model keeps serving. `why` names the trigger
    /// in the log line.
    pub async fn reload(&self, why: &str) -> Result<ModelInfo, ReloadRefused> {
        let _one = self.reloading.lock().await;
        let reloader = self.reloader.clone();
        let loaded = match tokio::task::spawn_blocking(move || reloader()).await {
            Ok(loaded) => loaded.map_err(ReloadRefused::Unloadable),
            Err(_) => Err(ReloadRefused::Crashed),
        };
        let outcome = loaded.and_then(|new| {
            self.info().same_input(&new)?;
            Ok(new)
        });
        self.metrics.reloaded(outcome.is_ok());
        match &outcome {
            Ok(new) => {
                eprintln!("{why}: reloaded {}", new.checkpoint.display());
                *self.info.write().expect("not poisoned") = new.clone();
            }
            Err(err) => eprintln!("{why}: reload refused, the old model keeps serving: {err}"),
        }
        outcome
    }
}

/// How many uploads are decoded at once: two per core keeps every core busy.
fn decoders() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The network's input as a PNG data URL (channel after channel, normalised values taken back
/// to [0, 1] first), as `info`'s network sees it.
fn preview_png(input: &[f32], info: &ModelInfo) -> String {
    let (channels, side) = (info.channels, info.image_size);
    let area = side * side;
    let byte = |channel: usize, v: f32| {
        let v = match info.preprocess.mean_std(channel, channels) {
            Some((mean, std)) => v * std + mean,
            None => v,
        };
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    };
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    let (pixels, colour) = if channels == 3 {
        let rgb = (0..area)
            .flat_map(|i| [0, 1, 2].map(|c| byte(c, input[c * area + i])))
            .collect::<Vec<u8>>();
        (rgb, image::ExtendedColorType::Rgb8)
    } else {
        (
            input.iter().map(|&v| byte(0, v)).collect(),
            image::ExtendedColorType::L8,
        )
    };
    image::ImageEncoder::write_image(encoder, &pixels, side as u32, side as u32, colour)
        .expect("encoding a PNG in memory cannot fail");
    data_url(&png)
}

fn data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", STANDARD.encode(png))
}
