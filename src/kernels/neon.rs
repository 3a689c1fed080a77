//! AArch64 NEON implementation of [`Simd`] (to be written).
