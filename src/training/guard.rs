//! Stopping at the first loss that is not a finite number, before it reaches a checkpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use burn::train::Interrupter;

/// Where the loss first stopped being finite, counted in training steps of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossFault {
    /// 1-based step (batch) count since training started in this process.
    pub step: usize,
    /// The loss value (NaN or ±inf).
    pub loss: f64,
}

struct GuardState {
    interrupter: Interrupter,
    steps: AtomicUsize,
    fault: Mutex<Option<LossFault>>,
}

/// Checks every training loss; the first NaN or infinite one stops training through the
/// interrupter, so the epoch never reaches validation or its checkpoint.
#[derive(Clone, Default)]
pub struct LossGuard(Option<Arc<GuardState>>);

impl std::fmt::Debug for LossGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LossGuard")
    }
}

impl LossGuard {
    /// A guard that stops `interrupter`.
    pub fn new(interrupter: Interrupter) -> Self {
        Self(Some(Arc::new(GuardState {
            interrupter,
            steps: AtomicUsize::new(0),
            fault: Mutex::new(None),
        })))
    }

    /// Counts a step and checks its loss (a one-element tensor).
    pub fn check<B: Backend>(&self, loss: &Tensor<B, 1>) {
        let Some(state) = &self.0 else {
            return;
        };
        let step = state.steps.fetch_add(1, Ordering::SeqCst) + 1;
        let value: f64 = loss.clone().into_scalar().elem();
        if value.is_finite() {
            return;
        }
        let mut fault = state.fault.lock().expect("guard poisoned");
        if fault.is_none() {
            *fault = Some(LossFault { step, loss: value });
            state
                .interrupter
                .stop(Some("the loss is not a finite number"));
        }
    }

    /// The first non-finite loss seen, if any.
    pub fn fault(&self) -> Option<LossFault> {
        self.0
            .as_ref()
            .and_then(|s| *s.fault.lock().expect("guard poisoned"))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn the_first_non_finite_loss_stops_training() {
        let interrupter = Interrupter::new();
        let guard = LossGuard::new(interrupter.clone());
        let device = Default::default();
        let loss = |v: f32| Tensor::<Flex, 1>::from_floats([v], &device);
        guard.check(&loss(2.3));
        assert!(!interrupter.should_stop());
        guard.check(&loss(f32::INFINITY));
        guard.check(&loss(f32::NAN));
        assert!(interrupter.should_stop());
        assert_eq!(
            guard.fault(),
            Some(LossFault {
                step: 2,
                loss: f64::INFINITY
            })
        );
    }
}
