//! Per-ISA kernels behind one table of function pointers.
//!
//! `simd.rs` defines the vector vocabulary and the activations, `body.rs`
//! the kernels written once over it; `x86.rs` and `neon.rs` implement the
//! vocabulary with intrinsics and provide `#[target_feature]` entry points.
//! A [`Kernels`] table is chosen once, when a model is built.

pub(crate) mod body;
pub(crate) mod elem;
pub(crate) mod fpenv;
pub(crate) mod pages;
pub(crate) mod simd;

#[cfg(target_arch = "aarch64")]
#[macro_use]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
#[macro_use]
pub(crate) mod x86;

use crate::error::{Error, Result};
use crate::isa::Isa;
use crate::pack::{LayerState, PackedLayer};
pub(crate) use body::{In, MAX_COLS, balanced};

/// One step of one layer for one stream.
pub(crate) type LayerStepFn = fn(&PackedLayer, In<'_>, &mut LayerState);
/// One step of one layer for up to `MAX_COLS` streams.
pub(crate) type LayerStepColsFn = fn(&PackedLayer, &[In<'_>], &mut [&mut LayerState]);
/// Input projection (bias + W·x) of many columns.
pub(crate) type InputProjFn = fn(&PackedLayer, &[&[f32]], &mut [&mut [f32]]);

/// The kernels of one ISA.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub isa: Isa,
    /// f32 lanes of one vector; panels are packed for this width.
    pub lanes: usize,
    pub layer_step: LayerStepFn,
    pub layer_step_cols: LayerStepColsFn,
    pub input_proj: InputProjFn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({})", self.isa)
    }
}

/// Defines the three safe entry points of one ISA from a token expression
/// and its feature list (the one the token's constructor checks, supplied
/// by `x86_features!`/`neon_features!`; empty for portable code), compiled
/// with one `#[target_feature]` per feature. Each entry calls the generic
/// bodies of `body.rs`.
macro_rules! entries {
    ($modname:ident, $tok:ty, $new:expr, [$($feat:literal),*]) => {
        pub(crate) mod $modname {
            #[allow(unused_imports)]
            use super::*;
            use crate::kernels::body;
            use crate::kernels::body::In;
            use crate::pack::{LayerState, PackedLayer};

            $(#[target_feature(enable = $feat)])*
            fn step_tf(t: $tok, pl: &PackedLayer, x: In<'_>, st: &mut LayerState) {
                body::layer_step(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn cols_tf(t: $tok, pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState]) {
                body::layer_step_cols(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn proj_tf(t: $tok, pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
                body::input_proj(t, pl, xs, out)
            }
            fn token() -> $tok {
                $new.expect(concat!(stringify!($modname), " kernels used on a CPU without them"))
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step(pl: &PackedLayer, x: In<'_>, st: &mut LayerState) {
                let t = token();
                // SAFETY: `t` exists, so the CPU has every feature `step_tf` is
                // compiled for (the token's constructor checked them).
                unsafe { step_tf(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step_cols(pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState]) {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { cols_tf(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn input_proj(pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { proj_tf(t, pl, xs, out) }
            }
        }
    };
}

entries!(scalar_entries, simd::Scalar, Some(simd::Scalar), []);
entries!(wide16_entries, simd::Wide16, Some(simd::Wide16), []);
#[cfg(target_arch = "x86_64")]
x86_features!(avx2, entries!(avx2_entries, x86::Avx2, x86::Avx2::new(),));
#[cfg(target_arch = "x86_64")]
x86_features!(
    avx512,
    entries!(avx512_entries, x86::Avx512, x86::Avx512::new(),)
);
#[cfg(target_arch = "aarch64")]
neon_features!(entries!(neon_entries, neon::Neon, neon::Neon::new(),));

macro_rules! table {
    ($isa:expr, $lanes:expr, $m:ident) => {
        Kernels {
            isa: $isa,
            lanes: $lanes,
            layer_step: $m::layer_step,
            layer_step_cols: $m::layer_step_cols,
            input_proj: $m::input_proj,
        }
    };
}

impl Kernels {
    /// The portable emulation of the AVX-512 geometry (16 lanes, 8
    /// columns; see [`simd::Wide16`]), for tests on CPUs without AVX-512.
    /// It reports `Isa::Scalar`: it is portable code.
    pub(crate) fn wide16_emulation() -> Kernels {
        table!(Isa::Scalar, 16, wide16_entries)
    }

    /// The table for `isa`, or an error if this CPU cannot run it.
    pub(crate) fn for_isa(isa: Isa) -> Result<Kernels> {
        if !isa.is_supported() {
            return Err(Error::IsaUnavailable(isa));
        }
        Ok(match isa {
            Isa::Scalar => table!(isa, 1, scalar_entries),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => table!(isa, 8, avx2_entries),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => table!(isa, 16, avx512_entries),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => table!(isa, 4, neon_entries),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::IsaUnavailable(isa)),
        })
    }
}
