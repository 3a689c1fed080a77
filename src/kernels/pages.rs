//! Huge pages for large packed weights.
//!
//! A streaming step reads every weight once from L3 or DRAM; with 4 KiB
//! pages a layer of 8–32 MiB spans 2048–8192 pages, more than the L2 TLB
//! holds, so every page costs a walk. Linux backs a range with 2 MiB pages
//! when asked (`MADV_HUGEPAGE`, honoured when
//! /sys/kernel/mm/transparent_hugepage/enabled is `always` or `madvise`,
//! the usual default). PERF (Zen 3, interleaved runs, best of 3): LSTM
//! step H = 512 171 → 142 µs, H = 1024 3.06 → 2.26 ms; seq H = 1024
//! 1.37 → 0.74 ms per step.

use crate::error::Result;
use crate::pack::{Buf, try_buf};

/// Buffers at least this large get the advice.
const MIN_BYTES: usize = 2 << 20;
const HUGE: usize = 2 << 20;

/// An empty 64-byte aligned buffer with room for exactly `n` floats
/// ([`Error::Allocation`](crate::Error::Allocation) if it cannot be
/// allocated); when it is ≥ 2 MiB the kernel is asked, before the first
/// write, to back its 2 MiB-aligned interior with huge pages. Advice only:
/// it never changes the contents and a refusal is ignored.
pub(crate) fn try_weights_buf(n: usize) -> Result<Buf> {
    let buf = try_buf(n, "packed weights")?;
    // `try_buf` succeeded, so n · 4 bytes did not overflow.
    let bytes = n * 4;
    let start = buf.as_ptr() as usize;
    let lo = start.next_multiple_of(HUGE);
    let hi = (start + bytes) / HUGE * HUGE;
    if bytes >= MIN_BYTES && hi > lo {
        #[cfg(target_os = "linux")]
        // SAFETY: [lo, hi) lies inside the allocation `buf` owns (capacity
        // ≥ n floats from `start`), which nothing else references
        // yet; `lo` is page aligned. MADV_HUGEPAGE only changes how the
        // range is backed, never its contents or its validity.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
        }
    }
    Ok(buf)
}
