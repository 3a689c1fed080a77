//! TEMPORARY stub of the weight element types (replaced by the h-elem branch).

#![forbid(unsafe_code)]

use super::simd::{Scalar, Simd, Wide16};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct F16(pub u16);
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

pub(crate) trait Weight:
    sealed::Sealed + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    const BYTES: usize;
    fn to_f32(self) -> f32;
}
impl Weight for f32 {
    const BYTES: usize = 4;
    fn to_f32(self) -> f32 {
        self
    }
}
impl Weight for F16 {
    const BYTES: usize = 2;
    fn to_f32(self) -> f32 {
        crate::loader::tensor::f16_to_f32(self.0)
    }
}
impl Weight for Bf16 {
    const BYTES: usize = 2;
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}
impl Weight for i8 {
    const BYTES: usize = 1;
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

pub(crate) fn f32_to_bf16(x: f32) -> Option<Bf16> {
    let b = x.to_bits();
    if x.is_nan() {
        return Some(Bf16(((b >> 16) | 0x40) as u16));
    }
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let out = Bf16(r as u16);
    if x.is_finite() && !out.to_f32().is_finite() {
        None
    } else {
        Some(out)
    }
}

pub(crate) fn f32_to_f16(x: f32) -> Option<F16> {
    // via f64, exact enough for a stub: pick the nearest of the two neighbours
    if x.is_nan() {
        return Some(F16(((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00));
    }
    let mut best = F16(0);
    let mut bd = f64::INFINITY;
    let neg = x.is_sign_negative();
    for h in 0u16..0x7c01 {
        let v = f64::from(F16(h).to_f32());
        let d = (v - f64::from(x.abs())).abs();
        if d < bd || (d == bd && h & 1 == 0) {
            bd = d;
            best = F16(h);
        }
    }
    if x.is_finite() && best.0 == 0x7c00 && x.abs() < 65520.0 {
        best = F16(0x7bff);
    }
    if x.is_finite() && x.abs() >= 65520.0 {
        return None;
    }
    Some(F16(best.0 | if neg { 0x8000 } else { 0 }))
}

pub(crate) trait Widen<W: Weight>: Simd {
    fn load_w(self, s: &[W]) -> Self::V;
}
impl<W: Weight> Widen<W> for Scalar {
    #[inline(always)]
    fn load_w(self, s: &[W]) -> f32 {
        s[0].to_f32()
    }
}
impl<W: Weight> Widen<W> for Wide16 {
    #[inline(never)]
    fn load_w(self, s: &[W]) -> [f32; 16] {
        std::array::from_fn(|i| s[i].to_f32())
    }
}
macro_rules! stub_widen {
    ($t:ty, $n:expr) => {
        impl<W: Weight> Widen<W> for $t {
            #[inline(always)]
            fn load_w(self, s: &[W]) -> Self::V {
                let a: [f32; $n] = std::array::from_fn(|i| s[i].to_f32());
                self.load(&a)
            }
        }
    };
}
#[cfg(target_arch = "x86_64")]
stub_widen!(super::x86::Avx2, 8);
#[cfg(target_arch = "x86_64")]
stub_widen!(super::x86::Avx512, 16);
#[cfg(target_arch = "aarch64")]
stub_widen!(super::neon::Neon, 4);
