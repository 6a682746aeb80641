//! The best epoch by validation loss while a run trains, and burn-train's checkpointing
//! strategy that keeps its checkpoint. Not Burn's `MetricCheckpointingStrategy`, which reads the
//! metric store before it holds the epoch's last validation batches (see
//! [`EpochLog::test_loss`]) and could delete the best epoch's checkpoint.

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;

use super::epochs::{EpochLog, WAIT_FOR_TEST_LOSS};

/// The epoch with the lowest validation loss so far: the first to reach it, as
/// `RunDir::best_epoch` chooses among ties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Best(Option<(usize, f64)>);

impl Best {
    /// Takes `epoch`'s loss into account; whether it is the new best.
    pub fn offer(&mut self, epoch: usize, loss: f64) -> bool {
        let better = self.0.is_none_or(|(_, best)| loss < best);
        if better {
            self.0 = Some((epoch, loss));
        }
        better
    }

    /// The best epoch, if any was offered.
    pub fn epoch(&self) -> Option<usize> {
        self.0.map(|(epoch, _)| epoch)
    }
}

/// Saves each epoch whose validation loss is a new best and deletes the previous best's
/// checkpoint (other strategies beside it may keep it).
pub struct KeepBest {
    best: Best,
    log: EpochLog,
}

impl KeepBest {
    /// The strategy, knowing the `earlier` epochs' (epoch, loss) of a resumed run.
    pub fn new(earlier: &[(usize, f64)], log: EpochLog) -> Self {
        let mut best = Best::default();
        for &(epoch, loss) in earlier {
            best.offer(epoch, loss);
        }
        Self { best, log }
    }
}

impl CheckpointingStrategy for KeepBest {
    fn checkpointing(&mut self, epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        let Some(loss) = self.log.test_loss(epoch, WAIT_FOR_TEST_LOSS) else {
            return vec![CheckpointingAction::Save];
        };
        let previous = self.best.epoch();
        if !self.best.offer(epoch, loss) {
            return Vec::new();
        }
        let delete = previous.map(CheckpointingAction::Delete);
        delete
            .into_iter()
            .chain([CheckpointingAction::Save])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_epoch_to_reach_the_lowest_loss_is_best() {
        let mut best = Best::default();
        let news: Vec<bool> = [(1, 1.0), (2, 1.0), (3, 0.5), (4, 0.7)]
            .into_iter()
            .map(|(e, l)| best.offer(e, l))
            .collect();
        assert_eq!(news, [true, false, true, false]);
        assert_eq!(best.epoch(), Some(3));
    }
}
