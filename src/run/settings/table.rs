//! The declaration of every setting, in `--help` order: the one place a setting is spelled.

use alexnet_model::{Arch, Preprocess};

use super::super::config::{
    AugmentConfig, DataConfig, LrSchedule, MAX_WORKERS, OptimizerConfig, OptimizerKind,
};
use super::{Check, Declaration, Kind, named, or_none, settings};

/// Whether `c` runs an optimizer other than SGD.
fn adam(c: &super::TrainingConfig) -> bool {
    c.optimizer.kind != OptimizerKind::Sgd
}

/// A path as config.json must hold it: UTF-8.
fn utf8(path: &Option<std::path::PathBuf>) -> bool {
    path.as_ref().is_none_or(|p| p.to_str().is_some())
}

const NOT_UTF8: &str = "{flag} {value} is not UTF-8, which config.json cannot hold; rename it, \
                        or give it through a link whose name is UTF-8";

const AT_LEAST_ONE: Check = Check {
    holds: |_| true,
    message: "{flag} must be at least 1",
    needs: None,
};

settings! {
    /// `epochs`.
    Epochs {
        field: "epochs",
        flag: "--epochs",
        help: "Passes over the training set [default: 10]; with --resume, may be raised",
        may_resume: true,
        show: |c| c.epochs.to_string(),
        set: |c, v| c.epochs = v.count(),
        checks: &[Check { holds: |c| c.epochs > 0, ..AT_LEAST_ONE }],
    }
    /// `batch_size`.
    BatchSize {
        field: "batch_size",
        flag: "--batch-size",
        help: "Images per SGD step [default: 128]",
        show: |c| c.batch_size.to_string(),
        set: |c, v| c.batch_size = v.count(),
        checks: &[Check { holds: |c| c.batch_size > 0, ..AT_LEAST_ONE }],
    }
    /// `lr`: the learning rate.
    Lr {
        field: "lr",
        flag: "--lr",
        help: "SGD learning rate [default: 0.01]",
        kind: Kind::Number,
        show: |c| c.lr.to_string(),
        set: |c, v| c.lr = v.number(),
        checks: &[
            Check {
                holds: |c| c.lr.is_finite() && c.lr > 0.0,
                message: "{flag} {value} is not a usable learning rate: give a finite number \
                          above 0 (d2l uses 0.01)",
                needs: None,
            },
            Check {
                holds: |c| c.optimizer.lr_schedule != LrSchedule::Cosine || c.lr <= 1.0,
                message: "{flag} {value} must be at most 1 with {needs} cosine",
                needs: Some(Setting::LrSchedule),
            },
        ],
    }
    /// `model.arch`: which AlexNet.
    Architecture {
        field: "model.arch",
        flag: "--arch",
        help: "The network [default: d2l]",
        heading: Some("Network"),
        kind: Kind::Choice(&[
            ("d2l", "d2l's chapter network, for Fashion-MNIST (96-256-384-384-256 channels)"),
            (
                "imagenet",
                "torchvision's alexnet(), the ImageNet network (64-192-384-256-256 channels, \
                 an adaptive pool to 6x6)",
            ),
        ]),
        show: |c| c.model.arch.to_string(),
        set: |c, v| c.model.arch = named(&Arch::ALL, &v.text()),
        report: Some("{}"),
    }
    /// `model.image_size`: the side images are resized to (checked by the network's config).
    ImageSize {
        field: "model.image_size",
        flag: "--resize",
        help: "Side the 28x28 images are resized to (bilinear), at least 65 [default: 224]",
        show: |c| c.model.image_size.to_string(),
        set: |c, v| c.model.image_size = v.count(),
    }
    /// `limit_train`: training images used.
    LimitTrain {
        field: "limit_train",
        flag: "--limit-train",
        value_name: Some("N"),
        help: "Train on the first N training images only [default: all 60,000]",
        show: |c| or_none(c.limit_train, "all"),
        set: |c, v| c.limit_train = Some(v.count()),
        checks: &[Check {
            holds: |c| c.limit_train != Some(0),
            message: "the train split is empty after {flag} 0; use a limit of at least 1",
            needs: None,
        }],
    }
    /// `limit_test`: test images used.
    LimitTest {
        field: "limit_test",
        flag: "--limit-test",
        value_name: Some("N"),
        help: "Evaluate on the first N test images only [default: all 10,000]",
        show: |c| or_none(c.limit_test, "all"),
        set: |c, v| c.limit_test = Some(v.count()),
        checks: &[Check {
            holds: |c| c.limit_test != Some(0),
            message: "the test split is empty after {flag} 0; use a limit of at least 1",
            needs: None,
        }],
    }
    /// `seed`.
    Seed {
        field: "seed",
        flag: "--seed",
        help: "Seed of weight init, dropout and shuffling [default: 0]",
        kind: Kind::Seed,
        show: |c| c.seed.to_string(),
        set: |c, v| c.seed = v.seed(),
    }
    /// `data.seed`: the seed of the data order, apart from the weights'.
    DataSeed {
        field: "data.seed",
        flag: "--data-seed",
        help: "Seed of the batch order and the augmentation draws, apart from --seed's weights \
               and dropout [default: --seed]",
        kind: Kind::Seed,
        show: |c| or_none(c.data.seed, "seed's"),
        set: |c, v| c.data.seed = Some(v.seed()),
    }
    /// `num_workers`: data-loading threads.
    NumWorkers {
        field: "num_workers",
        flag: "--num-workers",
        help: "Data-loading threads; more than 1 makes the batch order depend on thread timing \
               [default: 1]",
        may_resume: true,
        show: |c| c.num_workers.to_string(),
        set: |c, v| c.num_workers = v.count(),
        checks: &[Check {
            holds: |c| c.num_workers <= MAX_WORKERS,
            message: "{flag} {value} is too many: each is a thread holding a batch ahead; use \
                      at most 64",
            needs: None,
        }],
    }
    /// `data.images`: the image folder (none: Fashion-MNIST).
    Images {
        field: "data.images",
        flag: "--images",
        value_name: Some("DIR"),
        help: "Train on a folder of labelled images instead of Fashion-MNIST: DIR/<class>/… (a \
               seeded --val-split of each class held out), or DIR/train/<class>/… and \
               DIR/val/<class>/…",
        heading: Some("Images"),
        kind: Kind::Path,
        show: |c| c.data.images.as_ref().map_or("none (Fashion-MNIST)".into(), |p| {
            p.display().to_string()
        }),
        set: |c, v| c.data.images = Some(v.path()),
        checks: &[
            Check { holds: |c| utf8(&c.data.images), message: NOT_UTF8, needs: None },
            Check {
                holds: |c| c.data.images.is_some() || c.data.reads_fashion_mnist(),
                message: "{flag} none must name an image folder to train classes other than \
                          Fashion-MNIST's",
                needs: None,
            },
        ],
    }
    /// `data.val_split`: the fraction of a folder held out.
    ValSplit {
        field: "data.val_split",
        flag: "--val-split",
        value_name: Some("F"),
        help: "The fraction of each class held out for validation when DIR has no train/ and \
               val/ [default: 0.1]",
        heading: Some("Images"),
        kind: Kind::Number,
        show: |c| c.data.val_split.to_string(),
        set: |c, v| c.data.val_split = v.number(),
        checks: &[Check {
            holds: |c| c.data.val_split > 0.0 && c.data.val_split < 1.0,
            message: "{flag} {value} must lie in (0, 1) (0.1 is usual)",
            needs: None,
        }],
        report: Some("val split {}"),
    }
    /// `model.in_channels`: 1 (grey) or 3 (colour).
    Channels {
        field: "model.in_channels",
        flag: "--channels",
        value_name: Some("1|3"),
        help: "Input channels: 1 (grey) or 3 (colour) [default: 1 when every image is grey, \
               else 3]",
        heading: Some("Images"),
        show: |c| c.model.in_channels.to_string(),
        set: |c, v| c.model.in_channels = v.count(),
        checks: &[
            Check {
                holds: |c| c.data.images.is_some() || c.model.in_channels == 1,
                message: "{flag} {value} applies to an image folder ({needs}); Fashion-MNIST is \
                          grey",
                needs: Some(Setting::Images),
            },
            Check {
                holds: |c| matches!(c.model.in_channels, 1 | 3),
                message: "{flag} {value} must be 1 (grey) or 3 (colour)",
                needs: None,
            },
        ],
        report: Some("{} channels"),
    }
    /// `data.preprocess`: how an image becomes the network's input.
    Preprocess {
        field: "data.preprocess",
        flag: "--preprocess",
        help: "How images become the network's input [default: d2l; imagenet when --init-from \
               names ImageNet weights]",
        heading: Some("Images"),
        kind: Kind::Choice(&[
            (
                "d2l",
                "Resized to --resize (a non-square image's shorter side, then the centre), \
                 pixels in [0, 1]",
            ),
            (
                "imagenet",
                "torchvision's ImageNet transform: the shorter side to 256/224 of --resize, the \
                 centre kept, red, green and blue normalised by ImageNet's mean and std",
            ),
        ]),
        show: |c| c.data.preprocess.to_string(),
        set: |c, v| c.data.preprocess = named(&Preprocess::ALL, &v.text()),
        checks: &[Check {
            holds: |c| c.data.preprocess == Preprocess::D2l || c.model.in_channels == 3,
            message: "{flag} {value} normalises red, green and blue: it needs {needs} 3 (an \
                      image folder)",
            needs: Some(Setting::Channels),
        }],
        report: Some("{} preprocessing"),
    }
    /// `data.skip_bad_images`.
    SkipBadImages {
        field: "data.skip_bad_images",
        flag: "--skip-bad-images",
        help: "Leave images that cannot be read out, and list them in the report, instead of \
               refusing the folder",
        heading: Some("Images"),
        kind: Kind::Switch,
        show: |c| c.data.skip_bad_images.to_string(),
        set: |c, _| c.data.skip_bad_images = true,
        report: Some("unreadable images left out"),
    }
    /// `data.max_bad_fraction`: the share of an epoch's images that may fail to read.
    MaxBadFraction {
        field: "data.max_bad_fraction",
        flag: "--max-bad-fraction",
        value_name: Some("F"),
        help: "With --skip-bad-images: stop the run when more than this fraction of an epoch's \
               images cannot be read while training (the checkpoint of the epoch before is \
               kept) [default: 0.01]",
        heading: Some("Images"),
        kind: Kind::Number,
        may_resume: true,
        show: |c| c.data.max_bad_fraction.to_string(),
        set: |c, v| c.data.max_bad_fraction = v.number(),
        checks: &[
            Check {
                holds: |c| (0.0..=1.0).contains(&c.data.max_bad_fraction),
                message: "{flag} {value} must lie in [0, 1] (0.01 is the default)",
                needs: None,
            },
            Check {
                holds: |c| {
                    c.data.skip_bad_images
                        || c.data.max_bad_fraction == DataConfig::new().max_bad_fraction
                },
                message: "{flag} {value} applies with {needs}",
                needs: Some(Setting::SkipBadImages),
            },
        ],
        report: Some("max bad fraction {}"),
    }
    /// `optimizer.momentum`.
    Momentum {
        field: "optimizer.momentum",
        flag: "--momentum",
        help: "SGD momentum, dampening 0 as in PyTorch [default: 0, d2l's plain SGD]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.momentum.to_string(),
        set: |c, v| c.optimizer.momentum = v.number(),
        checks: &[
            Check {
                holds: |c| (0.0..1.0).contains(&c.optimizer.momentum),
                message: "{flag} {value} must lie in [0, 1) (0.9 is usual)",
                needs: None,
            },
            Check {
                holds: |c| !adam(c) || (c.optimizer.momentum == 0.0 && !c.optimizer.nesterov),
                message: "{flag} {value} applies to {needs} sgd (adam's beta1 is its momentum)",
                needs: Some(Setting::Optimizer),
            },
        ],
        report: Some("momentum {}"),
    }
    /// `optimizer.nesterov`.
    Nesterov {
        field: "optimizer.nesterov",
        flag: "--nesterov",
        help: "Nesterov momentum (with --momentum)",
        heading: Some("Optimizer"),
        kind: Kind::Switch,
        show: |c| c.optimizer.nesterov.to_string(),
        set: |c, _| c.optimizer.nesterov = true,
        checks: &[Check {
            holds: |c| !c.optimizer.nesterov || c.optimizer.momentum > 0.0,
            message: "{flag} {value} needs a {needs} above 0, e.g. {needs} 0.9",
            needs: Some(Setting::Momentum),
        }],
        report: Some("nesterov"),
    }
    /// `optimizer.weight_decay`.
    WeightDecay {
        field: "optimizer.weight_decay",
        flag: "--weight-decay",
        help: "L2 weight decay, PyTorch's `weight_decay` [default: 0]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.weight_decay.to_string(),
        set: |c, v| c.optimizer.weight_decay = v.number(),
        checks: &[Check {
            holds: |c| c.optimizer.weight_decay.is_finite() && c.optimizer.weight_decay >= 0.0,
            message: "{flag} {value} must be 0 or more (5e-4 is usual)",
            needs: None,
        }],
        report: Some("weight decay {}"),
    }
    /// `optimizer.lr_schedule`.
    LrSchedule {
        field: "optimizer.lr_schedule",
        flag: "--lr-schedule",
        help: "Learning-rate schedule over the run [default: constant]",
        heading: Some("Optimizer"),
        kind: Kind::Choice(&[
            ("constant", "`lr` throughout (d2l)"),
            ("step", "`lr` times `lr_gamma` every `lr_step_epochs` epochs"),
            ("cosine", "Cosine annealing from `lr` to 0 over the run"),
        ]),
        show: |c| c.optimizer.lr_schedule.to_string(),
        set: |c, v| c.optimizer.lr_schedule = named(&LrSchedule::ALL, &v.text()),
        report: Some("lr schedule {}"),
    }
    /// `optimizer.lr_step_epochs`.
    LrStepEpochs {
        field: "optimizer.lr_step_epochs",
        flag: "--lr-step-epochs",
        value_name: Some("N"),
        help: "Epochs between two decays of `--lr-schedule step`",
        heading: Some("Optimizer"),
        show: |c| or_none(c.optimizer.lr_step_epochs, "none"),
        set: |c, v| c.optimizer.lr_step_epochs = Some(v.count()),
        checks: &[
            Check {
                holds: |c| {
                    c.optimizer.lr_schedule != LrSchedule::Step
                        || c.optimizer.lr_step_epochs.is_some_and(|n| n > 0)
                },
                message: "{flag} {value} must be at least 1 with {needs} step",
                needs: Some(Setting::LrSchedule),
            },
            Check {
                holds: |c| {
                    c.optimizer.lr_schedule == LrSchedule::Step
                        || c.optimizer.lr_step_epochs.is_none()
                },
                message: "{flag} {value} only applies to {needs} step",
                needs: Some(Setting::LrSchedule),
            },
        ],
        report: Some("every {} epochs"),
    }
    /// `optimizer.lr_gamma`.
    LrGamma {
        field: "optimizer.lr_gamma",
        flag: "--lr-gamma",
        help: "Decay factor of `--lr-schedule step` [default: 0.1]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.lr_gamma.to_string(),
        set: |c, v| c.optimizer.lr_gamma = v.number(),
        checks: &[Check {
            holds: |c| c.optimizer.lr_gamma > 0.0 && c.optimizer.lr_gamma <= 1.0,
            message: "{flag} {value} must lie in (0, 1] (0.1 is usual)",
            needs: None,
        }],
        report: Some("x{} a step"),
    }
    /// `optimizer.warmup_epochs`.
    WarmupEpochs {
        field: "optimizer.warmup_epochs",
        flag: "--warmup-epochs",
        value_name: Some("E"),
        help: "Epochs over which the learning rate climbs linearly to its scheduled value \
               [default: 0]",
        heading: Some("Optimizer"),
        show: |c| c.optimizer.warmup_epochs.to_string(),
        set: |c, v| c.optimizer.warmup_epochs = v.count(),
        checks: &[Check {
            holds: |c| c.optimizer.warmup_epochs == 0 || c.optimizer.warmup_epochs < c.epochs,
            message: "{flag} {value} must be shorter than the run: fewer than {needs}",
            needs: Some(Setting::Epochs),
        }],
        report: Some("warm-up {} epochs"),
    }
    /// `optimizer.clip_grad_norm`.
    ClipGradNorm {
        field: "optimizer.clip_grad_norm",
        flag: "--clip-grad-norm",
        value_name: Some("X"),
        help: "Clip each parameter's gradient to this L2 norm (Burn clips per tensor, PyTorch's \
               clip_grad_norm_ all together) [default: off]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| or_none(c.optimizer.clip_grad_norm, "off"),
        set: |c, v| c.optimizer.clip_grad_norm = Some(v.number()),
        checks: &[Check {
            holds: |c| c.optimizer.clip_grad_norm.is_none_or(|x| x.is_finite() && x > 0.0),
            message: "{flag} {value} must be a finite number above 0",
            needs: None,
        }],
        report: Some("gradient norm clipped at {}"),
    }
    /// `label_smoothing`.
    LabelSmoothing {
        field: "label_smoothing",
        flag: "--label-smoothing",
        value_name: Some("S"),
        help: "Label smoothing of the cross-entropy [default: 0]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.label_smoothing.to_string(),
        set: |c, v| c.label_smoothing = v.number(),
        checks: &[Check {
            holds: |c| (0.0..1.0).contains(&c.label_smoothing),
            message: "{flag} {value} must lie in [0, 1) (0.1 is usual)",
            needs: None,
        }],
        report: Some("label smoothing {}"),
    }
    /// `optimizer.kind`: sgd, adam or adamw.
    Optimizer {
        field: "optimizer.kind",
        flag: "--optimizer",
        help: "The optimizer [default: sgd, d2l's]; --weight-decay is an L2 penalty for sgd and \
               adam, decoupled for adamw",
        heading: Some("Optimizer"),
        kind: Kind::Choice(&[
            ("sgd", "SGD, with --momentum if given (d2l)"),
            ("adam", "Adam (--weight-decay: L2 added to the gradient)"),
            ("adamw", "AdamW (--weight-decay: decoupled)"),
        ]),
        show: |c| c.optimizer.kind.to_string(),
        set: |c, v| c.optimizer.kind = named(&OptimizerKind::ALL, &v.text()),
        report: Some("{}"),
    }
    /// `optimizer.beta1`.
    Beta1 {
        field: "optimizer.beta1",
        flag: "--beta1",
        help: "Adam's and AdamW's first-moment decay [default: 0.9]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.beta1.to_string(),
        set: |c, v| c.optimizer.beta1 = v.number(),
        checks: &[
            Check {
                holds: |c| adam(c) || c.optimizer.beta1 == OptimizerConfig::new().beta1,
                message: "{flag} {value} applies to {needs} adam or adamw",
                needs: Some(Setting::Optimizer),
            },
            Check {
                holds: |c| !adam(c) || (0.0..1.0).contains(&c.optimizer.beta1),
                message: "{flag} {value} must lie in [0, 1) (0.9 and 0.999 are usual)",
                needs: None,
            },
        ],
        report: Some("beta1 {}"),
    }
    /// `optimizer.beta2`.
    Beta2 {
        field: "optimizer.beta2",
        flag: "--beta2",
        help: "Adam's and AdamW's second-moment decay [default: 0.999]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.beta2.to_string(),
        set: |c, v| c.optimizer.beta2 = v.number(),
        checks: &[
            Check {
                holds: |c| adam(c) || c.optimizer.beta2 == OptimizerConfig::new().beta2,
                message: "{flag} {value} applies to {needs} adam or adamw",
                needs: Some(Setting::Optimizer),
            },
            Check {
                holds: |c| !adam(c) || (0.0..1.0).contains(&c.optimizer.beta2),
                message: "{flag} {value} must lie in [0, 1) (0.9 and 0.999 are usual)",
                needs: None,
            },
        ],
        report: Some("beta2 {}"),
    }
    /// `optimizer.eps`.
    Eps {
        field: "optimizer.eps",
        flag: "--eps",
        help: "Adam's and AdamW's epsilon [default: 1e-8]",
        heading: Some("Optimizer"),
        kind: Kind::Number,
        show: |c| c.optimizer.eps.to_string(),
        set: |c, v| c.optimizer.eps = v.number(),
        checks: &[
            Check {
                holds: |c| adam(c) || c.optimizer.eps == OptimizerConfig::new().eps,
                message: "{flag} {value} applies to {needs} adam or adamw",
                needs: Some(Setting::Optimizer),
            },
            Check {
                holds: |c| !adam(c) || (c.optimizer.eps.is_finite() && c.optimizer.eps > 0.0),
                message: "{flag} {value} must be a finite number above 0 (1e-8 is usual)",
                needs: None,
            },
        ],
        report: Some("eps {}"),
    }
    /// `optimizer.head_lr_mult`: the output layer's rate over `lr`.
    HeadLrMult {
        field: "optimizer.head_lr_mult",
        flag: "--head-lr-mult",
        value_name: Some("M"),
        help: "The output layer's learning rate is --lr times M, as a parameter group of its own \
               (PyTorch's semantics, exact for every optimizer) [default: 1]",
        heading: Some("Fine-tuning"),
        kind: Kind::Number,
        show: |c| c.optimizer.head_lr_mult.to_string(),
        set: |c, v| c.optimizer.head_lr_mult = v.number(),
        checks: &[Check {
            holds: |c| c.optimizer.head_lr_mult.is_finite() && c.optimizer.head_lr_mult > 0.0,
            message: "{flag} {value} must be a finite number above 0 (d2l's fine-tuning uses 10)",
            needs: None,
        }],
        report: Some("output layer lr x{}"),
    }
    /// `init.from`: the run or file the weights start from (the report's start line says it).
    InitFrom {
        field: "init.from",
        flag: "--init-from",
        value_name: Some("RUN|FILE"),
        help: "Start from another network's weights: a run directory, or d2l's PyTorch state \
               dict or safetensors file. Layers that fit are loaded; a new output layer for \
               other classes",
        heading: Some("Fine-tuning"),
        kind: Kind::Path,
        show: |c| c.init.from.as_ref().map_or("none".into(), |p| p.display().to_string()),
        set: |c, v| c.init.from = Some(v.path()),
        checks: &[Check { holds: |c| utf8(&c.init.from), message: NOT_UTF8, needs: None }],
    }
    /// `init.checkpoint`: the record of that run.
    InitCheckpoint {
        field: "init.checkpoint",
        flag: "--init-checkpoint",
        value_name: Some("CHECKPOINT"),
        help: "The record of the --init-from run: final, best, last or an epoch [default: final]",
        heading: Some("Fine-tuning"),
        kind: Kind::Text,
        show: |c| c.init.checkpoint.clone().unwrap_or("none".into()),
        set: |c, v| c.init.checkpoint = Some(v.text()),
        checks: &[Check {
            holds: |c| c.init.checkpoint.is_none() || c.init.from.is_some(),
            message: "{flag} {value} applies to a run named by {needs}",
            needs: Some(Setting::InitFrom),
        }],
    }
    /// `init.freeze_features`.
    FreezeFeatures {
        field: "init.freeze_features",
        flag: "--freeze-features",
        help: "Keep the five convolutions as they start; only the linear layers train",
        heading: Some("Fine-tuning"),
        kind: Kind::Switch,
        show: |c| c.init.freeze_features.to_string(),
        set: |c, _| c.init.freeze_features = true,
        report: Some("the five convolutions frozen (not trained)"),
    }
    /// `early_stop_patience`.
    EarlyStopPatience {
        field: "early_stop_patience",
        flag: "--early-stop-patience",
        value_name: Some("N"),
        help: "Stop when the validation loss has not improved for N epochs; the final model is \
               then the best epoch's [default: off]",
        heading: Some("Fine-tuning"),
        show: |c| or_none(c.early_stop_patience, "off"),
        set: |c, v| c.early_stop_patience = Some(v.count()),
        checks: &[Check {
            holds: |c| c.early_stop_patience != Some(0),
            message: "{flag} {value} must be at least 1 (epochs without a better validation \
                      loss)",
            needs: None,
        }],
        report: Some("early stop after {} epochs without a better validation loss"),
    }
    /// `data.augment.hflip` and `data.augment.crop`, as a list.
    Augment {
        field: "data.augment",
        flag: "--augment",
        value_name: Some("hflip,crop"),
        help: "Random changes to the training images: hflip (mirror), crop (torchvision's \
               RandomResizedCrop), or none [default: none]",
        heading: Some("Augmentation"),
        kind: Kind::Choices(&[
            ("hflip", "Mirror left-right with probability 1/2"),
            ("crop", "A random part of the image stretched to the input size"),
            ("none", "No augmentation"),
        ]),
        show: |c| c.data.augment.names(),
        set: |c, v| {
            let has = |name: &str| v.names().iter().any(|n| n == name);
            c.data.augment.hflip = has("hflip");
            c.data.augment.crop = has("crop");
        },
        report: Some("{}"),
    }
    /// `data.augment.crop_scale`.
    CropScale {
        field: "data.augment.crop_scale",
        flag: "--crop-scale",
        value_name: Some("A,B"),
        help: "The area fraction range of --augment crop [default: 0.08,1]",
        heading: Some("Augmentation"),
        kind: Kind::Numbers,
        show: |c| {
            let [a, b] = c.data.augment.crop_scale;
            format!("{a},{b}")
        },
        // Any count but two is refused by the check, which names the values.
        set: |c, v| {
            c.data.augment.crop_scale = match v.numbers() {
                [a, b] => [*a, *b],
                _ => [f64::NAN; 2],
            }
        },
        checks: &[
            Check {
                holds: |c| {
                    let [low, high] = c.data.augment.crop_scale;
                    low > 0.0 && low <= high && high <= 1.0
                },
                message: "{flag} {value} must be two fractions A,B with 0 < A <= B <= 1 \
                          (0.08,1 is torchvision's)",
                needs: None,
            },
            Check {
                holds: |c| {
                    c.data.augment.crop
                        || c.data.augment.crop_scale == AugmentConfig::new().crop_scale
                },
                message: "{flag} {value} applies with {needs} crop",
                needs: Some(Setting::Augment),
            },
        ],
        report: Some("crop scale {}"),
    }
    /// `data.augment.pad_crop`.
    PadCrop {
        field: "data.augment.pad_crop",
        flag: "--pad-crop",
        value_name: Some("P"),
        help: "Pad the input by P black pixels on each side and crop it back at a random place \
               (the CIFAR recipe) [default: 0, off]",
        heading: Some("Augmentation"),
        show: |c| c.data.augment.pad_crop.to_string(),
        set: |c, v| c.data.augment.pad_crop = v.count(),
        checks: &[Check {
            holds: |c| c.data.augment.pad_crop * 2 <= c.model.image_size,
            message: "{flag} {value} must be at most half of {needs}",
            needs: Some(Setting::ImageSize),
        }],
        report: Some("pad-crop {}"),
    }
    /// `data.augment.jpeg_draft`.
    JpegDraft {
        field: "data.augment.jpeg_draft",
        flag: "--jpeg-draft",
        help: "Decode JPEG training images at 1/2, 1/4 or 1/8 of their size when that still \
               covers the input (Pillow's draft): much faster for large photos, close to but \
               not equal to the full decode. Validation, eval, infer and serve always decode \
               in full",
        heading: Some("Augmentation"),
        kind: Kind::Switch,
        show: |c| c.data.augment.jpeg_draft.to_string(),
        set: |c, _| c.data.augment.jpeg_draft = true,
        checks: &[Check {
            holds: |c| !c.data.augment.jpeg_draft || c.data.images.is_some(),
            message: "{flag} applies to folders of images ({needs} DIR); Fashion-MNIST's files \
                      hold no JPEG",
            needs: Some(Setting::Images),
        }],
        report: Some("JPEG training images decoded at reduced size (draft)"),
    }
}
