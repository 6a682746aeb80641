//! How far a data loader runs ahead of the training step. Burn 0.21's multi-threaded loader
//! queues up to 100 finished batches (`MAX_QUEUED_ITEMS`, not configurable): on a CPU, where
//! loading is faster than training, the queue fills, and 100 batches of 128 colour images at
//! 224 px hold 7.7 GB. Here the batcher waits while `depth` batches are made and not yet taken,
//! as PyTorch's `prefetch_factor` bounds its workers, so memory does not grow with the data.

use std::sync::{Arc, Condvar, Mutex};

use super::epochs::Passes;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::tensor::backend::Backend;

/// Batches made and not yet taken, and how many may be.
#[derive(Debug)]
struct Gate {
    ahead: Mutex<usize>,
    room: Condvar,
    depth: usize,
}

/// The bound shared by a loader's batcher (which waits for room) and its iterator (which makes
/// room as the step takes each batch).
#[derive(Debug, Clone)]
pub struct Prefetch(Arc<Gate>);

impl Prefetch {
    /// At most `depth` batches ahead (at least 1).
    pub fn new(depth: usize) -> Self {
        Self(Arc::new(Gate {
            ahead: Mutex::new(0),
            room: Condvar::new(),
            depth: depth.max(1),
        }))
    }

    fn ahead(&self) -> std::sync::MutexGuard<'_, usize> {
        self.0.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a batch may be made, and counts it.
    fn reserve(&self) {
        let mut ahead = self.ahead();
        while *ahead >= self.0.depth {
            ahead = self.0.room.wait(ahead).unwrap_or_else(|e| e.into_inner());
        }
        *ahead += 1;
    }

    /// A batch was taken.
    fn release(&self) {
        let mut ahead = self.ahead();
        *ahead = ahead.saturating_sub(1);
        self.0.room.notify_all();
    }

    /// Forgets the batches of an earlier pass: a new pass starts, or one ended early (its
    /// waiting workers then finish and stop, as Burn's do when their pass is dropped).
    fn clear(&self) {
        *self.ahead() = 0;
        self.0.room.notify_all();
    }
}

/// A batcher that waits for room before making each batch.
#[derive(Debug, Clone)]
pub struct GatedBatcher<Bt> {
    inner: Bt,
    prefetch: Prefetch,
}

impl<Bt> GatedBatcher<Bt> {
    /// `inner`, bounded by `prefetch`.
    pub fn new(inner: Bt, prefetch: Prefetch) -> Self {
        Self { inner, prefetch }
    }
}

impl<B: Backend, I, O, Bt: Batcher<B, I, O>> Batcher<B, I, O> for GatedBatcher<Bt> {
    fn batch(&self, items: Vec<I>, device: &B::Device) -> O {
        self.prefetch.reserve();
        self.inner.batch(items, device)
    }
}

/// A loader whose passes make room in their [`Prefetch`] as each batch is taken, each pass
/// starting the next epoch of its [`Passes`].
pub struct GatedLoader<B: Backend, O> {
    inner: Arc<dyn DataLoader<B, O>>,
    prefetch: Prefetch,
    passes: Passes,
}

impl<B: Backend, O> GatedLoader<B, O> {
    /// `inner`, whose batcher is a [`GatedBatcher`] with `prefetch`.
    pub fn new(inner: Arc<dyn DataLoader<B, O>>, prefetch: Prefetch, passes: Passes) -> Self {
        Self {
            inner,
            prefetch,
            passes,
        }
    }
}

struct GatedIter<'a, O> {
    inner: Box<dyn DataLoaderIterator<O> + 'a>,
    prefetch: Prefetch,
}

impl<O> Iterator for GatedIter<'_, O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        let item = self.inner.next();
        self.prefetch.release();
        item
    }
}

impl<O> DataLoaderIterator<O> for GatedIter<'_, O> {
    fn progress(&self) -> Progress {
        self.inner.progress()
    }
}

impl<O> Drop for GatedIter<'_, O> {
    fn drop(&mut self) {
        self.prefetch.clear();
    }
}

impl<B: Backend, O: 'static> DataLoader<B, O> for GatedLoader<B, O> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        self.prefetch.clear();
        self.passes.start();
        Box::new(GatedIter {
            inner: self.inner.iter(),
            prefetch: self.prefetch.clone(),
        })
    }

    fn num_items(&self) -> usize {
        self.inner.num_items()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(Self::new(
            self.inner.to_device(device),
            self.prefetch.clone(),
            self.passes.fork(),
        ))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(Self::new(
            self.inner.slice(start, end),
            self.prefetch.clone(),
            self.passes.fork(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn the_batcher_waits_while_depth_batches_are_untaken() {
        let prefetch = Prefetch::new(2);
        let made = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (prefetch, made) = (prefetch.clone(), made.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    prefetch.reserve();
                    made.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(made.load(Ordering::SeqCst), 2, "two ahead, then it waits");
        prefetch.release();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(made.load(Ordering::SeqCst), 3, "one taken, one more made");
        prefetch.clear();
        std::thread::sleep(Duration::from_millis(100));
        prefetch.clear();
        worker.join().unwrap();
        assert_eq!(made.load(Ordering::SeqCst), 5);
    }
}
