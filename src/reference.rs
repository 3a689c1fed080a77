//! Reference implementations for tests (filled in below).
#![forbid(unsafe_code)]
