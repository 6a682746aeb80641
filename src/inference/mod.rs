//! Using what training recorded: loading a checkpoint (no training code, no autodiff), reading
//! image files, and predicting classes.

mod checkpoint;
mod images;
mod predict;

pub use checkpoint::{CheckpointChoice, LoadedModel, load_model, resolve};
pub use images::load_image;
pub use predict::{Prediction, Reader, input_batch, logit_rows, predict, rank};
