//! Helpers for the tests that call the C ABI from Rust (`tests/ffi.rs`
//! keeps its own, with its RNG and counting allocator).

use rnncell::ffi::{RnncellTensor, RnncellTensorMut, rnncell_last_error};
use std::ffi::CStr;

/// A read-only C tensor over `v`.
pub fn t(v: &[f32]) -> RnncellTensor {
    RnncellTensor {
        data: v.as_ptr(),
        len: v.len(),
    }
}

/// A writable C tensor over `v`.
pub fn tm(v: &mut [f32]) -> RnncellTensorMut {
    RnncellTensorMut {
        data: v.as_mut_ptr(),
        len: v.len(),
    }
}

/// This thread's `rnncell_last_error()` text.
pub fn last_error() -> String {
    // SAFETY: rnncell_last_error never returns NULL; the text is
    // NUL-terminated and this thread does not fail a call meanwhile.
    unsafe { CStr::from_ptr(rnncell_last_error()) }
        .to_string_lossy()
        .into_owned()
}
