//! The optimizer and its learning rate, from the run's config to burn-train's Learner: Burn's
//! SGD as PyTorch configures it, its plain step fused ([`sgd`]), or Adam or AdamW ([`adam`]),
//! each built by [`Algorithm`]; the output layer as a parameter group of its own when its rate
//! differs ([`Grouped`]); and the rate of each step ([`Schedule`]).

mod adam;
mod algorithm;
mod groups;
mod schedule;
mod sgd;

pub use algorithm::{Adaptor, Algorithm};
pub use groups::Grouped;
pub use schedule::Schedule;
pub use sgd::{FusedSgd, Sgd};
