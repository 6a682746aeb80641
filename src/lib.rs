//! Train the d2l.ai AlexNet on Fashion-MNIST with Burn, and use what training recorded.
//!
//! The network itself lives in the `alexnet-model` crate; this crate adds the data pipeline,
//! training through burn-train's `Learner`, progress reporting and the command line.

pub mod assess;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod download;
pub mod evaluation;
pub mod explain;
pub mod human;
pub mod inference;
pub mod interop;
pub mod onnx;
pub mod render;
pub mod report;
pub mod run;
pub mod serve;
pub mod summary;
pub mod training;
