//! The small vector vocabulary every kernel body is written in, and the
//! shared sigmoid/tanh approximation.
//!
//! Each ISA implements [`Simd`] once (a handful of intrinsics); the kernel
//! bodies in [`super::body`] are generic over it and are instantiated inside
//! `#[target_feature]` entry points. Because every ISA runs the same body,
//! the same sequence of IEEE operations (FMA, add, mul, exact division,
//! min/max clamps) is applied to every element, which is what makes results
//! bit-identical across ISAs (DESIGN §2).

use crate::cell::activation::Activation;

/// Vector operations. All arithmetic is IEEE single precision, round to
/// nearest; `fma` is a fused multiply-add with one rounding.
///
/// `max`/`min` take the constant first and the data second: when the data
/// operand is NaN the result is NaN on every ISA (x86 returns the second
/// operand, NEON and the scalar implementation propagate NaN).
pub(crate) trait Simd: Copy {
    /// One vector of `LANES` f32.
    type V: Copy;
    /// Number of f32 lanes.
    const LANES: usize;
    /// Columns the multi-column GEMM keeps in registers at once (two
    /// vectors each): 2·GEMM_COLS accumulators plus two weight vectors and
    /// a broadcast must fit the register file.
    const GEMM_COLS: usize;
    /// Broadcast.
    fn splat(self, v: f32) -> Self::V;
    /// Loads `LANES` values from the start of `s` (panics if too short).
    fn load(self, s: &[f32]) -> Self::V;
    /// Stores `LANES` values to the start of `s` (panics if too short).
    fn store(self, s: &mut [f32], v: Self::V);
    /// a + b
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// a − b
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// a · b
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// a / b, exact IEEE division (never a reciprocal estimate).
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// a · b + c with a single rounding.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// max(k, x); NaN in `x` gives NaN. `k` must not be NaN.
    fn max(self, k: Self::V, x: Self::V) -> Self::V;
    /// min(k, x); NaN in `x` gives NaN. `k` must not be NaN.
    fn min(self, k: Self::V, x: Self::V) -> Self::V;
    /// `x` with every subnormal lane replaced by a zero of the same sign
    /// (see [`flush_f32`]); zeros, normal values, infinities and NaNs
    /// (payload included) are returned unchanged, bit for bit.
    fn flush(self, x: Self::V) -> Self::V;
    /// |x|: the sign bit cleared (a bit operation: NaN stays NaN, payload
    /// kept).
    fn abs(self, x: Self::V) -> Self::V;
    /// `x` in the lanes where `a > b` (an ordered comparison: false if
    /// either is NaN), `y` elsewhere.
    fn select_gt(self, a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// Activation `a` of every lane ([`super::act::apply`]), out of line.
    fn act(self, a: &Activation, x: Self::V) -> Self::V;
    /// A hint to fetch the cache line holding `p` into L2 (any address;
    /// never dereferenced, never faults). For data needed a few thousand
    /// cycles later, which must not evict the L1 working set.
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        let _ = p;
    }
}

/// [`Simd`] for a token whose features include those of `$base`: every
/// operation is `$base`'s (holding `$tok` proves `$base`'s features, so
/// making a `$base` token here is sound).
#[allow(unused_macros)]
macro_rules! simd_as {
    ($tok:ty, $base:ident) => {
        impl Simd for $tok {
            type V = <$base as Simd>::V;
            const LANES: usize = <$base as Simd>::LANES;
            const GEMM_COLS: usize = <$base as Simd>::GEMM_COLS;
            #[inline(always)]
            fn prefetch_l2(self, p: *const f32) {
                $base(()).prefetch_l2(p)
            }
            #[inline(always)]
            fn splat(self, v: f32) -> Self::V {
                $base(()).splat(v)
            }
            #[inline(always)]
            fn load(self, s: &[f32]) -> Self::V {
                $base(()).load(s)
            }
            #[inline(always)]
            fn store(self, s: &mut [f32], v: Self::V) {
                $base(()).store(s, v)
            }
            #[inline(always)]
            fn add(self, a: Self::V, b: Self::V) -> Self::V {
                $base(()).add(a, b)
            }
            #[inline(always)]
            fn sub(self, a: Self::V, b: Self::V) -> Self::V {
                $base(()).sub(a, b)
            }
            #[inline(always)]
            fn mul(self, a: Self::V, b: Self::V) -> Self::V {
                $base(()).mul(a, b)
            }
            #[inline(always)]
            fn div(self, a: Self::V, b: Self::V) -> Self::V {
                $base(()).div(a, b)
            }
            #[inline(always)]
            fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
                $base(()).fma(a, b, c)
            }
            #[inline(always)]
            fn max(self, k: Self::V, x: Self::V) -> Self::V {
                $base(()).max(k, x)
            }
            #[inline(always)]
            fn min(self, k: Self::V, x: Self::V) -> Self::V {
                $base(()).min(k, x)
            }
            #[inline(always)]
            fn flush(self, x: Self::V) -> Self::V {
                $base(()).flush(x)
            }
            #[inline(always)]
            fn abs(self, x: Self::V) -> Self::V {
                $base(()).abs(x)
            }
            #[inline(always)]
            fn select_gt(self, a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V {
                $base(()).select_gt(a, b, x, y)
            }
            #[inline(always)]
            fn act(self, a: &crate::cell::activation::Activation, x: Self::V) -> Self::V {
                $base(()).act(a, x)
            }
        }
    };
}
// Rational minimax approximation of tanh, odd degree 13 over even degree 6
// (the coefficients Eigen ≤ 3.4 and MLAS use), evaluated with FMAs in
// Horner form and one exact division, the input clamped to ±TANH_CLAMP so
// that saturation is exact. Maximum absolute error against f64 tanh over
// all f32 inputs: see `tests/activations.rs` (bound tested: 5e-7).
// The coefficients are kept as published (f64 digits); each rounds to the
// nearest f32.
#[allow(clippy::excessive_precision)]
const TANH_CLAMP: f32 = 7.998_811_7;
/// 2^-40: the smallest |x| whose square the tanh polynomial sees.
const TANH_TINY: f32 = f32::from_bits(0x2b80_0000);
#[allow(clippy::excessive_precision)]
const A1: f32 = 4.893_524_558_917_86e-3;
#[allow(clippy::excessive_precision)]
const A3: f32 = 6.372_619_288_754_36e-4;
#[allow(clippy::excessive_precision)]
const A5: f32 = 1.485_722_357_179_79e-5;
#[allow(clippy::excessive_precision)]
const A7: f32 = 5.122_297_090_371_14e-8;
#[allow(clippy::excessive_precision)]
const A9: f32 = -8.604_671_522_137_35e-11;
#[allow(clippy::excessive_precision)]
const A11: f32 = 2.000_187_904_824_77e-13;
#[allow(clippy::excessive_precision)]
const A13: f32 = -2.760_768_477_423_55e-16;
#[allow(clippy::excessive_precision)]
const B0: f32 = 4.893_525_185_543_85e-3;
#[allow(clippy::excessive_precision)]
const B2: f32 = 2.268_434_632_439_00e-3;
#[allow(clippy::excessive_precision)]
const B4: f32 = 1.185_347_056_866_54e-4;
#[allow(clippy::excessive_precision)]
const B6: f32 = 1.198_258_394_667_02e-6;

/// tanh(x), ≤ 5e-7 absolute error, NaN propagates.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.min(s.splat(TANH_CLAMP), s.max(s.splat(-TANH_CLAMP), x));
    // x² from max(|x|, 2^-40): below that, x² < 2^-80 leaves every term of
    // p and q at its constant coefficient (each FMA rounds to it), so the
    // result is bit for bit the same as with x·x, but x·x can no longer
    // produce a subnormal (a microcode assist on Intel cores, ~30×) while a
    // state decays toward zero. NaN survives (abs keeps it, max passes it).
    let xm = s.max(s.splat(TANH_TINY), s.abs(x));
    let x2 = s.mul(xm, xm);
    let mut p = s.fma(x2, s.splat(A13), s.splat(A11));
    p = s.fma(x2, p, s.splat(A9));
    p = s.fma(x2, p, s.splat(A7));
    p = s.fma(x2, p, s.splat(A5));
    p = s.fma(x2, p, s.splat(A3));
    p = s.fma(x2, p, s.splat(A1));
    p = s.mul(x, p);
    let mut q = s.fma(x2, s.splat(B6), s.splat(B4));
    q = s.fma(x2, q, s.splat(B2));
    q = s.fma(x2, q, s.splat(B0));
    s.div(p, q)
}

/// sigmoid(x) = 0.5 + 0.5·tanh(x/2), ≤ 5e-7 absolute error, NaN propagates.
#[inline(always)]
pub(crate) fn sigmoid<S: Simd>(s: S, x: S::V) -> S::V {
    let half = s.splat(0.5);
    let t = tanh(s, s.mul(x, half));
    s.fma(t, half, half)
}

/// max(0, x) with NaN propagated and −0 mapped to +0 on every ISA (the
/// `+ 0.0` canonicalises the sign of zero, which x86 and NEON `max`
/// otherwise treat differently).
#[inline(always)]
pub(crate) fn relu<S: Simd>(s: S, x: S::V) -> S::V {
    let z = s.splat(0.0);
    s.add(s.max(z, x), z)
}

/// Clamp to ±k (k > 0); NaN propagates.
#[inline(always)]
pub(crate) fn clamp<S: Simd>(s: S, x: S::V, k: f32) -> S::V {
    s.min(s.splat(k), s.max(s.splat(-k), x))
}

/// The denormal rule (DESIGN §2, "Denormals"): a subnormal f32 (exponent
/// field 0, non-zero fraction, |x| < `f32::MIN_POSITIVE`) becomes the zero
/// of the same sign; every other value, NaN payloads included, is returned
/// bit for bit. Applied, identically on every ISA, to every value the
/// library stores as state or reads into a matrix product other than the
/// caller's layer-0 input: h and c (kernel epilogues, `State::set_h`,
/// `State::set_c`, `h0`/`c0` of `Model::run`), the LSTM projection input
/// m, the reset-before GRU's r⊙h, and the packed weights, biases and
/// peepholes. So no arithmetic on state ever takes a subnormal operand,
/// whose microcode assists cost ~30× on Intel cores.
#[inline(always)]
pub(crate) fn flush_f32(x: f32) -> f32 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0 {
        f32::from_bits(b & 0x8000_0000)
    } else {
        x
    }
}

/// `dst[i] = flush_f32(src[i])`; the slices must have the same length.
pub(crate) fn copy_flushed(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = flush_f32(v);
    }
}

/// The portable one-lane implementation.
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    const GEMM_COLS: usize = 4;
    #[inline(always)]
    fn splat(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: f32) {
        s[0] = v;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn max(self, k: f32, x: f32) -> f32 {
        // Written out so NaN in x survives (f32::max would drop it).
        if x < k { k } else { x }
    }
    #[inline(always)]
    fn min(self, k: f32, x: f32) -> f32 {
        if x > k { k } else { x }
    }
    #[inline(always)]
    fn flush(self, x: f32) -> f32 {
        flush_f32(x)
    }
    #[inline(always)]
    fn abs(self, x: f32) -> f32 {
        f32::from_bits(x.to_bits() & 0x7fff_ffff)
    }
    #[inline(always)]
    fn select_gt(self, a: f32, b: f32, x: f32, y: f32) -> f32 {
        if a > b { x } else { y }
    }
    #[inline(never)]
    fn act(self, a: &Activation, x: f32) -> f32 {
        super::act::apply(self, a, x)
    }
}

/// A portable 16-lane vector with the geometry of the AVX-512 kernels
/// (16 lanes, 8 columns per multi-column block): the [`Scalar`] operations
/// lane by lane. It runs the AVX-512 packing, panel, tile and bounds logic
/// on any CPU, so the tests can check it bit for bit where AVX-512 itself
/// is missing; only the 12 intrinsics of `x86.rs` stay unexercised there.
#[derive(Clone, Copy)]
pub(crate) struct Wide16;

/// Applies a scalar operation lane by lane.
#[inline]
fn lanes16(f: impl Fn(usize) -> f32) -> [f32; 16] {
    std::array::from_fn(f)
}

// Not inlined: this type exists for tests only, and 16 scalar lanes
// inlined into every instantiation of the kernel bodies (48 multi-column
// blocks per call site) only cost compile time, most under the fuzzer's
// instrumentation.
impl Simd for Wide16 {
    type V = [f32; 16];
    const LANES: usize = 16;
    const GEMM_COLS: usize = 8;
    #[inline(never)]
    fn splat(self, v: f32) -> [f32; 16] {
        [v; 16]
    }
    #[inline(never)]
    fn load(self, s: &[f32]) -> [f32; 16] {
        // Panics (as the AVX-512 load asserts) if fewer than 16 remain.
        let mut v = [0.0; 16];
        v.copy_from_slice(&s[..16]);
        v
    }
    #[inline(never)]
    fn store(self, s: &mut [f32], v: [f32; 16]) {
        s[..16].copy_from_slice(&v);
    }
    #[inline(never)]
    fn add(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.add(a[i], b[i]))
    }
    #[inline(never)]
    fn sub(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.sub(a[i], b[i]))
    }
    #[inline(never)]
    fn mul(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.mul(a[i], b[i]))
    }
    #[inline(never)]
    fn div(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.div(a[i], b[i]))
    }
    #[inline(never)]
    fn fma(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.fma(a[i], b[i], c[i]))
    }
    #[inline(never)]
    fn max(self, k: [f32; 16], x: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.max(k[i], x[i]))
    }
    #[inline(never)]
    fn min(self, k: [f32; 16], x: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.min(k[i], x[i]))
    }
    #[inline(never)]
    fn flush(self, x: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.flush(x[i]))
    }
    #[inline(never)]
    fn abs(self, x: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.abs(x[i]))
    }
    #[inline(never)]
    fn select_gt(self, a: [f32; 16], b: [f32; 16], x: [f32; 16], y: [f32; 16]) -> [f32; 16] {
        lanes16(|i| Scalar.select_gt(a[i], b[i], x[i], y[i]))
    }
    #[inline(never)]
    fn act(self, a: &Activation, x: [f32; 16]) -> [f32; 16] {
        super::act::apply(self, a, x)
    }
}

/// Scalar tanh with exactly the kernels' arithmetic (for the reference
/// path and the accuracy tests).
pub fn tanh_f32(x: f32) -> f32 {
    tanh(Scalar, x)
}

/// Scalar sigmoid with exactly the kernels' arithmetic.
pub fn sigmoid_f32(x: f32) -> f32 {
    sigmoid(Scalar, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tanh of `tanh` before the 2^-40 floor on |x| (x² = x·x).
    fn tanh_unfloored(x: f32) -> f32 {
        let s = Scalar;
        let x = s.min(s.splat(TANH_CLAMP), s.max(s.splat(-TANH_CLAMP), x));
        let x2 = s.mul(x, x);
        let mut p = s.fma(x2, A13, A11);
        for a in [A9, A7, A5, A3, A1] {
            p = s.fma(x2, p, a);
        }
        p = s.mul(x, p);
        let mut q = s.fma(x2, B6, B4);
        q = s.fma(x2, q, B2);
        q = s.fma(x2, q, B0);
        s.div(p, q)
    }

    #[test]
    fn the_floor_on_x_squared_changes_no_result() {
        // Every |x| below 2^-38 (so across the 2^-40 floor) at 1/64 octave
        // steps with random mantissas, both signs, subnormals and zeros.
        let mut seed = 0x9e37_79b9_u32;
        let mut xs = vec![0.0f32, -0.0, f32::from_bits(1), -f32::from_bits(1)];
        for e in 0..(127 + 38) {
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let b = ((e as u32) << 23) | (seed & 0x007f_ffff);
                xs.push(f32::from_bits(b));
                xs.push(-f32::from_bits(b));
            }
        }
        for x in xs {
            assert_eq!(
                tanh_f32(x).to_bits(),
                tanh_unfloored(x).to_bits(),
                "x = {x:e}"
            );
            // And x·x is never subnormal any more.
            let xm = Scalar.max(TANH_TINY, Scalar.abs(x));
            assert!((xm * xm).is_normal());
        }
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(TANH_TINY, 2f32.powi(-40));
    }
}
