//! x86-64 implementations of [`Simd`] and [`Widen`]: AVX2+FMA+F16C (8
//! lanes) and AVX-512F (16 lanes), and their `#[target_feature]` entry
//! points.
//!
//! The token types can only be created through [`Avx2::new`] /
//! [`Avx512::new`], which check the CPU, so holding one proves the
//! instructions exist; that is the argument of every `SAFETY` comment here.

use std::arch::x86_64::*;

use super::body_int::{ChunkQ, IntDot};
use super::elem::{Bf16, F16, Widen};
use super::simd::Simd;
use crate::cell::activation::Activation;

/// The CPU features of each token, listed once: the token's constructor
/// checks exactly these, and `entries!` (kernels/mod.rs) compiles the
/// kernels for exactly these. `x86_features!(avx2, m!(args))` expands to
/// `m!(args ["avx2", "fma", "f16c"])`. F16C (`vcvtph2ps`, the f16 weight
/// widening) excludes no AVX2 CPU: x86-64-v3 includes it, as do Intel since
/// Ivy Bridge and AMD since Piledriver.
macro_rules! x86_features {
    (avx2, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["avx2", "fma", "f16c"] } };
    (avx512, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["avx512f", "avx512bw", "avx2", "fma", "f16c"] } };
    (avxvnni, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["avx2", "fma", "f16c", "avxvnni"] } };
    (avx512vnni, $m:ident!($($a:tt)*)) => {
        $m! { $($a)* ["avx512f", "avx512bw", "avx512vnni", "avx2", "fma", "f16c"] }
    };
}

/// Whether the CPU has every feature of a list.
macro_rules! x86_detected {
    ([$($f:tt),+]) => { $(is_x86_feature_detected!($f))&&+ };
}

/// Proof that AVX2, FMA and F16C are available.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn new() -> Option<Avx2> {
        x86_features!(avx2, x86_detected!()).then_some(Avx2(()))
    }
}

/// Proof that AVX-512F and AVX-512BW (and AVX2, FMA, F16C) are available.
/// BW (byte and word operations on zmm, for the `i8` dot) excludes only
/// the Xeon Phi among AVX-512 CPUs.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn new() -> Option<Avx512> {
        x86_features!(avx512, x86_detected!()).then_some(Avx512(()))
    }
}

/// Proof that AVX-VNNI (`vpdpbusd` on ymm, VEX-encoded) and the [`Avx2`]
/// features are available. Only the `i8` kernels use it; its [`Simd`]
/// operations are [`Avx2`]'s.
#[derive(Clone, Copy)]
pub(crate) struct AvxVnni(());

impl AvxVnni {
    pub(crate) fn new() -> Option<AvxVnni> {
        x86_features!(avxvnni, x86_detected!()).then_some(AvxVnni(()))
    }
}

/// Proof that AVX-512 VNNI and the [`Avx512`] features are available. Only
/// the `i8` kernels use it; its [`Simd`] operations are [`Avx512`]'s.
#[derive(Clone, Copy)]
pub(crate) struct Avx512Vnni(());

impl Avx512Vnni {
    pub(crate) fn new() -> Option<Avx512Vnni> {
        x86_features!(avx512vnni, x86_detected!()).then_some(Avx512Vnni(()))
    }
}

/// Proof that AMX-INT8 is usable by this process (`kernels/amx.rs`:
/// CPUID, XCR0, the OS's permission) beside the [`Avx512Vnni`] features.
/// Only the `i8` kernels use it: [`Avx512Vnni`]'s dots, with the
/// multi-column GEMM on tiles ([`IntDot::tile_chunk`]).
#[derive(Clone, Copy)]
pub(crate) struct Avx512Amx(());

impl Avx512Amx {
    pub(crate) fn new() -> Option<Avx512Amx> {
        (Avx512Vnni::new().is_some() && super::amx::available()).then_some(Avx512Amx(()))
    }
}

simd_as!(AvxVnni, Avx2);
simd_as!(Avx512Vnni, Avx512);
simd_as!(Avx512Amx, Avx512);

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
    #[inline(always)]
    fn select_gt(self, a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available (registers only).
        // _CMP_GT_OQ: ordered, false for NaN, quiet.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)) }
    }
    #[inline(always)]
    fn act(self, a: &Activation, x: __m256) -> __m256 {
        // SAFETY: the Avx2 token proves the CPU has every feature
        // `act_avx2` is compiled for (its constructor checked them).
        unsafe { act_avx2(self, a, x) }
    }
}

x86_features!(avx2, act_entry!(act_avx2, Avx2,));
x86_features!(avx512, act_entry!(act_avx512, Avx512,));

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
    #[inline(always)]
    fn select_gt(self, a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available (registers
        // only). _CMP_GT_OQ: ordered, false for NaN, quiet; the blend takes
        // x where the mask is set.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b), y, x) }
    }
    #[inline(always)]
    fn act(self, a: &Activation, x: __m512) -> __m512 {
        // SAFETY: the Avx512 token proves the CPU has every feature
        // `act_avx512` is compiled for (its constructor checked them).
        unsafe { act_avx512(self, a, x) }
    }
}

// Weight widening (kernels/elem.rs): each exact, so equal bit for bit to
// `Weight::to_f32` (tested below for every element value). f16 is
// `vcvtph2ps` (F16C; the zmm form is AVX-512F), which quietens a signalling
// NaN exactly as `f16_to_f32` does; bf16 is a zero extension to 32 bits and
// a shift left by 16; i8 is a sign extension to i32 and `vcvtdq2ps`, exact
// for |q| ≤ 128.

impl Widen<f32> for Avx2 {
    #[inline(always)]
    fn load_w(self, s: &[f32]) -> __m256 {
        self.load(s)
    }
}

impl Widen<F16> for Avx2 {
    #[inline(always)]
    fn load_w(self, s: &[F16]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: the Avx2 token proves AVX and F16C are available; s has at
        // least 8 elements of 2 bytes (checked above; F16 is a
        // repr(transparent) u16), so the unaligned 16-byte read is in bounds.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast())) }
    }
}

impl Widen<Bf16> for Avx2 {
    #[inline(always)]
    fn load_w(self, s: &[Bf16]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: the Avx2 token proves AVX2 is available; s has at least 8
        // elements of 2 bytes (checked above; Bf16 is a repr(transparent)
        // u16), so the unaligned 16-byte read is in bounds.
        unsafe {
            let h = _mm_loadu_si128(s.as_ptr().cast());
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        }
    }
    #[inline(always)]
    fn load_w_pair(self, s: &[Bf16], hi: bool) -> __m256 {
        assert!(s.len() >= 16);
        // SAFETY: the Avx2 token proves AVX2 is available; s has at least 16
        // elements of 2 bytes (checked above), so the unaligned 32-byte read
        // is in bounds. Each 32-bit lane holds (k, k + 1) of one row: the
        // low half shifted up, or the high half with the low one cleared,
        // is the f32 of that bf16.
        unsafe {
            let x = _mm256_loadu_si256(s.as_ptr().cast());
            _mm256_castsi256_ps(if hi {
                _mm256_and_si256(x, _mm256_set1_epi32(0xffff_0000_u32 as i32))
            } else {
                _mm256_slli_epi32::<16>(x)
            })
        }
    }
}

impl Widen<i8> for Avx2 {
    #[inline(always)]
    fn load_w(self, s: &[i8]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: the Avx2 token proves AVX2 is available; s has at least 8
        // bytes (checked above), so the unaligned 8-byte read of `movq` is
        // in bounds.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(s.as_ptr().cast()))) }
    }
}

impl Widen<f32> for Avx512 {
    #[inline(always)]
    fn load_w(self, s: &[f32]) -> __m512 {
        self.load(s)
    }
}

impl Widen<F16> for Avx512 {
    #[inline(always)]
    fn load_w(self, s: &[F16]) -> __m512 {
        assert!(s.len() >= 16);
        // SAFETY: the Avx512 token proves AVX-512F (whose zmm vcvtph2ps this
        // is) and AVX are available; s has at least 16 elements of 2 bytes
        // (checked above; F16 is a repr(transparent) u16), so the unaligned
        // 32-byte read is in bounds.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast())) }
    }
}

impl Widen<Bf16> for Avx512 {
    #[inline(always)]
    fn load_w(self, s: &[Bf16]) -> __m512 {
        assert!(s.len() >= 16);
        // SAFETY: the Avx512 token proves AVX-512F and AVX are available; s
        // has at least 16 elements of 2 bytes (checked above; Bf16 is a
        // repr(transparent) u16), so the unaligned 32-byte read is in bounds.
        unsafe {
            let h = _mm256_loadu_si256(s.as_ptr().cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
    #[inline(always)]
    fn load_w_pair(self, s: &[Bf16], hi: bool) -> __m512 {
        assert!(s.len() >= 32);
        // SAFETY: the Avx512 token proves AVX-512F is available; s has at
        // least 32 elements of 2 bytes (checked above), so the unaligned
        // 64-byte read is in bounds. Lanes as in `Avx2`'s.
        unsafe {
            let x = _mm512_loadu_si512(s.as_ptr().cast());
            _mm512_castsi512_ps(if hi {
                _mm512_and_si512(x, _mm512_set1_epi32(0xffff_0000_u32 as i32))
            } else {
                _mm512_slli_epi32::<16>(x)
            })
        }
    }
}

impl Widen<i8> for Avx512 {
    #[inline(always)]
    fn load_w(self, s: &[i8]) -> __m512 {
        assert!(s.len() >= 16);
        // SAFETY: the Avx512 token proves AVX-512F is available (SSE2 is
        // baseline); s has at least 16 bytes (checked above), so the
        // unaligned 16-byte read is in bounds.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(s.as_ptr().cast()))) }
    }
}

/// The exact AVX2 dot ("sign trick"): `vpmaddubsw(|x|, sign(w, x))`
/// multiplies the unsigned |x| ≤ 127 by w with x's sign (w ≠ −128, so it
/// fits), so each i16 pair sum is at most 2 · 127 · 127 = 32258 and never
/// saturates; `vpmaddwd` by ones widens the pairs into the i32 lanes.
impl IntDot for Avx2 {
    type I = __m256i;
    /// The broadcast word and its bytes' absolute values.
    type Q = (__m256i, __m256i);
    type W = __m256i;
    #[inline(always)]
    fn izero(self) -> __m256i {
        // SAFETY: the Avx2 token proves AVX is available (registers only).
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> __m256i {
        // SAFETY: AVX is available (token); `load` checks the bounds.
        unsafe { _mm256_castps_si256(self.load(s)) }
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: __m256i) {
        // SAFETY: AVX is available (token); `store` checks the bounds.
        self.store(s, unsafe { _mm256_castsi256_ps(v) })
    }
    #[inline(always)]
    fn prep(self, word: u32) -> (__m256i, __m256i) {
        // SAFETY: the Avx2 token proves AVX2 is available (registers only).
        unsafe {
            let x = _mm256_set1_epi32(word as i32);
            (x, _mm256_abs_epi8(x))
        }
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> __m256i {
        assert!(w.len() >= 32);
        // SAFETY: AVX is available (token) and w has at least 32 bytes
        // (checked above), so the unaligned 32-byte read is in bounds.
        unsafe { _mm256_loadu_si256(w.as_ptr().cast()) }
    }
    #[inline(always)]
    fn dot4(self, acc: __m256i, (x, ax): (__m256i, __m256i), w: __m256i) -> __m256i {
        // SAFETY: the Avx2 token proves AVX2 is available (registers only).
        unsafe {
            let p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x));
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }
    #[inline(always)]
    fn to_f32(self, v: __m256i) -> __m256 {
        // SAFETY: the Avx2 token proves AVX is available. vcvtdq2ps rounds
        // by MXCSR, which the call's FpEnv holds at round-to-nearest.
        unsafe { _mm256_cvtepi32_ps(v) }
    }
}

/// The exact AVX-512BW dot: the sign trick of [`Avx2`]'s, with w negated
/// under the mask of x's negative bytes (zmm has no `vpsignb`; where
/// x = 0 the product is 0 either way).
impl IntDot for Avx512 {
    type I = __m512i;
    /// |x| bytes and the mask of x's negative bytes.
    type Q = (__m512i, __mmask64);
    type W = __m512i;
    #[inline(always)]
    fn izero(self) -> __m512i {
        // SAFETY: the Avx512 token proves AVX-512F is available.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> __m512i {
        // SAFETY: AVX-512F is available (token); `load` checks the bounds.
        unsafe { _mm512_castps_si512(self.load(s)) }
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: __m512i) {
        // SAFETY: AVX-512F is available (token); `store` checks the bounds.
        self.store(s, unsafe { _mm512_castsi512_ps(v) })
    }
    #[inline(always)]
    fn prep(self, word: u32) -> (__m512i, __mmask64) {
        // SAFETY: the Avx512 token proves AVX-512F and BW are available
        // (registers only).
        unsafe {
            let x = _mm512_set1_epi32(word as i32);
            (_mm512_abs_epi8(x), _mm512_movepi8_mask(x))
        }
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> __m512i {
        assert!(w.len() >= 64);
        // SAFETY: AVX-512F is available (token) and w has at least 64
        // bytes (checked above), so the unaligned 64-byte read is in bounds.
        unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }
    }
    #[inline(always)]
    fn dot4(self, acc: __m512i, (ax, neg): (__m512i, __mmask64), w: __m512i) -> __m512i {
        // SAFETY: the Avx512 token proves AVX-512F and BW are available
        // (registers only).
        unsafe {
            let sw = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
            let p = _mm512_maddubs_epi16(ax, sw);
            _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)))
        }
    }
    #[inline(always)]
    fn to_f32(self, v: __m512i) -> __m512 {
        // SAFETY: the Avx512 token proves AVX-512F is available; the
        // conversion rounds by MXCSR (round-to-nearest under FpEnv).
        unsafe { _mm512_cvtepi32_ps(v) }
    }
}

/// The AVX-VNNI dot: `vpdpbusd` (the wrapping form, not `vpdpbusds`) on
/// the activations offset to unsigned bytes (q ^ 0x80 = q + 128), one
/// instruction per 32 products; [`IntDot::finish`] subtracts the rows'
/// 128 · Σ w.
impl IntDot for AvxVnni {
    type I = __m256i;
    type Q = __m256i;
    type W = __m256i;
    #[inline(always)]
    fn izero(self) -> __m256i {
        Avx2(()).izero()
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> __m256i {
        Avx2(()).iload(s)
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: __m256i) {
        Avx2(()).istore(s, v)
    }
    const WORD_XOR: u32 = 0x8080_8080;
    #[inline(always)]
    fn prep(self, word: u32) -> __m256i {
        // SAFETY: the AvxVnni token proves AVX is available (registers only).
        unsafe { _mm256_set1_epi32(word as i32) }
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> __m256i {
        Avx2(()).wload(w)
    }
    #[inline(always)]
    fn dot4(self, acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the AvxVnni token proves AVX-VNNI is available (registers
        // only).
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, w) }
    }
    #[inline(always)]
    fn to_f32(self, v: __m256i) -> __m256 {
        Avx2(()).to_f32(v)
    }
    #[inline(always)]
    fn finish(self, acc: __m256i, qsum: &[i32]) -> __m256i {
        assert!(qsum.len() >= 8);
        // SAFETY: AVX2 is available (token) and qsum has at least 8
        // elements (checked above), so the unaligned 32-byte read is in
        // bounds.
        unsafe { _mm256_sub_epi32(acc, _mm256_loadu_si256(qsum.as_ptr().cast())) }
    }
}

/// The AVX-512 VNNI dot: `vpdpbusd` on zmm, as [`AvxVnni`]'s, one
/// instruction per 64 products.
impl IntDot for Avx512Vnni {
    type I = __m512i;
    type Q = __m512i;
    type W = __m512i;
    #[inline(always)]
    fn izero(self) -> __m512i {
        Avx512(()).izero()
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> __m512i {
        Avx512(()).iload(s)
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: __m512i) {
        Avx512(()).istore(s, v)
    }
    const WORD_XOR: u32 = 0x8080_8080;
    #[inline(always)]
    fn prep(self, word: u32) -> __m512i {
        // SAFETY: the token proves AVX-512F is available (registers only).
        unsafe { _mm512_set1_epi32(word as i32) }
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> __m512i {
        Avx512(()).wload(w)
    }
    #[inline(always)]
    fn dot4(self, acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
        // SAFETY: the token proves AVX-512 VNNI is available (registers
        // only).
        unsafe { _mm512_dpbusd_epi32(acc, a, w) }
    }
    #[inline(always)]
    fn to_f32(self, v: __m512i) -> __m512 {
        Avx512(()).to_f32(v)
    }
    #[inline(always)]
    fn finish(self, acc: __m512i, qsum: &[i32]) -> __m512i {
        assert!(qsum.len() >= 16);
        // SAFETY: AVX-512F is available (token) and qsum has at least 16
        // elements (checked above), so the unaligned 64-byte read is in
        // bounds.
        unsafe { _mm512_sub_epi32(acc, _mm512_loadu_si512(qsum.as_ptr().cast())) }
    }
}

/// [`Avx512Vnni`]'s dot, and the multi-column GEMM on AMX tiles where
/// [`IntDot::tiles_take`] says (`amx::MIN_COLS` columns, `amx::MIN_QUADS`
/// quads).
impl IntDot for Avx512Amx {
    type I = __m512i;
    type Q = __m512i;
    type W = __m512i;
    #[inline(always)]
    fn izero(self) -> __m512i {
        Avx512Vnni(()).izero()
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> __m512i {
        Avx512Vnni(()).iload(s)
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: __m512i) {
        Avx512Vnni(()).istore(s, v)
    }
    const WORD_XOR: u32 = Avx512Vnni::WORD_XOR;
    #[inline(always)]
    fn prep(self, word: u32) -> __m512i {
        Avx512Vnni(()).prep(word)
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> __m512i {
        Avx512Vnni(()).wload(w)
    }
    #[inline(always)]
    fn dot4(self, acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
        Avx512Vnni(()).dot4(acc, a, w)
    }
    #[inline(always)]
    fn to_f32(self, v: __m512i) -> __m512 {
        Avx512Vnni(()).to_f32(v)
    }
    #[inline(always)]
    fn finish(self, acc: __m512i, qsum: &[i32]) -> __m512i {
        Avx512Vnni(()).finish(acc, qsum)
    }
    #[inline(always)]
    fn tiles_take(self, cols: usize, quads: usize) -> bool {
        cols >= super::amx::MIN_COLS && quads >= super::amx::MIN_QUADS
    }
    #[inline(always)]
    fn tile_chunk(self, c: ChunkQ<'_>, ws: &[&[f32]], ts: &mut [&mut [f32]]) -> bool {
        if !self.tiles_take(ws.len(), c.quads) {
            return false;
        }
        // Outside a session (no `with_tiles`) the vector kernel runs.
        let Some(mut t) = super::amx::Amx::configured() else {
            return false;
        };
        super::amx::gemm_chunk(&mut t, c, ws, ts);
        true
    }
    #[inline(always)]
    fn with_tiles<R>(self, f: impl FnOnce() -> R) -> R {
        let _s = super::amx::Session::begin();
        f()
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

    /// `vcvtph2ps` of 4 f16s through the bare intrinsic (not the Widen
    /// impls), for the exhaustive check of `f16_to_f32`.
    fn hw_f16_to_f32(t: Avx2, h: [u16; 4]) -> [f32; 4] {
        let _ = t;
        let mut o = [0.0f32; 4];
        // SAFETY: the Avx2 token proves F16C (and SSE2, baseline); the
        // 8-byte read is of `h` and the 16-byte write into `o`, both exactly
        // that size.
        unsafe {
            let v = _mm_cvtph_ps(_mm_loadl_epi64(h.as_ptr().cast()));
            _mm_storeu_ps(o.as_mut_ptr(), v);
        }
        o
    }

    /// `vcvtps2ph` with round to nearest even of 8 f32s.
    fn hw_f32_to_f16(t: Avx2, x: &[f32; 8]) -> [u16; 8] {
        let _ = t;
        let mut o = [0u16; 8];
        // SAFETY: the Avx2 token proves AVX and F16C; the 32-byte read is
        // of `x` and the 16-byte write into `o`, both exactly that size.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr()));
            _mm_storeu_si128(o.as_mut_ptr().cast(), h);
        }
        o
    }

    /// `f32_to_f16(x)` against the hardware: equal bits, or `None` exactly
    /// where the hardware gives ±∞ for a finite x.
    fn check_f32_to_f16(t: Avx2, xs: &[f32; 8]) {
        let hw = hw_f32_to_f16(t, xs);
        for (x, h) in xs.iter().zip(hw) {
            let want = if x.is_finite() && h & 0x7fff == 0x7c00 {
                None
            } else {
                Some(F16(h))
            };
            assert_eq!(
                crate::kernels::elem::f32_to_f16(*x),
                want,
                "f32_to_f16({x:e} = {:#010x})",
                x.to_bits()
            );
        }
    }

    #[test]
    fn f16_to_f32_equals_vcvtph2ps_on_every_input() {
        let Some(t) = Avx2::new() else { return };
        for h in (0..=u16::MAX).step_by(4) {
            let hs = [h, h + 1, h + 2, h + 3];
            let hw = hw_f16_to_f32(t, hs);
            for (h, w) in hs.into_iter().zip(hw) {
                let got = crate::kernels::elem::f16_to_f32(h);
                assert_eq!(got.to_bits(), w.to_bits(), "f16_to_f32({h:#06x})");
            }
        }
    }

    #[test]
    fn f32_to_f16_equals_vcvtps2ph_on_a_sample() {
        use crate::kernels::elem::testing::{some_f32, ties_f32};
        let Some(t) = Avx2::new() else { return };
        let mut xs = some_f32();
        xs.extend(ties_f32());
        xs.extend([65504.0, 65_519.996, 65520.0, f32::MAX, f32::MIN_POSITIVE]);
        xs.extend((0..=0x0400u32).map(|i| i as f32 * 2f32.powi(-24) + 2f32.powi(-26)));
        for c in xs.chunks(8) {
            let mut b = [0.0f32; 8];
            b[..c.len()].copy_from_slice(c);
            check_f32_to_f16(t, &b);
        }
    }

    /// All 2^32 f32 inputs against `vcvtps2ph` (26 CPU-seconds in release
    /// on a Zen 3):
    /// `cargo test --release --lib -- --ignored every_f32`.
    #[test]
    #[ignore]
    fn f32_to_f16_equals_vcvtps2ph_on_every_f32() {
        let Some(t) = Avx2::new() else { return };
        for hi in 0..=(u32::MAX >> 3) {
            let b: [f32; 8] = std::array::from_fn(|i| f32::from_bits((hi << 3) | i as u32));
            check_f32_to_f16(t, &b);
        }
    }

    /// `load_w` of every x86 token against `Weight::to_f32`, lane by lane,
    /// for every f16, bf16 and i8 value, and the f32 sample.
    #[test]
    fn load_w_equals_to_f32() {
        use crate::kernels::elem::testing::{all_bf16, all_f16, all_i8, check_load_w, some_f32};
        let f = some_f32();
        let (mut ran2, mut ran512) = (false, false);
        if let Some(t) = Avx2::new() {
            check_load_w(t, &all_f16());
            check_load_w(t, &all_bf16());
            check_load_w(t, &all_i8());
            check_load_w(t, &f);
            ran2 = true;
        }
        if let Some(t) = Avx512::new() {
            check_load_w(t, &all_f16());
            check_load_w(t, &all_bf16());
            check_load_w(t, &all_i8());
            check_load_w(t, &f);
            ran512 = true;
        }
        // Fail rather than skip where .ci/run says the CPU has them.
        match std::env::var("RNNCELL_REQUIRE_ISA").as_deref() {
            Ok("avx512") => assert!(ran2 && ran512, "RNNCELL_REQUIRE_ISA=avx512"),
            Ok("avx2") => assert!(ran2, "RNNCELL_REQUIRE_ISA=avx2"),
            _ => {}
        }
    }
}
