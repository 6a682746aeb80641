//! The model worker: one thread owns the network and answers queued requests in batches.
//!
//! Batching is ours to write: Burn runs one forward pass on whatever batch it is given. A
//! request waits at most `max_wait` for others to join it, up to `max_batch`, unless the server
//! looks idle (the last pass answered one request and no other is being read): a busy server
//! runs fewer, larger passes (more images per second) and a lone request is answered at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use tokio::sync::oneshot;

use crate::backend::on_rayon_worker;
use crate::explain::{Explanation, GradCam, Target};
use crate::inference::{LoadedModel, Prediction, input_batch, predict, rank};

use super::metrics::Metrics;

/// One image to classify, as the network reads it.
pub struct Job {
    /// The network's input values.
    pub input: Vec<f32>,
    /// How many classes to answer.
    pub top: usize,
    /// Whether to explain the prediction, and which class by which method.
    pub explain: Option<Target>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Answer, ModelFailed>>,
}

/// The model failed on a batch (a panic inside the backend); the worker goes on.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the model failed on this batch")]
pub struct ModelFailed;

/// The worker's answer to one job.
#[derive(Debug)]
pub struct Answer {
    /// The most probable classes, most probable first.
    pub top: Vec<Prediction>,
    /// The record that answered.
    pub checkpoint: PathBuf,
    /// How many images shared the forward pass.
    pub batch: usize,
    /// The Grad-CAM map, when the job asked for it.
    pub explanation: Option<Explanation>,
}

/// How requests are batched.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The most images in one forward pass.
    pub max_batch: usize,
    /// The longest a request waits for others to join it.
    pub max_wait: Duration,
    /// The most requests waiting; beyond it new ones are refused.
    pub queue: usize,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: try again shortly.
    Busy,
    /// The worker has stopped (the server is shutting down).
    Stopped,
}

/// The requests' side of the worker. Dropping it lets the worker finish what is queued and
/// stop.
pub struct Queue {
    jobs: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    arriving: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// A request on its way to the queue (its image being read); the worker waits for it to join
/// a pass. Counted until dropped.
pub struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Queue {
    /// Counts a request as on its way until the result is dropped (after [`Queue::submit`]).
    pub fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        Arriving(self.arriving.clone())
    }

    /// Queues `job`, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        // Counted before sending, so that the worker never sees a depth below zero.
        let depth = self.depth.fetch_add(1, Ordering::SeqCst) + 1;
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.set(depth as i64);
                Ok(())
            }
            Err(err) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                Err(match err {
                    TrySendError::Full(_) => Refused::Busy,
                    TrySendError::Disconnected(_) => Refused::Stopped,
                })
            }
        }
    }
}

/// A model waiting to replace the worker's one before its next batch.
pub type NextModel<A> = Arc<Mutex<Option<LoadedModel<A>>>>;

/// The worker's two views of one record: the network without autodiff for predictions, and
/// Grad-CAM's (the same weights, no copy) for explanations.
struct Served<A: AutodiffBackend> {
    model: LoadedModel<A::InnerBackend>,
    explainer: GradCam<A>,
}

impl<A: AutodiffBackend> Served<A> {
    fn new(loaded: LoadedModel<A>) -> Self {
        Self {
            model: loaded.valid(),
            explainer: GradCam::new(loaded.net),
        }
    }
}

/// Starts the worker thread on `model`; it runs until the [`Queue`] is dropped and every
/// queued job is answered.
pub fn start<A: AutodiffBackend>(
    model: LoadedModel<A>,
    device: A::Device,
    batching: Batching,
    next: NextModel<A>,
    metrics: Arc<Metrics>,
) -> (Queue, JoinHandle<()>) {
    let (jobs, received) = sync_channel(batching.queue);
    let depth = Arc::new(AtomicUsize::new(0));
    let arriving = Arc::new(AtomicUsize::new(0));
    let worker = Worker {
        served: Served::new(model),
        device,
        batching,
        next,
        depth: depth.clone(),
        arriving: arriving.clone(),
        metrics: metrics.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("model".into())
        .spawn(move || worker.run(received))
        .expect("the model thread starts");
    (
        Queue {
            jobs,
            depth,
            arriving,
            metrics,
        },
        handle,
    )
}

struct Worker<A: AutodiffBackend> {
    served: Served<A>,
    device: A::Device,
    batching: Batching,
    next: NextModel<A>,
    depth: Arc<AtomicUsize>,
    arriving: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// How often a waiting worker looks again whether requests are still on their way.
const RECHECK: Duration = Duration::from_micros(500);

impl<A: AutodiffBackend> Worker<A> {
    fn run(mut self, jobs: Receiver<Job>) {
        let mut last = 0;
        while let Ok(first) = jobs.recv() {
            let batch = self.gather(first, &jobs, last);
            last = batch.len();
            if let Some(model) = self.next.lock().expect("not poisoned").take() {
                self.served = Served::new(model);
            }
            self.answer(batch);
        }
    }

    /// `first`, the jobs queued behind it and those that arrive within `max_wait` of it, up to
    /// `max_batch`; without waiting when the server looks idle (the last pass was `last`
    /// images).
    fn gather(&self, first: Job, jobs: &Receiver<Job>, last: usize) -> Vec<Job> {
        let deadline = Instant::now() + self.batching.max_wait;
        let mut batch = vec![first];
        while batch.len() < self.batching.max_batch {
            if let Ok(job) = jobs.try_recv() {
                batch.push(job);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let idle = last <= 1 && self.arriving.load(Ordering::SeqCst) == 0;
            if left.is_zero() || idle {
                break;
            }
            match jobs.recv_timeout(left.min(RECHECK)) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let depth = self.depth.fetch_sub(batch.len(), Ordering::SeqCst) - batch.len();
        self.metrics.queue_depth.set(depth as i64);
        batch
    }

    /// One forward pass for `batch` (two when some jobs ask for an explanation and some do
    /// not); every job gets its answer, or the reason it has none.
    fn answer(&self, batch: Vec<Job>) {
        let size = batch.len();
        self.metrics.batch_size.observe(size as f64);
        let (explained, plain): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| job.explain.is_some());
        for jobs in [plain, explained] {
            if jobs.is_empty() {
                continue;
            }
            let (inputs, replies): (Vec<_>, Vec<_>) = jobs
                .into_iter()
                .map(|j| (j.input, (j.top, j.explain, j.reply)))
                .unzip();
            let asked: Vec<Option<Target>> = replies.iter().map(|r| r.1).collect();
            // A panic inside the backend must not leave the server without its worker.
            let answers = catch_unwind(AssertUnwindSafe(|| {
                on_rayon_worker(|| self.pass(inputs, &asked))
            }));
            match answers {
                Ok(Some(answers)) => {
                    for ((top, _, reply), (mut predictions, explanation)) in
                        replies.into_iter().zip(answers)
                    {
                        predictions.truncate(top);
                        let _ = reply.send(Ok(Answer {
                            top: predictions,
                            checkpoint: self.served.model.source.clone(),
                            batch: size,
                            explanation,
                        }));
                    }
                }
                Ok(None) | Err(_) => {
                    for (_, _, reply) in replies {
                        let _ = reply.send(Err(ModelFailed));
                    }
                }
            }
        }
    }

    /// Every class ranked for each input, with its map where `asked` wants one (all or none
    /// of one pass's jobs do); `None` when the explainer refuses a class.
    fn pass(
        &self,
        inputs: Vec<Vec<f32>>,
        asked: &[Option<Target>],
    ) -> Option<Vec<(Vec<Prediction>, Option<Explanation>)>> {
        let model = &self.served.model;
        let classes = model.data.classes.len();
        if asked.iter().all(Option::is_none) {
            let ranked = predict(model, inputs, classes, &self.device);
            return Some(ranked.into_iter().map(|r| (r, None)).collect());
        }
        let images = input_batch(model, inputs, &self.device);
        let targets: Vec<Target> = asked.iter().map(|a| a.unwrap_or_default()).collect();
        let (maps, logits) = self.served.explainer.explain(images, &targets).ok()?;
        let ranked = rank(logits, &model.data.classes, classes);
        Some(ranked.into_iter().zip(maps.into_iter().map(Some)).collect())
    }
}
