//! The C library of rnncell: `librnncell.a` and `librnncell.so`.
//!
//! Every `#[no_mangle] extern "C"` function of the C ABI lives in the `ffi`
//! module of the rnncell crate (compiled under its `capi` feature, declared in
//! `include/rnncell.h`); this crate only links them into C artifacts, so Rust
//! users of rnncell get neither the artifacts nor the exported symbols.

#![deny(missing_docs)]

pub use rnncell_core::ffi::*;
