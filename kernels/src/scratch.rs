//! Work buffers that each thread keeps between calls.
//!
//! A convolution's tasks need large buffers (the column matrix, the product) that they
//! overwrite completely. Allocated per call, each came back zeroed (`calloc` clears reused
//! memory, and fresh memory costs a page fault per page): at 96 px and batch 32 that zeroing
//! was 5% of a training step on an Intel Xeon. A [`Scratch`] buffer returns to its thread's
//! pool when dropped and is handed out again, stale, to the next request that fits.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers one thread keeps: enough for a convolution's task (column matrix and product, or
/// column matrix and gathered output gradient).
const KEPT_PER_THREAD: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// `len` values of unspecified content (earlier work's, or zeros): for a caller that writes
/// every value before it reads it.
pub struct Scratch(Vec<f32>);

impl Scratch {
    pub fn new(len: usize) -> Self {
        if len == 0 {
            return Self(Vec::new());
        }
        let reused = POOL.with_borrow_mut(|pool| {
            // The smallest kept buffer that fits; else the largest, to grow.
            let fitting = (0..pool.len())
                .filter(|&i| pool[i].len() >= len)
                .min_by_key(|&i| pool[i].len());
            let index = fitting.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
            index.map(|i| pool.swap_remove(i))
        });
        let mut values = reused.unwrap_or_default();
        if values.len() < len {
            values.resize(len, 0.0);
        }
        Self(values)
    }
}

impl Deref for Scratch {
    type Target = Vec<f32>;

    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let values = std::mem::take(&mut self.0);
        // `try_with`: a buffer dropped while its thread shuts down is simply freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < KEPT_PER_THREAD {
                pool.push(values);
            } else if let Some(smallest) = pool.iter_mut().min_by_key(|kept| kept.len())
                && smallest.len() < values.len()
            {
                *smallest = values;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_handed_out_again_without_clearing() {
        let mut first = Scratch::new(1000);
        first[0] = 7.0;
        let address = first.as_ptr();
        drop(first);
        let again = Scratch::new(500);
        assert_eq!(again.as_ptr(), address, "the kept buffer is reused");
        assert_eq!(again[0], 7.0, "and not cleared");
        assert!(again.len() >= 500);
    }

    #[test]
    fn a_larger_request_grows_a_kept_buffer_and_the_pool_stays_bounded() {
        let buffers: Vec<Scratch> = (1..=6).map(|i| Scratch::new(i * 10)).collect();
        drop(buffers);
        let kept = POOL.with_borrow(|pool| pool.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(kept.len(), KEPT_PER_THREAD);
        assert!(
            kept.iter().all(|&len| len >= 30),
            "the largest are kept: {kept:?}"
        );
        assert!(Scratch::new(1000).len() >= 1000);
    }
}
