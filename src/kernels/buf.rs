//! The one home of the kernels' aligned storage: packed weights, states and
//! scratch are 64-byte aligned buffers, allocated fallibly.
//!
//! Huge pages for large packed weights: a streaming step reads every weight
//! once from L3 or DRAM; with 4 KiB pages a layer of 8–32 MiB spans
//! 2048–8192 pages, more than the L2 TLB holds, so every page costs a walk.
//! Linux backs a range with 2 MiB pages when asked (`MADV_HUGEPAGE`,
//! honoured when /sys/kernel/mm/transparent_hugepage/enabled is `always` or
//! `madvise`, the usual default). PERF (Zen 3, interleaved runs, best of 3):
//! LSTM step H = 512 171 → 142 µs, H = 1024 3.06 → 2.26 ms; seq H = 1024
//! 1.37 → 0.74 ms per step.

use aligned_vec::{AVec, ConstAlign};

use crate::error::{Error, Result};

/// A 64-byte aligned buffer.
pub(crate) type ABuf<T> = AVec<T, ConstAlign<64>>;
/// A 64-byte aligned f32 buffer.
pub(crate) type Buf = ABuf<f32>;

/// Every state and scratch vector is padded to a multiple of this, which
/// covers the widest panel of every ISA (8 vectors of 16 lanes).
pub(crate) const STATE_PAD: usize = 128;

pub(crate) fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// An empty aligned buffer with room for exactly `n` values, or
/// [`Error::Allocation`] naming `what`.
pub(crate) fn try_abuf<T>(n: usize, what: &str) -> Result<ABuf<T>> {
    let mut b = AVec::new(64);
    b.try_reserve_exact(n)
        .map_err(|_| Error::alloc(what, n, std::mem::size_of::<T>()))?;
    Ok(b)
}

/// An empty aligned f32 buffer with room for exactly `n` floats.
pub(crate) fn try_buf(n: usize, what: &str) -> Result<Buf> {
    try_abuf(n, what)
}

/// `n` aligned zeros, or [`Error::Allocation`] naming `what`.
pub(crate) fn try_zeros(n: usize, what: &str) -> Result<Buf> {
    let mut b = try_buf(n, what)?;
    b.resize(n, 0.0);
    Ok(b)
}

/// An aligned copy of `v`, or [`Error::Allocation`] naming `what`.
pub(crate) fn try_copy(v: &[f32], what: &str) -> Result<Buf> {
    let mut b = try_buf(v.len(), what)?;
    b.extend_from_slice(v);
    Ok(b)
}

/// An empty vector with room for exactly `n` values, or
/// [`Error::Allocation`] naming `what`.
pub(crate) fn try_vec<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::alloc(what, n, std::mem::size_of::<T>()))?;
    Ok(v)
}

/// Buffers at least this large get the huge-page advice.
const MIN_BYTES: usize = 2 << 20;
const HUGE: usize = 2 << 20;

/// An empty 64-byte aligned buffer with room for exactly `n` values
/// ([`Error::Allocation`] if it cannot be allocated); when it is ≥ 2 MiB
/// the kernel is asked, before the first write, to back its 2 MiB-aligned
/// interior with huge pages. Advice only: it never changes the contents and
/// a refusal is ignored.
pub(crate) fn try_weights_buf<T>(n: usize) -> Result<ABuf<T>> {
    let buf = try_abuf::<T>(n, "packed weights")?;
    // `try_abuf` succeeded, so n · size_of::<T>() did not overflow.
    let bytes = n * std::mem::size_of::<T>();
    let start = buf.as_ptr() as usize;
    let lo = start.next_multiple_of(HUGE);
    let hi = (start + bytes) / HUGE * HUGE;
    if bytes >= MIN_BYTES && hi > lo {
        #[cfg(target_os = "linux")]
        // SAFETY: [lo, hi) lies inside the allocation `buf` owns (capacity
        // ≥ n elements from `start`), which nothing else references
        // yet; `lo` is page aligned. MADV_HUGEPAGE only changes how the
        // range is backed, never its contents or its validity.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
        }
    }
    Ok(buf)
}
