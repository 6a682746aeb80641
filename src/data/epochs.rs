//! Which epoch a loader is in, and the order and identity of its images in that epoch: the
//! training images are shuffled by (seed, epoch), and each comes with its index and epoch so
//! that its augmentation can be drawn from them. A resumed run therefore sees the same batches
//! as an uninterrupted one (Burn's own shuffle draws each epoch's order from the previous one's
//! generator, which a resumed process no longer has).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::data::dataset::Dataset;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::augment::epoch_seed;

/// An image with its place in its split and the epoch it is read in.
#[derive(Debug, Clone)]
pub struct Sample<I> {
    /// The image.
    pub item: I,
    /// Its index in the split (not in the shuffled order).
    pub index: usize,
    /// The epoch, from 1.
    pub epoch: usize,
}

impl<I> Sample<I> {
    /// `items` as the images of `epoch`, numbered in order.
    pub fn numbered(items: impl IntoIterator<Item = I>, epoch: usize) -> Vec<Self> {
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| Self { item, index, epoch })
            .collect()
    }
}

/// The current epoch of a loader, shared by its dataset and its passes.
#[derive(Debug, Clone, Default)]
pub struct EpochClock(Arc<AtomicUsize>);

impl EpochClock {
    fn now(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Called with the epoch number as each training pass starts (the backend's dropout seed).
pub type OnEpoch = Arc<dyn Fn(usize) + Send + Sync>;

/// Counts a loader's passes: the first is epoch `first`, and each starts the next.
pub struct Passes {
    clock: EpochClock,
    first: usize,
    started: AtomicUsize,
    on_epoch: Option<OnEpoch>,
}

impl Passes {
    /// Passes from epoch `first` on, setting `clock`.
    pub fn new(clock: EpochClock, first: usize, on_epoch: Option<OnEpoch>) -> Self {
        Self {
            clock,
            first,
            started: AtomicUsize::new(0),
            on_epoch,
        }
    }

    /// Starts the next pass.
    pub fn start(&self) {
        let epoch = self.first + self.started.fetch_add(1, Ordering::SeqCst);
        self.clock.0.store(epoch, Ordering::SeqCst);
        if let Some(on_epoch) = &self.on_epoch {
            on_epoch(epoch);
        }
    }

    /// Another loader's passes (a slice of this one's, or the same on another device), from
    /// where this one stands.
    pub fn fork(&self) -> Self {
        Self {
            clock: self.clock.clone(),
            first: self.first,
            started: AtomicUsize::new(self.started.load(Ordering::SeqCst)),
            on_epoch: self.on_epoch.clone(),
        }
    }
}

/// A dataset read in the order of the current epoch: as it is, or shuffled by (seed, epoch).
pub struct EpochOrder<D> {
    inner: D,
    clock: EpochClock,
    shuffle: Option<u64>,
    /// The order of the epoch last read.
    order: Mutex<Option<(usize, Arc<Vec<usize>>)>>,
}

impl<D> EpochOrder<D> {
    /// `inner` in the order of `clock`'s epoch, shuffled with `shuffle`'s seed if given.
    pub fn new(inner: D, clock: EpochClock, shuffle: Option<u64>) -> Self {
        Self {
            inner,
            clock,
            shuffle,
            order: Mutex::default(),
        }
    }

    /// The shuffled order of `epoch`.
    fn order(&self, epoch: usize, seed: u64, len: usize) -> Arc<Vec<usize>> {
        let mut cached = self.order.lock().expect("epoch order poisoned");
        match &*cached {
            Some((e, order)) if *e == epoch => order.clone(),
            _ => {
                let mut order: Vec<usize> = (0..len).collect();
                order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(seed, epoch)));
                let order = Arc::new(order);
                *cached = Some((epoch, order.clone()));
                order
            }
        }
    }
}

impl<I, D: Dataset<I>> Dataset<Sample<I>> for EpochOrder<D> {
    fn get(&self, position: usize) -> Option<Sample<I>> {
        let epoch = self.clock.now();
        let index = match self.shuffle {
            None => position,
            Some(seed) => *self.order(epoch, seed, self.inner.len()).get(position)?,
        };
        let item = self.inner.get(index)?;
        Some(Sample { item, index, epoch })
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;

    #[test]
    fn each_epoch_has_its_own_order_and_a_resumed_loader_repeats_it() {
        let clock = EpochClock::default();
        let data = EpochOrder::new(
            InMemDataset::new((0..50).collect::<Vec<u32>>()),
            clock.clone(),
            Some(3),
        );
        let read = |passes: &Passes| {
            passes.start();
            (0..50).map(|i| data.get(i).unwrap()).collect::<Vec<_>>()
        };
        let passes = Passes::new(clock.clone(), 1, None);
        let first = read(&passes);
        let second = read(&passes);
        assert!(
            first
                .iter()
                .all(|s| s.epoch == 1 && s.item as usize == s.index)
        );
        assert_eq!(second[0].epoch, 2);
        let order = |epoch: &[Sample<u32>]| epoch.iter().map(|s| s.index).collect::<Vec<_>>();
        assert_ne!(order(&first), order(&second));
        let mut sorted = order(&first);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
        let resumed = Passes::new(clock, 2, None);
        assert_eq!(order(&read(&resumed)), order(&second));
    }
}
