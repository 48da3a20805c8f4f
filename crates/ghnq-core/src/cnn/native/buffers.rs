//! Recycled activation and gradient buffers, per thread.
//!
//! WHY: a meta-training step allocates and frees the same few dozen large buffers (activations,
//! gradients, im2col blocks) for every net. glibc returns large freed blocks to the kernel (they
//! are `mmap`ed, or trimmed off the heap top), so each step paid page faults and the kernel's
//! zeroing of every page again: about 8 % of a step, measured by running the bench with glibc's
//! thresholds raised (`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=…:trim_threshold=…`). Keeping
//! freed buffers here, per rayon thread (nets run one per thread), reuses memory that is already
//! mapped. jemalloc, tried as the global allocator instead, made steps slower (5.7 s vs 3.1 s).

use std::cell::RefCell;

/// Buffers smaller than this go back to the allocator (its small-size bins serve them well).
const MIN_FLOATS: usize = 4096;
/// Buffers kept per thread at most; beyond that the smallest is freed.
const MAX_KEPT: usize = 96;
/// Floats kept per thread at most (1 GiB): a buffer that would pass it is freed instead.
///
/// WHY this large: a step must find every buffer it needs here, or it pays the page faults
/// again. MobileNetV2 at batch 128 (the initialisation study) has expanded activations of
/// 25–40 MB each, dozens alive at once: at 256 MiB (and 48 buffers) most were freed and mapped
/// again every step, a quarter of its training time in the kernel (`perf`); at 1 GiB and 96 a
/// step took 1.38× less (10 steps: 15.3 → 11.1 s on one pinned core, system time 6.1 → 1.4 s,
/// peak memory 0.80 → 1.34 GB). Meta-training and evaluation keep far less and did not change.
const MAX_KEPT_FLOATS: usize = 256 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// The smallest kept buffer with room for `len` values, as it was handed back (its old values
/// still in it), or `None`.
fn take_fitting(len: usize) -> Option<Vec<f32>> {
    if len < MIN_FLOATS {
        return None;
    }
    FREE.with_borrow_mut(|free| {
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| free.swap_remove(i))
    })
}

/// An empty buffer with room for `len` values: the smallest kept one that fits, else a new one.
pub fn with_capacity(len: usize) -> Vec<f32> {
    match take_fitting(len) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// `len` values for an output its writer overwrites entirely (a GEMM without accumulation,
/// im2col): a recycled buffer keeps whatever values it held (zeros past its old length), so no
/// pass over memory zeroes what is about to be written. WHY: the zero fills of such buffers
/// were ~5 % of a meta-training step (`memset` in `perf`).
pub fn scratch(len: usize) -> Vec<f32> {
    let mut v = take_fitting(len).unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// `len` zeros.
pub fn zeros(len: usize) -> Vec<f32> {
    let mut v = with_capacity(len);
    v.resize(len, 0.0);
    v
}

/// A copy of `src`.
pub fn copy_of(src: &[f32]) -> Vec<f32> {
    let mut v = with_capacity(src.len());
    v.extend_from_slice(src);
    v
}

/// Hands a buffer back for reuse.
pub fn recycle(v: Vec<f32>) {
    if v.capacity() < MIN_FLOATS {
        return;
    }
    FREE.with_borrow_mut(|free| {
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + v.capacity() > MAX_KEPT_FLOATS {
            return;
        }
        free.push(v);
        if free.len() > MAX_KEPT {
            let smallest = free
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)
                .expect("not empty");
            free.swap_remove(smallest);
        }
    });
}

/// A buffer that goes back for reuse when dropped (the backward pass's output gradients, which
/// some ops hand on and others only read).
pub struct Recycled(Vec<f32>);

impl Recycled {
    /// Wraps `v`.
    pub fn new(v: Vec<f32>) -> Recycled {
        Recycled(v)
    }

    /// The buffer itself, no longer recycled on drop.
    pub fn into_inner(mut self) -> Vec<f32> {
        std::mem::take(&mut self.0)
    }
}

impl std::ops::Deref for Recycled {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_buffer_that_fits_and_zeroes_it() {
        let mut a = zeros(10_000);
        a[3] = 7.0;
        let a_ptr = a.as_ptr();
        let b = zeros(50_000);
        let b_ptr = b.as_ptr();
        recycle(b);
        recycle(a);
        let c = zeros(9_000);
        assert_eq!(c.as_ptr(), a_ptr, "the 10,000-float buffer is the best fit");
        assert!(c.iter().all(|&v| v == 0.0) && c.len() == 9_000);
        let d = with_capacity(20_000);
        assert_eq!(d.as_ptr(), b_ptr);
        assert!(d.is_empty());
        // A scratch buffer is a recycled one with its old values kept.
        recycle(d);
        let mut f = zeros(30_000);
        f[5] = 3.0;
        let f_ptr = f.as_ptr();
        recycle(f);
        let g = scratch(12_000);
        assert_eq!((g.as_ptr(), g.len(), g[5]), (f_ptr, 12_000, 3.0));
        // Longer than it was: the new part is zeros.
        recycle(g);
        let h = scratch(25_000);
        assert_eq!(
            (h.as_ptr(), h.len(), h[5], h[24_999]),
            (f_ptr, 25_000, 3.0, 0.0)
        );
        // Small buffers are not kept.
        recycle(vec![1.0; 16]);
        let e = zeros(16);
        assert_eq!(e, vec![0.0; 16]);
    }
}
