//! x86-64 implementations of [`Simd`]: AVX2+FMA (8 lanes) and AVX-512F
//! (16 lanes), and their `#[target_feature]` entry points.
//!
//! The token types can only be created through [`Avx2::new`] /
//! [`Avx512::new`], which check the CPU, so holding one proves the
//! instructions exist; that is the argument of every `SAFETY` comment here.

use std::arch::x86_64::*;

use super::simd::Simd;

/// The CPU features of each token, listed once: the token's constructor
/// checks exactly these, and `entries!` (kernels/mod.rs) compiles the
/// kernels for exactly these. `x86_features!(avx2, m!(args))` expands to
/// `m!(args ["avx2", "fma"])`.
macro_rules! x86_features {
    (avx2, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["avx2", "fma"] } };
    (avx512, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["avx512f", "avx2", "fma"] } };
}

/// Whether the CPU has every feature of a list.
macro_rules! x86_detected {
    ([$($f:tt),+]) => { $(is_x86_feature_detected!($f))&&+ };
}

/// Proof that AVX2 and FMA are available.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn new() -> Option<Avx2> {
        x86_features!(avx2, x86_detected!()).then_some(Avx2(()))
    }
}

/// Proof that AVX-512F (and AVX2, FMA) are available.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn new() -> Option<Avx512> {
        x86_features!(avx512, x86_detected!()).then_some(Avx512(()))
    }
}

impl Simd for Avx2 {
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        // SAFETY: prefetch is a hint: it never dereferences in the Rust
        // sense and never faults, whatever the address; SSE is baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    type V = __m256;
    const LANES: usize = 8;
    // 12 accumulators + 2 weights + 1 broadcast of the 16 ymm registers.
    const GEMM_COLS: usize = 6;
    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: AVX is available (token) and s has at least 8 elements
        // (checked above), so the unaligned 32-byte read is in bounds.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        assert!(s.len() >= 8);
        // SAFETY: AVX is available and s has at least 8 elements (checked
        // above), so the 32-byte write is in bounds of a unique borrow.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves FMA is available.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, k: __m256, x: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available. vmaxps returns
        // the second operand (x) when either is NaN.
        unsafe { _mm256_max_ps(k, x) }
    }
    #[inline(always)]
    fn min(self, k: __m256, x: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available. vminps returns
        // the second operand (x) when either is NaN.
        unsafe { _mm256_min_ps(k, x) }
    }
    #[inline(always)]
    fn flush(self, x: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available (every intrinsic
        // here is AVX; register operations only, no memory access).
        // tiny = |x| < MIN_POSITIVE, ordered (false for NaN): exactly the
        // zeros and subnormals; their magnitude bits are cleared, the sign
        // kept (zeros stay as they are).
        unsafe {
            let mag = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let abs = _mm256_and_ps(x, mag);
            let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(f32::MIN_POSITIVE));
            _mm256_andnot_ps(_mm256_and_ps(tiny, mag), x)
        }
    }
    #[inline(always)]
    fn abs(self, x: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available (registers only).
        unsafe { _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff))) }
    }
}

impl Simd for Avx512 {
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        // SAFETY: prefetch is a hint: it never dereferences in the Rust
        // sense and never faults, whatever the address; SSE is baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    type V = __m512;
    const LANES: usize = 16;
    // 16 accumulators of the 32 zmm registers.
    const GEMM_COLS: usize = 8;
    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        assert!(s.len() >= 16);
        // SAFETY: AVX-512F is available (token) and s has at least 16
        // elements (checked above), so the 64-byte read is in bounds.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        assert!(s.len() >= 16);
        // SAFETY: AVX-512F is available and s has at least 16 elements
        // (checked above), so the 64-byte write is in bounds.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, k: __m512, x: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available. vmaxps
        // returns the second operand (x) when either is NaN.
        unsafe { _mm512_max_ps(k, x) }
    }
    #[inline(always)]
    fn min(self, k: __m512, x: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available. vminps
        // returns the second operand (x) when either is NaN.
        unsafe { _mm512_min_ps(k, x) }
    }
    #[inline(always)]
    fn flush(self, x: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available (vptestnmd,
        // masked vpandd and the casts are all AVX-512F; registers only).
        // tiny = lanes whose exponent field is 0 (zeros and subnormals);
        // in those lanes only the sign bit is kept, the others pass as is.
        unsafe {
            let b = _mm512_castps_si512(x);
            let tiny = _mm512_testn_epi32_mask(b, _mm512_set1_epi32(0x7f80_0000));
            let sign = _mm512_set1_epi32(i32::MIN);
            _mm512_castsi512_ps(_mm512_mask_and_epi32(b, tiny, b, sign))
        }
    }
    #[inline(always)]
    fn abs(self, x: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available (vpandd on
        // registers only).
        unsafe { _mm512_abs_ps(x) }
    }
}

#[cfg(test)]
mod tests {
    //! `flush` of each x86 implementation against the scalar rule, lane by
    //! lane, on every exponent and sign with varied fractions (zeros,
    //! subnormals, normals, infinities, NaNs with payloads).

    use super::*;
    use crate::kernels::simd::{Scalar, flush_f32};

    fn patterns() -> Vec<f32> {
        let mut v = Vec::new();
        for e in 0..256u32 {
            for f in [0u32, 1, 2, 0x40_0000, 0x7f_ffff, 0x12_3456, 0x00_0100] {
                for s in [0u32, 1] {
                    v.push(f32::from_bits((s << 31) | (e << 23) | f));
                }
            }
        }
        v
    }

    fn check<S: Simd>(t: S, lanes: usize) {
        let xs = patterns();
        for c in xs.chunks(lanes) {
            let mut buf = vec![1.0f32; lanes];
            buf[..c.len()].copy_from_slice(c);
            let mut out = vec![0.0f32; lanes];
            t.store(&mut out, t.flush(t.load(&buf)));
            for (o, x) in out.iter().zip(&buf) {
                let want = flush_f32(*x);
                assert_eq!(o.to_bits(), want.to_bits(), "flush({:#010x})", x.to_bits());
                assert_eq!(Scalar.flush(*x).to_bits(), want.to_bits());
                if x.is_subnormal() {
                    assert_eq!(o.to_bits(), x.to_bits() & 0x8000_0000);
                } else {
                    assert_eq!(o.to_bits(), x.to_bits());
                }
            }
        }
    }

    #[test]
    fn flush_matches_the_scalar_rule() {
        if let Some(t) = Avx2::new() {
            check(t, 8);
        }
        if let Some(t) = Avx512::new() {
            check(t, 16);
        }
        check(crate::kernels::simd::Wide16, 16);
    }
}
