//! The stored weight element types (f32, binary16, bfloat16, int8), their
//! exact widening to f32 and the rounding that produces them from f32
//! (issue 12, DESIGN §7).
//!
//! The widening [`Weight::to_f32`] is the scalar rule; every ISA's
//! [`Widen::load_w`] must return the same bits, NaNs included (tested for
//! every element value on every ISA the machine can run). The narrowing
//! [`f32_to_f16`] is, bit for bit, what F16C `vcvtps2ph` (rounding
//! immediate 0) and NEON `fcvtn` produce in the default floating-point
//! environment, except that a finite value that would round to ±∞ is
//! reported as `None` instead (tested against `vcvtps2ph` and against an
//! independent f64 formula).
//!
//! Subnormals: every f16 subnormal (≥ 2^-24) widens to a normal f32, but a
//! bfloat16 subnormal widens to an f32 subnormal, which the denormal rule
//! of DESIGN §2 flushes wherever packed weights are produced.

#![forbid(unsafe_code)]
// Until the kernels and the packer use them (issue 12); only the tests and
// the loader's widening do so far.

use super::simd::{Scalar, Simd, Wide16};

/// An IEEE 754 binary16 value, as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct F16(pub u16);

/// A bfloat16 value (the upper half of an f32), as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Bf16(pub u16);

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::F16 {}
    impl Sealed for super::Bf16 {}
    impl Sealed for i8 {}
}

/// A stored weight element.
pub(crate) trait Weight:
    sealed::Sealed + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    /// Bytes per element.
    const BYTES: usize;
    /// Exact widening to f32: the scalar rule every ISA's load_w must equal
    /// bit for bit (NaN included).
    fn to_f32(self) -> f32;
}

impl Weight for f32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Weight for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self.0)
    }
}

impl Weight for Bf16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self.0)
    }
}

impl Weight for i8 {
    const BYTES: usize = 1;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // Exact: |self| ≤ 128 < 2^24.
        f32::from(self)
    }
}

/// Converts IEEE 754 binary16 bits to f32, exactly (every f16 is an f32),
/// bit for bit as F16C `vcvtph2ps` and NEON `fcvtl` do: ±0, subnormals
/// (which become normal f32s), normals and ±∞ keep their value and sign; a
/// NaN keeps its sign and its 10 payload bits (shifted left by 13) and is
/// quietened (bit 22 set), so a signalling NaN becomes a quiet one.
#[inline]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match (exp, man) {
        // ±0
        (0, 0) => f32::from_bits(sign),
        // subnormal: man · 2^-24 = 1.f · 2^(p-24) with p the position of
        // the leading one of man (0..=9); the exponent field is p - 24 + 127.
        (0, m) => {
            let p = 31 - m.leading_zeros();
            f32::from_bits(sign | ((p + 103) << 23) | ((m << (23 - p)) & 0x007f_ffff))
        }
        // ±∞
        (31, 0) => f32::from_bits(sign | 0x7f80_0000),
        // NaN: quietened, payload kept
        (31, m) => f32::from_bits(sign | 0x7fc0_0000 | (m << 13)),
        // normal: rebias the exponent from 15 to 127
        (e, m) => f32::from_bits(sign | ((e + 112) << 23) | (m << 13)),
    }
}

/// Converts bfloat16 bits to f32 (the upper half of an f32; a bit
/// operation, so NaNs, signalling ones included, keep every bit).
#[inline]
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// f32 → binary16, round to nearest even (as F16C vcvtps2ph imm 0 / NEON
/// fcvtn). None when a finite x rounds to ±∞ (|x| ≥ 65520). ±∞ stays ±∞;
/// NaN stays NaN (quiet, sign kept, as the hardware does: the top 10
/// payload bits are kept and the quiet bit set). Subnormal f16 results are
/// kept; f32 subnormals round to ±0.
pub(crate) fn f32_to_f16(x: f32) -> Option<F16> {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        return Some(F16(sign | 0x7e00 | ((a >> 13) & 0x3ff) as u16));
    }
    if a == 0x7f80_0000 {
        return Some(F16(sign | 0x7c00));
    }
    let e = a >> 23;
    let r = if e >= 113 {
        // Normal f16 range (or overflow): rebias the exponent (127 → 15)
        // in place and round the fraction from 23 to 10 bits; a carry out
        // of the fraction increments the exponent, which is the right
        // result (up to 0x7c00 = ∞).
        let m = a - (112 << 23);
        (m + 0x0fff + ((m >> 13) & 1)) >> 13
    } else if e == 0 {
        // ±0 and f32 subnormals (< 2^-126, far below half of 2^-24).
        0
    } else {
        // Subnormal f16 result: |x| / 2^-24 = mant · 2^(e-126), rounded to
        // an integer (0..=0x400; 0x400 is the smallest normal, exactly its
        // bit pattern).
        let mant = (a & 0x007f_ffff) | 0x0080_0000;
        let shift = 126 - e; // 14..=125
        if shift > 24 {
            0 // below 2^-25, under half the smallest subnormal
        } else {
            let q = mant >> shift;
            let rem = mant & ((1 << shift) - 1);
            let half = 1 << (shift - 1);
            q + u32::from(rem > half || (rem == half && q & 1 == 1))
        }
    };
    if r >= 0x7c00 {
        return None;
    }
    Some(F16(sign | r as u16))
}

/// f32 → bfloat16, round to nearest even; None when a finite x rounds to
/// ±∞ (|x| ≥ (2 − 2^-8)·2^127 ≈ 3.3961e38); ±∞ stays ±∞; NaN → a quiet NaN
/// of the same sign (the top 7 payload bits kept, the quiet bit set, as
/// for f16). Subnormals are rounded like any other value (bfloat16 has
/// them too).
pub(crate) fn f32_to_bf16(x: f32) -> Option<Bf16> {
    let b = x.to_bits();
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        return Some(Bf16(((b >> 16) | 0x0040) as u16));
    }
    if a == 0x7f80_0000 {
        return Some(Bf16((b >> 16) as u16));
    }
    // a + 0x7fff + lsb ≤ 0x7f7f_ffff + 0x8000 fits: no overflow into the sign.
    let r = (a + 0x7fff + ((a >> 16) & 1)) >> 16;
    if r >= 0x7f80 {
        return None;
    }
    Some(Bf16(((b >> 16) & 0x8000) as u16 | r as u16))
}

/// Loads LANES weights from the start of `s` and widens them exactly to
/// f32 (panics if s is too short).
pub(crate) trait Widen<W: Weight>: Simd {
    /// `[s[0].to_f32(), …, s[LANES-1].to_f32()]`, bit for bit.
    fn load_w(self, s: &[W]) -> Self::V;
    /// From `LANES` k-pairs (`s[2j]`, `s[2j + 1]`: row j at k and k + 1,
    /// the bf16 panel layout), the k values (`hi = false`) or the k + 1
    /// values, widened exactly: `[s[2j + hi].to_f32() for j]`.
    #[inline(always)]
    fn load_w_pair(self, s: &[W], hi: bool) -> Self::V {
        let l = Self::LANES;
        let s = &s[..2 * l];
        let mut t = [0.0f32; 16];
        for (j, v) in t.iter_mut().take(l).enumerate() {
            *v = s[2 * j + usize::from(hi)].to_f32();
        }
        self.load(&t[..l])
    }
}

impl<W: Weight> Widen<W> for Scalar {
    #[inline(always)]
    fn load_w(self, s: &[W]) -> f32 {
        s[0].to_f32()
    }
}

// Not inlined, as Wide16's `Simd` operations (see the comment in simd.rs).
impl<W: Weight> Widen<W> for Wide16 {
    #[inline(never)]
    fn load_w(self, s: &[W]) -> [f32; 16] {
        // Panics (as the AVX-512 loads assert) if fewer than 16 remain.
        let s = &s[..16];
        std::array::from_fn(|i| s[i].to_f32())
    }
}

/// Test support shared by the ISA modules: `load_w` against
/// [`Weight::to_f32`], and the rounding rules against independent f64
/// formulas.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Every f16 bit pattern.
    pub(crate) fn all_f16() -> Vec<F16> {
        (0..=u16::MAX).map(F16).collect()
    }

    /// Every bfloat16 bit pattern.
    pub(crate) fn all_bf16() -> Vec<Bf16> {
        (0..=u16::MAX).map(Bf16).collect()
    }

    /// Every i8.
    pub(crate) fn all_i8() -> Vec<i8> {
        (i8::MIN..=i8::MAX).collect()
    }

    /// f32s of every class: the bit patterns of [`all_f16`] widened (each
    /// exactly an f32, NaNs and infinities included) and every 4099-th f32
    /// bit pattern.
    pub(crate) fn some_f32() -> Vec<f32> {
        let mut v: Vec<f32> = (0..=u16::MAX).map(f16_to_f32).collect();
        v.extend((0..=u32::MAX).step_by(4099).map(f32::from_bits));
        v
    }

    /// The f32s at and next to every rounding boundary of f16 and bf16:
    /// the midpoints between consecutive finite values (ties, the overflow
    /// thresholds 65520 and (2 − 2^-8)·2^127 included) and their two
    /// neighbouring f32s, both signs.
    pub(crate) fn ties_f32() -> Vec<f32> {
        let mut xs = Vec::new();
        let mut near = |mid: f32| {
            for d in [-1i32, 0, 1] {
                let y = f32::from_bits(mid.to_bits().wrapping_add_signed(d));
                xs.extend([y, -y]);
            }
        };
        for h in 0..0x7c00u16 {
            let lo = f64::from(f16_to_f32(h));
            let hi = if h == 0x7bff {
                65536.0
            } else {
                f64::from(f16_to_f32(h + 1))
            };
            near(((lo + hi) / 2.0) as f32); // exact: 12 significant bits
        }
        for h in 0..0x7f80u32 {
            near(f32::from_bits((h << 16) | 0x8000));
        }
        xs
    }

    /// Checks `t.load_w` against `W::to_f32` lane by lane, bit for bit:
    /// every value of `values` in every lane (the loads start at every
    /// element offset of a cyclic copy, so at every alignment), and that a
    /// slice one short panics.
    pub(crate) fn check_load_w<S: Widen<W>, W: Weight>(t: S, values: &[W]) {
        let l = S::LANES;
        let n = values.len();
        let buf: Vec<W> = (0..n + 2 * l - 1).map(|i| values[i % n]).collect();
        let mut out = vec![0.0f32; l];
        for i in 0..n {
            t.store(&mut out, t.load_w(&buf[i..]));
            for (j, o) in out.iter().enumerate() {
                let w = buf[i + j];
                assert_eq!(
                    o.to_bits(),
                    w.to_f32().to_bits(),
                    "{} lanes: load_w of {w:?} in lane {j} at offset {i}",
                    l
                );
            }
            // The k-pair load (bf16 panels): lane j is s[2j + hi].
            for hi in [false, true] {
                t.store(&mut out, t.load_w_pair(&buf[i..], hi));
                for (j, o) in out.iter().enumerate() {
                    let w = buf[i + 2 * j + usize::from(hi)];
                    assert_eq!(
                        o.to_bits(),
                        w.to_f32().to_bits(),
                        "{} lanes: load_w_pair({hi}) of {w:?} in lane {j} at offset {i}",
                        l
                    );
                }
            }
        }
        let short = buf[..l - 1].to_vec();
        // AssertUnwindSafe: nothing is observed after the panic but the
        // panic itself.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.load_w(&short);
        }));
        assert!(panicked.is_err(), "{l} lanes: load_w of {} elements", l - 1);
    }

    /// The binary16 or bfloat16 value nearest to finite `x`, ties to even,
    /// computed in f64 independently of the bit tricks above: `None` if it
    /// overflows, else its value as f64 (the sign of zero kept). A format
    /// with `p` significant bits, smallest normal exponent `emin` and
    /// overflow at 2^(emax+1).
    pub(crate) fn round_f64(x: f32, p: i32, emin: i32, emax: i32) -> Option<f64> {
        assert!(x.is_finite());
        let v = f64::from(x);
        if v == 0.0 {
            return Some(v);
        }
        // Exponent of v (exact: v is a normal f64).
        let e = ((v.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let q = 2f64.powi(e.max(emin) - (p - 1));
        // v / q is exact (a power of two, no underflow), as is n · q.
        let r = (v / q).round_ties_even() * q;
        if r.abs() >= 2f64.powi(emax + 1) {
            return None;
        }
        // A rounding to zero keeps the sign.
        Some(if r == 0.0 { 0f64.copysign(v) } else { r })
    }

    /// f16 of finite `x` by [`round_f64`].
    pub(crate) fn f16_f64(x: f32) -> Option<f64> {
        round_f64(x, 11, -14, 15)
    }

    /// bfloat16 of finite `x` by [`round_f64`].
    pub(crate) fn bf16_f64(x: f32) -> Option<f64> {
        round_f64(x, 8, -126, 127)
    }

    /// `f32_to_f16(x)` against [`f16_f64`] and the NaN/∞ rules.
    pub(crate) fn check_f16(x: f32) {
        let got = f32_to_f16(x);
        if x.is_nan() {
            let b = x.to_bits();
            let want = ((b >> 16) & 0x8000) as u16 | 0x7e00 | ((b >> 13) & 0x3ff) as u16;
            assert_eq!(got, Some(F16(want)), "{b:#010x}");
        } else if x.is_infinite() {
            assert_eq!(got.map(|h| f16_to_f32(h.0)), Some(x));
        } else {
            let want = f16_f64(x);
            let got = got.map(|h| f64::from(f16_to_f32(h.0)));
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "f32_to_f16({x:e} = {:#010x})",
                x.to_bits()
            );
        }
    }

    /// `f32_to_bf16(x)` against [`bf16_f64`] and the NaN/∞ rules.
    pub(crate) fn check_bf16(x: f32) {
        let got = f32_to_bf16(x);
        if x.is_nan() {
            let b = x.to_bits();
            assert_eq!(got, Some(Bf16(((b >> 16) | 0x40) as u16)), "{b:#010x}");
            assert!(bf16_to_f32(got.unwrap().0).is_nan());
        } else if x.is_infinite() {
            assert_eq!(got.map(|h| bf16_to_f32(h.0)), Some(x));
        } else {
            let want = bf16_f64(x);
            let got = got.map(|h| f64::from(bf16_to_f32(h.0)));
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "f32_to_bf16({x:e} = {:#010x})",
                x.to_bits()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// Exhaustive against an independent formula computed in f64 (moved
    /// from loader/tensor.rs), NaNs by the vcvtph2ps rule.
    #[test]
    fn f16_widening_is_exact() {
        for h in 0..=u16::MAX {
            let s = if h & 0x8000 != 0 { -1.0f64 } else { 1.0 };
            let e = i32::from((h >> 10) & 0x1f);
            let m = f64::from(h & 0x3ff);
            let got = f16_to_f32(h);
            match e {
                31 if m == 0.0 => assert_eq!(f64::from(got), s * f64::INFINITY),
                31 => {
                    // Quiet (bit 22), sign kept, payload shifted left 13.
                    assert!(got.is_nan());
                    let want =
                        (u32::from(h & 0x8000) << 16) | 0x7fc0_0000 | (u32::from(h & 0x3ff) << 13);
                    assert_eq!(got.to_bits(), want, "{h:#06x}");
                }
                0 => {
                    let want = s * m * 2f64.powi(-24);
                    assert_eq!(got.to_bits(), (want as f32).to_bits(), "{h:#06x}");
                    assert_eq!(got.is_sign_negative(), s < 0.0);
                }
                _ => {
                    let want = s * (1.0 + m / 1024.0) * 2f64.powi(e - 15);
                    assert_eq!(got.to_bits(), (want as f32).to_bits(), "{h:#06x}");
                }
            }
        }
        // Spot values.
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c01).to_bits(), 0x7fc0_2000);
        assert_eq!(f16_to_f32(0xfe00).to_bits(), 0xffc0_0000);
    }

    #[test]
    fn bf16_widening() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert!(bf16_to_f32(0x7fc0).is_nan());
        assert_eq!(bf16_to_f32(0x0001).to_bits(), 0x0001_0000);
        // Every pattern is the upper half of its f32.
        for h in 0..=u16::MAX {
            assert_eq!(bf16_to_f32(h).to_bits(), u32::from(h) << 16);
        }
    }

    #[test]
    fn weight_to_f32() {
        assert_eq!(<f32 as Weight>::BYTES, 4);
        assert_eq!(F16::BYTES, 2);
        assert_eq!(Bf16::BYTES, 2);
        assert_eq!(<i8 as Weight>::BYTES, 1);
        assert_eq!(std::mem::size_of::<F16>(), F16::BYTES);
        assert_eq!(std::mem::size_of::<Bf16>(), Bf16::BYTES);
        let nan = f32::from_bits(0x7fa0_0001);
        assert_eq!(nan.to_f32().to_bits(), 0x7fa0_0001);
        assert_eq!(F16(0xc000).to_f32(), -2.0);
        assert_eq!(Bf16(0x4040).to_f32(), 3.0);
        for q in i8::MIN..=i8::MAX {
            assert_eq!(q.to_f32(), f64::from(q) as f32);
        }
    }

    #[test]
    fn f16_round_trip_and_boundaries() {
        // round(widen(h)) = h for every non-NaN h, and NaNs come back
        // quiet with their payload.
        for h in 0..=u16::MAX {
            let back = f32_to_f16(f16_to_f32(h)).expect("an f16 never overflows");
            if h & 0x7c00 == 0x7c00 && h & 0x3ff != 0 {
                assert_eq!(back.0, h | 0x0200, "{h:#06x}");
            } else {
                assert_eq!(back.0, h, "{h:#06x}");
            }
        }
        let f = |x: f32| f32_to_f16(x).map(|h| h.0);
        assert_eq!(f(65504.0), Some(0x7bff));
        assert_eq!(65_519.996f32, 65520.0 - 2f32.powi(-8)); // the f32 below the tie
        assert_eq!(f(65_519.996), Some(0x7bff));
        assert_eq!(f(f32::from_bits(65520f32.to_bits() - 1)), Some(0x7bff));
        assert_eq!(f(65520.0), None); // the tie rounds to even: ∞
        assert_eq!(f(-65520.0), None);
        assert_eq!(f(f32::MAX), None);
        assert_eq!(f(f32::INFINITY), Some(0x7c00));
        assert_eq!(f(f32::NEG_INFINITY), Some(0xfc00));
        assert_eq!(f(f32::NAN), Some(0x7e00));
        assert_eq!(f(f32::from_bits(0xff80_0001)), Some(0xfe00)); // sNaN, payload below f16's
        assert_eq!(f(f32::from_bits(0x7f80_2000)), Some(0x7e01)); // sNaN with an f16 payload
        // Subnormals: 2^-24 is the smallest, 2^-25 (the tie) rounds to even 0,
        // anything above it to 2^-24; the largest subnormal rounds up to
        // the smallest normal at its upper tie.
        assert_eq!(f(2f32.powi(-24)), Some(0x0001));
        assert_eq!(f(2f32.powi(-25)), Some(0x0000));
        assert_eq!(f(-2f32.powi(-25)), Some(0x8000));
        assert_eq!(
            f(f32::from_bits(2f32.powi(-25).to_bits() + 1)),
            Some(0x0001)
        );
        assert_eq!(f(1.5 * 2f32.powi(-24)), Some(0x0002)); // tie to even
        assert_eq!(f(2.5 * 2f32.powi(-24)), Some(0x0002)); // tie to even
        assert_eq!(f(1023.5 * 2f32.powi(-24)), Some(0x0400)); // into the normals
        assert_eq!(f(2f32.powi(-14)), Some(0x0400));
        assert_eq!(f(f32::from_bits(1)), Some(0x0000));
        assert_eq!(f(-f32::MIN_POSITIVE), Some(0x8000));
        assert_eq!(f(-0.0), Some(0x8000));
        // Normal ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
        assert_eq!(f(1.0 + 2f32.powi(-11)), Some(0x3c00));
        assert_eq!(f(1.0 + 3.0 * 2f32.powi(-11)), Some(0x3c02));
        assert_eq!(
            f(f32::from_bits((1.0f32 + 2f32.powi(-11)).to_bits() + 1)),
            Some(0x3c01)
        );
        assert_eq!(f(2047.0 / 1024.0 + 2f32.powi(-11)), Some(0x4000)); // carry into the exponent
    }

    #[test]
    fn bf16_round_trip_and_boundaries() {
        for h in 0..=u16::MAX {
            let back = f32_to_bf16(bf16_to_f32(h)).expect("a bf16 never overflows");
            if h & 0x7f80 == 0x7f80 && h & 0x7f != 0 {
                assert_eq!(back.0, h | 0x0040, "{h:#06x}");
            } else {
                assert_eq!(back.0, h, "{h:#06x}");
            }
        }
        let f = |x: f32| f32_to_bf16(x).map(|h| h.0);
        let max = bf16_to_f32(0x7f7f); // (2 - 2^-7)·2^127
        assert_eq!(f(max), Some(0x7f7f));
        assert_eq!(f(f32::from_bits(0x7f7f_7fff)), Some(0x7f7f)); // just below the tie
        assert_eq!(f(f32::from_bits(0x7f7f_8000)), None); // the tie: to even = ∞
        assert_eq!(f(f32::MAX), None);
        assert_eq!(f(-f32::MAX), None);
        assert_eq!(f(f32::INFINITY), Some(0x7f80));
        assert_eq!(f(f32::NEG_INFINITY), Some(0xff80));
        assert_eq!(f(f32::NAN), Some(0x7fc0));
        assert_eq!(f(f32::from_bits(0xff80_0001)), Some(0xffc0));
        assert_eq!(f(f32::from_bits(0x7f81_0000)), Some(0x7fc1));
        assert_eq!(f(1.0 + 2f32.powi(-8)), Some(0x3f80)); // tie to even
        assert_eq!(f(1.0 + 3.0 * 2f32.powi(-8)), Some(0x3f82)); // tie to even
        assert_eq!(f(f32::from_bits(0x3f80_8001)), Some(0x3f81));
        assert_eq!(f(f32::from_bits(0x0000_8000)), Some(0x0000)); // subnormal tie
        assert_eq!(f(f32::from_bits(0x0001_8000)), Some(0x0002));
        assert_eq!(f(f32::from_bits(0x807f_ffff)), Some(0x8080)); // up to the smallest normal
        assert_eq!(f(-0.0), Some(0x8000));
    }

    #[test]
    fn rounding_matches_the_f64_formula_on_a_sample() {
        let mut xs = some_f32();
        xs.extend(ties_f32());
        for &x in &xs {
            check_f16(x);
            check_bf16(x);
        }
    }

    /// All 2^32 f32 inputs against the f64 formulas (2.4 CPU-minutes in
    /// release on a Zen 3): `cargo test --release --lib -- --ignored every_f32`.
    #[test]
    #[ignore]
    fn rounding_matches_the_f64_formula_on_every_f32() {
        for b in 0..=u32::MAX {
            let x = f32::from_bits(b);
            check_f16(x);
            check_bf16(x);
        }
    }

    #[test]
    fn scalar_and_wide16_load_w_equal_to_f32() {
        let f: Vec<f32> = some_f32();
        check_load_w(Scalar, &all_f16());
        check_load_w(Scalar, &all_bf16());
        check_load_w(Scalar, &all_i8());
        check_load_w(Scalar, &f);
        check_load_w(Wide16, &all_f16());
        check_load_w(Wide16, &all_bf16());
        check_load_w(Wide16, &all_i8());
        check_load_w(Wide16, &f[..200_000]);
    }
}
