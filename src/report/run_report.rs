//! `report.json` / `report.md`: what a run did, from its config, logs and epoch journal.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::data::path_text::{self, Shown};
use crate::data::{ImageFolder, PassedOver, SkippedFile};
use crate::run::{EarlyStop, EpochMetrics, RunDir, TrainingConfig, not_d2l};

/// One epoch of the report; metrics come from burn-train's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_acc: f64,
    /// Mean test loss (absent if the epoch was not evaluated).
    pub test_loss: Option<f64>,
    /// Test accuracy (absent if the epoch was not evaluated).
    pub test_acc: Option<f64>,
    /// Training throughput, when the journal has the epoch.
    pub examples_per_sec: Option<f64>,
    /// Top-3 test accuracy, when the journal has it.
    #[serde(default)]
    pub test_top3: Option<f64>,
}

/// The last evaluation written into the run (`eval.json`: by `eval`, `report` or the end of
/// `train`), and whether its gallery of mistakes is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// The record evaluated.
    pub checkpoint: String,
    /// The images evaluated: a split's name or a folder.
    pub split: String,
    /// Examples evaluated.
    pub examples: u64,
    /// Images left out because they could not be read.
    #[serde(default)]
    pub left_out: usize,
    /// Overall accuracy.
    pub accuracy: f64,
    /// Whether `mistakes.html` and `mistakes.png` hold this evaluation's gallery.
    #[serde(default)]
    pub gallery: bool,
}

impl EvaluationSummary {
    /// The run's `eval.json`, if it has a readable one.
    pub fn of(run: &RunDir) -> Option<Self> {
        let text = std::fs::read_to_string(run.eval_file()).ok()?;
        let summary: Self = serde_json::from_str(&text).ok()?;
        let gallery = run.mistakes_file().exists();
        Some(Self { gallery, ..summary })
    }

    fn to_markdown(&self) -> String {
        let gallery = match self.gallery {
            true => {
                "; the most confident mistakes with their Grad-CAM maps: mistakes.html, \
                     mistakes.png"
            }
            false => "",
        };
        format!(
            "- evaluation of {} on {} ({} images): accuracy {:.3}; eval.json, confusion.svg{gallery}\n",
            self.checkpoint, self.split, self.examples, self.accuracy
        )
    }
}

/// d2l's closing line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    /// Training loss of the last epoch.
    pub loss: f64,
    /// Training accuracy of the last epoch.
    pub train_acc: f64,
    /// Test accuracy of the last epoch.
    pub test_acc: Option<f64>,
}

/// The settings that are not d2l's, a line per `--help` section (as their declarations phrase
/// them), then where the weights started and why the run stopped early.
fn settings_lines(c: &TrainingConfig, early_stop: Option<&EarlyStop>) -> String {
    let mut md: String = not_d2l(c)
        .into_iter()
        .map(|(heading, phrases)| format!("- {}: {}\n", heading.to_lowercase(), phrases.join(", ")))
        .collect();
    if let Some(loaded) = &c.init.loaded {
        md += &format!("- start: {loaded}\n");
    }
    if let Some(stop) = early_stop {
        md += &format!("- {}\n", stop.describe());
    }
    md
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's configuration.
    pub config: TrainingConfig,
    /// Backend and device of the last epoch run.
    pub device: Option<String>,
    /// Whether every configured epoch finished.
    pub finished: bool,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochRow>,
    /// The best epoch by [`RunDir::best_epoch`]'s rule (what `--checkpoint best` loads).
    pub best_epoch: Option<usize>,
    /// Metrics of the last logged epoch.
    pub final_metrics: Option<FinalMetrics>,
    /// Training examples per second over the journalled epochs.
    pub examples_per_sec: Option<f64>,
    /// Wall seconds of the journalled epochs (training and test passes).
    pub wall_seconds: f64,
    /// An image-folder run's images: the folder, its classes and the files left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesSummary>,
    /// Why the run ended before its last epoch, when early stopping ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
    /// The last evaluation written into the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationSummary>,
}

/// What an image-folder run learnt from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesSummary {
    /// The folder.
    #[serde(with = "path_text")]
    pub folder: PathBuf,
    /// Its classes, in label order.
    pub classes: Vec<String>,
    /// Training images listed when the run started.
    pub train: usize,
    /// Validation images listed when the run started.
    pub val: usize,
    /// Training and validation images that could not be read while training, and so were
    /// left out of the epochs from then on (each counted once).
    #[serde(default)]
    pub left_out_while_training: [usize; 2],
    /// Images left out because they could not be read (when the scan found them, and while
    /// training).
    pub skipped: usize,
    /// The first few of those, with why.
    pub skipped_examples: Vec<String>,
    /// Files left out because their names are not those of images.
    pub not_images: usize,
    /// FIFOs, sockets, devices and links the scan did not follow.
    #[serde(default)]
    pub passed_over: PassedOver,
}

/// How many left-out images the report names.
const SKIPPED_SHOWN: usize = 5;

impl ImagesSummary {
    /// The summary of `run`'s image folder; `None` for a Fashion-MNIST run.
    fn of(run: &RunDir, config: &TrainingConfig) -> Result<Option<Self>> {
        if config.data.images.is_none() {
            return Ok(None);
        }
        let folder: ImageFolder = run.load_json(&run.images_file())?;
        let during: Vec<SkippedFile> = std::fs::read_to_string(run.bad_images_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<SkippedFile>(l).ok())
            .collect();
        let left_out = [&folder.train, &folder.val].map(|split| {
            let files: HashSet<PathBuf> = split.iter().map(|f| folder.root.join(&f.path)).collect();
            let failed: HashSet<&PathBuf> = during.iter().map(|s| &s.path).collect();
            failed.into_iter().filter(|p| files.contains(*p)).count()
        });
        let during = during.into_iter().map(|s| s.reason);
        let all: Vec<String> = folder
            .skipped
            .iter()
            .map(|s| s.reason.clone())
            .chain(during)
            .collect();
        Ok(Some(Self {
            classes: folder.classes,
            train: folder.train.len(),
            val: folder.val.len(),
            left_out_while_training: left_out,
            skipped: all.len(),
            skipped_examples: all.into_iter().take(SKIPPED_SHOWN).collect(),
            not_images: folder.not_images,
            passed_over: folder.passed_over,
            folder: folder.root,
        }))
    }

    fn to_markdown(&self) -> String {
        let mut md = format!(
            "- images: {}, {} classes ({}), {} training and {} validation images\n",
            Shown(&self.folder),
            self.classes.len(),
            self.classes.join(", "),
            self.train,
            self.val
        );
        let [train, val] = self.left_out_while_training;
        if train + val > 0 {
            md += &format!(
                "- read {} training and {} validation images in every epoch: {train} and {val} \
                 could not be read in some epochs while training and were left out of those\n",
                self.train - train,
                self.val - val
            );
        }
        if self.not_images > 0 {
            md += &format!(
                "- left out: {} files that are not images\n",
                self.not_images
            );
        }
        if self.passed_over.total() > 0 {
            md += &format!("- passed over: {}\n", self.passed_over.describe());
        }
        if self.skipped > 0 {
            md += &format!(
                "- left out as unreadable: {} images, e.g.\n{}",
                self.skipped,
                self.skipped_examples
                    .iter()
                    .map(|e| format!("  - {e}\n"))
                    .collect::<String>()
            );
        }
        md
    }
}

impl RunReport {
    /// Builds the report of `run` from its config.json, logs and journal.
    pub fn from_run(run: &RunDir) -> Result<Self> {
        let config = run.load_config()?;
        let journal = run.read_journal();
        let epochs: Vec<EpochRow> = run
            .read_history()
            .iter()
            .filter(|e| !e.train.is_empty())
            .map(|e| {
                let (train, test) = (e.train_totals(), e.test_totals());
                EpochRow {
                    epoch: e.epoch,
                    train_loss: train.loss,
                    train_acc: train.accuracy,
                    test_loss: test.map(|t| t.loss),
                    test_acc: test.map(|t| t.accuracy),
                    examples_per_sec: journal.get(&e.epoch).map(|j| j.metrics.examples_per_sec()),
                    test_top3: journal.get(&e.epoch).and_then(|j| j.metrics.test_top3),
                }
            })
            .collect();
        let final_metrics = epochs.last().map(|e| FinalMetrics {
            loss: e.train_loss,
            train_acc: e.train_acc,
            test_acc: e.test_acc,
        });
        let journalled: Vec<&EpochMetrics> = journal.values().map(|j| &j.metrics).collect();
        let examples: usize = journalled.iter().map(|m| m.train_examples).sum();
        let train_seconds: f64 = journalled.iter().map(|m| m.train_seconds).sum();
        let early_stop = run.early_stop();
        Ok(Self {
            finished: early_stop.is_some()
                || epochs
                    .last()
                    .is_some_and(|e| e.epoch == config.epochs && e.test_acc.is_some()),
            early_stop,
            device: journal.values().last().map(|j| j.device.clone()),
            best_epoch: run.best_epoch(),
            final_metrics,
            examples_per_sec: (train_seconds > 0.0).then(|| examples as f64 / train_seconds),
            wall_seconds: journalled.iter().map(|m| m.epoch_seconds).sum(),
            images: ImagesSummary::of(run, &config)?,
            evaluation: EvaluationSummary::of(run),
            epochs,
            config,
        })
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let c = &self.config;
        let source = self
            .images
            .as_ref()
            .map_or("Fashion-MNIST".into(), |i| i.folder.display().to_string());
        let mut md = format!("# AlexNet on {source}: run report\n\n");
        md += &format!(
            "- protocol: {} epochs, batch {}, SGD lr {}, resize {}, seed {}, train images {}, test images {}\n",
            c.epochs,
            c.batch_size,
            c.lr,
            c.model.image_size,
            c.seed,
            c.limit_train.map_or("all".into(), |n| n.to_string()),
            c.limit_test.map_or("all".into(), |n| n.to_string()),
        );
        md += &format!(
            "- device: {}\n",
            self.device.as_deref().unwrap_or("unknown")
        );
        md += &format!(
            "- finished: {}\n",
            if self.finished {
                "yes"
            } else {
                "no (resume with --resume)"
            }
        );
        if let Some(f) = &self.final_metrics {
            let test = f.test_acc.map_or("-".into(), |a| format!("{a:.3}"));
            let top3 = self
                .final_top3()
                .map_or(String::new(), |a| format!(", test top-3 acc {a:.3}"));
            md += &format!(
                "- final: loss {:.3}, train acc {:.3}, test acc {test}{top3}\n",
                f.loss, f.train_acc
            );
        }
        if let Some(best) = self.best_epoch {
            md += &format!("- best epoch (lowest test loss among kept checkpoints): {best}\n");
        }
        if let Some(rate) = self.examples_per_sec {
            md += &format!(
                "- {rate:.1} examples/sec; wall time {:.0} s\n",
                self.wall_seconds
            );
        }
        if let Some(evaluation) = &self.evaluation {
            md += &evaluation.to_markdown();
        }
        md += &settings_lines(c, self.early_stop.as_ref());
        if let Some(images) = &self.images {
            md += &images.to_markdown();
        }
        md += "\n| epoch | train loss | train acc | test loss | test acc | test top-3 | examples/sec |\n";
        md += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        for e in &self.epochs {
            md += &format!(
                "| {} | {:.3} | {:.3} | {} | {} | {} | {} |\n",
                e.epoch,
                e.train_loss,
                e.train_acc,
                opt(e.test_loss, 3),
                opt(e.test_acc, 3),
                opt(e.test_top3, 3),
                opt(e.examples_per_sec, 1)
            );
        }
        md
    }

    /// The final epoch's top-3 test accuracy, if measured.
    pub fn final_top3(&self) -> Option<f64> {
        self.epochs.last().and_then(|e| e.test_top3)
    }

    /// Writes `report.json` and `report.md` into the run.
    pub fn save(&self, run: &RunDir) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("reports serialise") + "\n";
        for (path, text) in run
            .report_files()
            .into_iter()
            .zip([json, self.to_markdown()])
        {
            crate::run::write_atomically(&path, text.as_bytes())?;
        }
        Ok(())
    }
}
