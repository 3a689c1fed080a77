//! AArch64 Advanced SIMD (NEON) implementation of [`Simd`] (4 lanes of
//! `float32x4_t`). The entry points of the kernel table are generated from
//! the token by `entries!` in `kernels/mod.rs`, with `#[target_feature(enable
//! = "neon")]`, like the x86 ones.
//!
//! The token type can only be created through [`Neon::new`], which checks
//! the CPU, so holding one proves the instructions exist; that is the
//! argument of every `SAFETY` comment here. (NEON is part of the baseline
//! of `aarch64-unknown-linux-gnu`, so the check always succeeds there; it
//! keeps the module sound on AArch64 targets where it is optional.)
//!
//! How each operation keeps the [`Simd`] contract, and so the bit-identity
//! with the scalar and x86 paths:
//! - `add`/`sub`/`mul`/`div` are the IEEE operations (`fdiv` is exact;
//!   the reciprocal estimates `frecpe`/`frecps` are never used);
//! - `fma(a, b, c) = a·b + c` is `vfmaq_f32(c, a, b)` (`fmla`: the
//!   accumulator comes first in the intrinsic), one rounding;
//! - `max`/`min` are `fmax`/`fmin`, which return NaN when an operand is
//!   NaN, as the contract requires for the data operand. Where they differ
//!   from x86 `maxps(k, x)` / the scalar `x < k ? k : x` is outside the
//!   contract: the sign of a zero when `k` and `x` are zeros of opposite
//!   sign (`fmax(+0, −0) = +0`, x86 and scalar give `x`), and a signalling
//!   NaN in `x`, which `fmax` returns quietened. The kernels never depend
//!   on either: the clamps use `k ≠ 0` and `relu` adds `+0` afterwards,
//!   which maps both zeros to `+0` (tested below).

use std::arch::aarch64::*;

use super::body_int::IntDot;
use super::elem::{Bf16, F16, Widen};
use super::simd::Simd;
use crate::cell::activation::Activation;

/// Proof that NEON (Advanced SIMD with f32 `fma`/`fdiv`) is available.
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

/// The CPU features of the token, listed once (as `x86_features!`): the
/// constructor checks them, `entries!` compiles the kernels for them.
macro_rules! neon_features {
    ($m:ident!($($a:tt)*)) => { $m! { $($a)* ["neon"] } };
    (dotprod, $m:ident!($($a:tt)*)) => { $m! { $($a)* ["neon", "dotprod"] } };
}

/// Whether the CPU has every feature of a list.
macro_rules! neon_detected {
    ([$($f:tt),+]) => { $(std::arch::is_aarch64_feature_detected!($f))&&+ };
}

impl Neon {
    pub(crate) fn new() -> Option<Neon> {
        neon_features!(neon_detected!()).then_some(Neon(()))
    }
}

/// Proof that NEON and the dot-product extension (`sdot`, FEAT_DotProd)
/// are available. Only the `i8` kernels use it; its [`Simd`] operations
/// are [`Neon`]'s.
#[derive(Clone, Copy)]
pub(crate) struct NeonDot(());

impl NeonDot {
    pub(crate) fn new() -> Option<NeonDot> {
        neon_features!(dotprod, neon_detected!()).then_some(NeonDot(()))
    }
}

simd_as!(NeonDot, Neon);

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;
    // 16 accumulators of the 32 q registers.
    const GEMM_COLS: usize = 8;
    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        assert!(s.len() >= 4);
        // SAFETY: NEON is available (token) and s has at least 4 elements
        // (checked above), so the 16-byte read is in bounds; `ld1` needs
        // only the f32 alignment that the slice guarantees.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: float32x4_t) {
        assert!(s.len() >= 4);
        // SAFETY: NEON is available and s has at least 4 elements (checked
        // above), so the 16-byte write is in bounds of a unique borrow.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available (`fdiv`, exact).
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        // vfmaq_f32(acc, x, y) = acc + x·y, so a·b + c is vfmaq_f32(c, a, b).
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn max(self, k: float32x4_t, x: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available. `fmax` returns
        // NaN when either operand is NaN (unlike `fmaxnm`).
        unsafe { vmaxq_f32(k, x) }
    }
    #[inline(always)]
    fn min(self, k: float32x4_t, x: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available. `fmin` returns
        // NaN when either operand is NaN (unlike `fminnm`).
        unsafe { vminq_f32(k, x) }
    }
    #[inline(always)]
    fn flush(self, x: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available (registers only).
        // `facgt` (vcaltq: |x| < MIN_POSITIVE, false for NaN) selects the
        // zeros and subnormals; `bic` clears their magnitude bits and keeps
        // the sign (zeros stay as they are).
        unsafe {
            let tiny = vcaltq_f32(x, vdupq_n_f32(f32::MIN_POSITIVE));
            let clear = vandq_u32(tiny, vdupq_n_u32(0x7fff_ffff));
            vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(x), clear))
        }
    }
    #[inline(always)]
    fn abs(self, x: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available (`fabs`, a bit
        // operation on registers).
        unsafe { vabsq_f32(x) }
    }
    #[inline(always)]
    fn select_gt(
        self,
        a: float32x4_t,
        b: float32x4_t,
        x: float32x4_t,
        y: float32x4_t,
    ) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available (registers only).
        // `fcmgt` is false for NaN; `bsl` takes x where the mask is set.
        unsafe { vbslq_f32(vcgtq_f32(a, b), x, y) }
    }
    #[inline(always)]
    fn act(self, a: &Activation, x: float32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves the CPU has every feature
        // `act_neon` is compiled for (its constructor checked them).
        unsafe { act_neon(self, a, x) }
    }
}

neon_features!(act_entry!(act_neon, Neon,));

// Weight widening (kernels/elem.rs): each exact, so equal bit for bit to
// `Weight::to_f32` (tested below for every element value). f16 is `fcvtl`
// (base ARMv8 FP, no FEAT_FP16; `vcvt_f32_f16` is unstable), which with
// FPCR.DN = 0 (FpEnv) quietens a signalling NaN exactly as `f16_to_f32`
// does and, being a conversion, ignores FZ16; it reads FPCR.AHP, which must
// be 0 (IEEE half precision, the reset value). bf16 is `shll #16` (the
// 16-bit halves moved to the top of 32-bit lanes); i8 is two sign
// extensions and `scvtf`, exact for |q| ≤ 128.

impl Widen<f32> for Neon {
    #[inline(always)]
    fn load_w(self, s: &[f32]) -> float32x4_t {
        self.load(s)
    }
}

impl Widen<F16> for Neon {
    #[inline(always)]
    fn load_w(self, s: &[F16]) -> float32x4_t {
        assert!(s.len() >= 4);
        // SAFETY: NEON is available (token); s has at least 4 elements of 2
        // bytes (checked above; F16 is a repr(transparent) u16), so the
        // 8-byte read is in bounds, with the u16 alignment `ld1` needs. The
        // asm only converts register to register (no memory, no stack); it
        // may set FPSR.IOC (signalling NaN), so no `preserves_flags`.
        unsafe {
            let h = vld1_u16(s.as_ptr().cast());
            let o: float32x4_t;
            core::arch::asm!(
                "fcvtl {o:v}.4s, {i:v}.4h",
                i = in(vreg) h,
                o = lateout(vreg) o,
                options(pure, nomem, nostack)
            );
            o
        }
    }
}

impl Widen<Bf16> for Neon {
    #[inline(always)]
    fn load_w(self, s: &[Bf16]) -> float32x4_t {
        assert!(s.len() >= 4);
        // SAFETY: NEON is available (token); s has at least 4 elements of 2
        // bytes (checked above; Bf16 is a repr(transparent) u16), so the
        // 8-byte read is in bounds, with the u16 alignment `ld1` needs.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(s.as_ptr().cast()))) }
    }
    #[inline(always)]
    fn load_w_pair(self, s: &[Bf16], hi: bool) -> float32x4_t {
        assert!(s.len() >= 8);
        // SAFETY: NEON is available (token); s has at least 8 elements of 2
        // bytes (checked above), so the 16-byte read is in bounds, with the
        // u16 alignment `ld1` needs. Each 32-bit lane holds (k, k + 1) of
        // one row (little-endian: k in the low half).
        unsafe {
            let x = vreinterpretq_u32_u16(vld1q_u16(s.as_ptr().cast()));
            vreinterpretq_f32_u32(if hi {
                vandq_u32(x, vdupq_n_u32(0xffff_0000))
            } else {
                vshlq_n_u32::<16>(x)
            })
        }
    }
}

impl Widen<i8> for Neon {
    #[inline(always)]
    fn load_w(self, s: &[i8]) -> float32x4_t {
        // The 4 bytes as one little-endian u32 in lane 0 (safe indexing:
        // panics if fewer than 4), so that lanes 0..4 of the int8x8 are
        // s[0..4] (AArch64 Linux is little-endian).
        let w = u32::from_le_bytes([s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8]);
        // SAFETY: the Neon token proves NEON is available (registers only).
        unsafe {
            let b = vreinterpret_s8_u32(vdup_n_u32(w));
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(b))))
        }
    }
}

/// The exact NEON dot without dotprod: `smull`/`smull2` (each product
/// |w · x| ≤ 16129 fits i16), `saddlp` into i32 pair sums, and `addp` to
/// fold the two pairs of each row: 4 rows × 4 k.
impl IntDot for Neon {
    type I = int32x4_t;
    type Q = int8x16_t;
    type W = int8x16_t;
    #[inline(always)]
    fn izero(self) -> int32x4_t {
        // SAFETY: the Neon token proves NEON is available.
        unsafe { vdupq_n_s32(0) }
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> int32x4_t {
        // SAFETY: NEON is available (token); `load` checks the bounds.
        unsafe { vreinterpretq_s32_f32(self.load(s)) }
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: int32x4_t) {
        // SAFETY: NEON is available (token); `store` checks the bounds.
        self.store(s, unsafe { vreinterpretq_f32_s32(v) })
    }
    #[inline(always)]
    fn prep(self, word: u32) -> int8x16_t {
        // SAFETY: the Neon token proves NEON is available (registers only).
        unsafe { vreinterpretq_s8_u32(vdupq_n_u32(word)) }
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> int8x16_t {
        assert!(w.len() >= 16);
        // SAFETY: NEON is available (token) and w has at least 16 bytes
        // (checked above), so the 16-byte read is in bounds.
        unsafe { vld1q_s8(w.as_ptr()) }
    }
    #[inline(always)]
    fn dot4(self, acc: int32x4_t, q: int8x16_t, w: int8x16_t) -> int32x4_t {
        // SAFETY: the Neon token proves NEON is available (registers only).
        unsafe {
            let lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(q)));
            let hi = vpaddlq_s16(vmull_high_s8(w, q));
            vaddq_s32(acc, vpaddq_s32(lo, hi))
        }
    }
    #[inline(always)]
    fn to_f32(self, v: int32x4_t) -> float32x4_t {
        // SAFETY: the Neon token proves NEON is available; `scvtf` rounds by
        // FPCR.RMode, which the call's FpEnv holds at round-to-nearest.
        unsafe { vcvtq_f32_s32(v) }
    }
}

/// The NEON dot-product dot: `sdot` (s8 × s8 into each i32 lane, 4
/// products per lane, wrapping), one instruction per 16 products, through
/// `asm!` (the `vdotq_s32` intrinsic is not stable in this toolchain).
impl IntDot for NeonDot {
    type I = int32x4_t;
    type Q = int8x16_t;
    type W = int8x16_t;
    #[inline(always)]
    fn izero(self) -> int32x4_t {
        Neon(()).izero()
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> int32x4_t {
        Neon(()).iload(s)
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: int32x4_t) {
        Neon(()).istore(s, v)
    }
    #[inline(always)]
    fn prep(self, word: u32) -> int8x16_t {
        Neon(()).prep(word)
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> int8x16_t {
        Neon(()).wload(w)
    }
    #[inline(always)]
    fn dot4(self, acc: int32x4_t, q: int8x16_t, w: int8x16_t) -> int32x4_t {
        let mut a = acc;
        // SAFETY: the NeonDot token proves NEON and dotprod are available;
        // the asm reads and writes registers only (no memory, no stack, no
        // flags).
        unsafe {
            // `.arch_extension`: the asm is assembled in whatever function
            // it is inlined into, which need not enable dotprod itself (the
            // token is the proof that the CPU has it).
            core::arch::asm!(
                ".arch_extension dotprod",
                "sdot {a:v}.4s, {w:v}.16b, {q:v}.16b",
                a = inout(vreg) a,
                w = in(vreg) w,
                q = in(vreg) q,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        a
    }
    #[inline(always)]
    fn to_f32(self, v: int32x4_t) -> float32x4_t {
        Neon(()).to_f32(v)
    }
}

#[cfg(test)]
mod tests {
    //! Every [`Simd`] operation of [`Neon`] against [`Scalar`], lane by
    //! lane, on random bit patterns and special values; and the shared
    //! activations over dense sweeps, bit for bit.

    use super::*;
    use crate::kernels::simd::{Scalar, relu, sigmoid, tanh};

    use crate::test_rng::Rng;

    /// Test values from the shared generator.
    trait Values {
        fn f32(&mut self) -> f32;
        fn vec(&mut self) -> [f32; 4];
    }
    impl Values for Rng {
        /// A mix of special values, any bit pattern, denormals and
        /// moderate normal values.
        fn f32(&mut self) -> f32 {
            const SPECIAL: [u32; 16] = [
                0x0000_0000, // +0
                0x8000_0000, // -0
                0x7f80_0000, // +inf
                0xff80_0000, // -inf
                0x7fc0_0000, // qNaN
                0xffc0_1234, // negative qNaN with payload
                0x7fa0_0001, // sNaN
                0x0000_0001, // smallest denormal
                0x807f_ffff, // largest negative denormal
                0x0080_0000, // smallest normal
                0x7f7f_ffff, // f32::MAX
                0x3f80_0000, // 1
                0xbf80_0000, // -1
                0x40ff_f388, // TANH_CLAMP-ish
                0x3f00_0000, // 0.5
                0x4b00_0000, // 2^23
            ];
            let r = self.next();
            let bits = (r >> 32) as u32;
            match r % 8 {
                0 => f32::from_bits(SPECIAL[(bits % 16) as usize]),
                1 | 2 => f32::from_bits(bits),
                3 => f32::from_bits(bits & 0x807f_ffff), // ±denormal or ±0
                _ => (bits as i32 as f32) * (1.0 / 2.0f32.powi(28)), // |v| < 8
            }
        }
        fn vec(&mut self) -> [f32; 4] {
            [self.f32(), self.f32(), self.f32(), self.f32()]
        }
    }

    fn quiet(v: f32) -> u32 {
        if v.is_nan() {
            v.to_bits() | 0x0040_0000
        } else {
            v.to_bits()
        }
    }

    fn nan_count(ins: &[f32]) -> usize {
        ins.iter().filter(|v| v.is_nan()).count()
    }

    /// Bit equality of the results `n` (NEON) and `s` (scalar) of one lane
    /// whose inputs were `ins`. When the result is NaN: both must be NaN,
    /// and if exactly one input was NaN, which is then propagated by IEEE
    /// rules on both paths, the quietened payloads must match too. (With
    /// several NaN inputs, which payload wins depends on the operand order
    /// the compiler picks for commutative operations; no kernel relies on
    /// it.)
    fn check(op: &str, ins: &[f32], n: f32, s: f32) {
        let ok = if s.is_nan() || n.is_nan() {
            n.is_nan() && s.is_nan() && (nan_count(ins) != 1 || quiet(n) == quiet(s))
        } else {
            n.to_bits() == s.to_bits()
        };
        assert!(
            ok,
            "{op}{ins:?} (bits {:08x?}): neon {n:e} ({:08x}) vs scalar {s:e} ({:08x})",
            ins.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            n.to_bits(),
            s.to_bits()
        );
    }

    fn to_arr(t: Neon, v: float32x4_t) -> [f32; 4] {
        let mut o = [0.0f32; 4];
        t.store(&mut o, v);
        o
    }

    fn token() -> Neon {
        Neon::new().expect("NEON missing on an aarch64 test machine")
    }

    #[test]
    fn load_store_splat_roundtrip_bits() {
        let t = token();
        let mut r = Rng(1);
        for _ in 0..10_000 {
            let a = r.vec();
            let mut buf = [0.0f32; 7];
            buf[2..6].copy_from_slice(&a);
            // Unaligned (offset 2) load and store.
            let v = t.load(&buf[2..]);
            let mut out = [1.0f32; 7];
            t.store(&mut out[3..], v);
            for i in 0..4 {
                assert_eq!(out[3 + i].to_bits(), a[i].to_bits());
                assert_eq!(to_arr(t, t.splat(a[i]))[i % 4].to_bits(), a[i].to_bits());
            }
            assert_eq!(out[0], 1.0);
            assert_eq!(out[2], 1.0);
        }
    }

    #[test]
    fn arithmetic_matches_scalar_bit_for_bit() {
        let t = token();
        let s = Scalar;
        let mut r = Rng(2);
        for _ in 0..200_000 {
            let (a, b, c) = (r.vec(), r.vec(), r.vec());
            let (va, vb, vc) = (t.load(&a), t.load(&b), t.load(&c));
            let add = to_arr(t, t.add(va, vb));
            let sub = to_arr(t, t.sub(va, vb));
            let mul = to_arr(t, t.mul(va, vb));
            let div = to_arr(t, t.div(va, vb));
            let fma = to_arr(t, t.fma(va, vb, vc));
            let fl = to_arr(t, t.flush(va));
            for i in 0..4 {
                assert_eq!(
                    fl[i].to_bits(),
                    s.flush(a[i]).to_bits(),
                    "flush({:e})",
                    a[i]
                );
                let (x, y, z) = (a[i], b[i], c[i]);
                check("add", &[x, y], add[i], s.add(x, y));
                check("sub", &[x, y], sub[i], s.sub(x, y));
                check("mul", &[x, y], mul[i], s.mul(x, y));
                check("div", &[x, y], div[i], s.div(x, y));
                check("fma", &[x, y, z], fma[i], s.fma(x, y, z));
            }
        }
    }

    #[test]
    fn fma_is_fused_and_in_the_right_order() {
        // a·b + c with one rounding: (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24
        // exactly, which an unfused multiply (rounding away the 2^-24)
        // would return as 0.
        let t = token();
        let a = 1.0 + 2.0f32.powi(-12);
        let c = -(1.0 + 2.0f32.powi(-11));
        let v = to_arr(t, t.fma(t.splat(a), t.splat(a), t.splat(c)));
        assert_eq!(v, [2.0f32.powi(-24); 4]);
        // Argument order: 2·3 + 10, not 2 + 3·10 nor 10·2 + 3.
        let v = to_arr(t, t.fma(t.splat(2.0), t.splat(3.0), t.splat(10.0)));
        assert_eq!(v, [16.0; 4]);
    }

    #[test]
    fn div_is_exact() {
        // A reciprocal estimate (even refined) misses these correctly
        // rounded quotients somewhere; fdiv must match scalar division.
        let t = token();
        let mut r = Rng(3);
        for _ in 0..100_000 {
            let a: [f32; 4] = std::array::from_fn(|_| (r.next() as u32 >> 8) as f32 + 1.0);
            let b: [f32; 4] = std::array::from_fn(|_| (r.next() as u32 >> 9) as f32 + 3.0);
            let q = to_arr(t, t.div(t.load(&a), t.load(&b)));
            for i in 0..4 {
                assert_eq!(q[i].to_bits(), (a[i] / b[i]).to_bits());
            }
        }
        let q = to_arr(t, t.div(t.splat(1.0), t.splat(3.0)));
        assert_eq!(q, [1.0f32 / 3.0; 4]);
    }

    #[test]
    fn max_min_keep_the_contract() {
        let t = token();
        let s = Scalar;
        let mut r = Rng(4);
        // The constants the kernels clamp with, and random non-NaN ones.
        let mut ks = vec![0.0f32, 7.998_811_7, -7.998_811_7, 1.0, -1.0, 50.0, -50.0];
        while ks.len() < 64 {
            let k = r.f32();
            if !k.is_nan() {
                ks.push(k);
            }
        }
        for &k in &ks {
            let vk = t.splat(k);
            for _ in 0..5_000 {
                let x = r.vec();
                let vx = t.load(&x);
                let mx = to_arr(t, t.max(vk, vx));
                let mn = to_arr(t, t.min(vk, vx));
                for i in 0..4 {
                    let (sx, sn) = (s.max(k, x[i]), s.min(k, x[i]));
                    if x[i] == 0.0 && k == 0.0 {
                        // Opposite-signed zeros: the contract leaves the
                        // sign open (fmax(+0, -0) = +0, scalar gives x).
                        assert_eq!(mx[i], 0.0);
                        assert_eq!(mn[i], 0.0);
                        continue;
                    }
                    if x[i].is_nan() {
                        // NaN in x gives NaN, its payload quietened.
                        assert_eq!(quiet(mx[i]), quiet(x[i]), "max({k}, {:?})", x[i]);
                        assert_eq!(quiet(mn[i]), quiet(x[i]), "min({k}, {:?})", x[i]);
                        continue;
                    }
                    check("max", &[k, x[i]], mx[i], sx);
                    check("min", &[k, x[i]], mn[i], sn);
                }
            }
        }
    }

    /// Runs the NEON and scalar `f` over `xs` (any length) and compares.
    fn compare_activation(
        name: &str,
        xs: &[f32],
        fv: impl Fn(Neon, float32x4_t) -> float32x4_t,
        fs: impl Fn(Scalar, f32) -> f32,
    ) {
        let t = token();
        for chunk in xs.chunks(4) {
            let mut buf = [0.5f32; 4];
            buf[..chunk.len()].copy_from_slice(chunk);
            let out = to_arr(t, fv(t, t.load(&buf)));
            for (i, &x) in chunk.iter().enumerate() {
                check(name, &[x], out[i], fs(Scalar, x));
            }
        }
    }

    /// Every 2^9-th f32 bit pattern, offset so that the low bits vary
    /// (all exponents, both signs, denormals, ±inf, NaNs), plus every f32
    /// of [-10, 10] on a fine grid and the special values.
    fn sweep() -> Vec<f32> {
        let mut v: Vec<f32> = (0..1u32 << 23)
            .map(|i| f32::from_bits((i << 9) | (i.wrapping_mul(0x9e37) & 0x1ff)))
            .collect();
        v.extend((-2_000_000..=2_000_000).map(|i| i as f32 * 5e-6));
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fa0_0001),
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::MAX,
            f32::MIN,
            7.998_811_7,
            -7.998_811_7,
            15.997_623,
            -15.997_623,
        ]);
        v
    }

    #[test]
    fn activations_match_scalar_bit_for_bit() {
        let xs = sweep();
        compare_activation("tanh", &xs, tanh, tanh);
        compare_activation("sigmoid", &xs, sigmoid, sigmoid);
        compare_activation("relu", &xs, relu, relu);
    }

    #[test]
    fn relu_canonicalises_zero_and_keeps_nan() {
        let t = token();
        let x = [-0.0f32, 0.0, f32::from_bits(0x8000_0001), f32::from_bits(1)];
        let y = to_arr(t, relu(t, t.load(&x)));
        assert_eq!(
            y.map(f32::to_bits),
            [0, 0, 0, 1],
            "relu(-0) = relu(+0) = relu(-denormal) = +0"
        );
        let x = [f32::NAN, -f32::NAN, f32::NEG_INFINITY, f32::INFINITY];
        let y = to_arr(t, relu(t, t.load(&x)));
        assert!(y[0].is_nan() && y[1].is_nan());
        assert_eq!(y[0].to_bits(), f32::NAN.to_bits());
        assert_eq!(y[1].to_bits(), (-f32::NAN).to_bits());
        assert_eq!(y[2].to_bits(), 0);
        assert_eq!(y[3], f32::INFINITY);
        // Scalar agrees on the same inputs.
        for x in [-0.0f32, 0.0, f32::from_bits(0x8000_0001)] {
            assert_eq!(relu(Scalar, x).to_bits(), 0);
        }
    }

    #[test]
    fn activations_propagate_nan_and_saturate() {
        let t = token();
        let x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN];
        let th = to_arr(t, tanh(t, t.load(&x)));
        let sg = to_arr(t, sigmoid(t, t.load(&x)));
        assert!(th[0].is_nan() && th[3].is_nan() && sg[0].is_nan() && sg[3].is_nan());
        assert_eq!((th[1], th[2]), (tanh(Scalar, 8.0), -tanh(Scalar, 8.0)));
        assert!((th[1] - 1.0).abs() < 5e-7 && (sg[1] - 1.0).abs() < 5e-7 && sg[2].abs() < 5e-7);
    }

    /// `load_w` against `Weight::to_f32`, lane by lane, for every f16,
    /// bf16 and i8 value, and the f32 sample.
    #[test]
    fn load_w_equals_to_f32() {
        use crate::kernels::elem::testing::{all_bf16, all_f16, all_i8, check_load_w, some_f32};
        let t = token();
        check_load_w(t, &all_f16());
        check_load_w(t, &all_bf16());
        check_load_w(t, &all_i8());
        check_load_w(t, &some_f32());
    }
}
