//! An output that several threads write at once, each its own part.

/// A pointer to an output that the threads share; each writes its own part.
#[derive(Clone, Copy)]
pub(crate) struct Output(pub(crate) *mut f32);

// SAFETY: the tasks that receive it write disjoint parts of the output.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    /// The element `offset` places on. (A method, so that closures capture the whole `Output`
    /// rather than its raw pointer.)
    ///
    /// # Safety
    /// `offset` lies inside the output.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.add(offset) }
    }
}
