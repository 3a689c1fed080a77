//! Per-ISA kernels behind one table of function pointers.
//!
//! `simd.rs` defines the vector vocabulary and the activations, `body.rs`
//! the kernels written once over it; `x86.rs` and `neon.rs` implement the
//! vocabulary with intrinsics and provide `#[target_feature]` entry points.
//! A [`Kernels`] table is chosen once, when a model is built.

pub(crate) mod body;
pub(crate) mod body_int;
pub(crate) mod buf;
pub(crate) mod elem;
pub(crate) mod fpenv;
pub(crate) mod panel;
pub(crate) mod simd;

#[cfg(target_arch = "aarch64")]
#[macro_use]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
#[macro_use]
pub(crate) mod x86;

use crate::cell::spec::WeightPrecision;
use crate::error::{Error, Result};
use crate::isa::Isa;
pub(crate) use body::{In, MAX_COLS, balanced};
use elem::{Bf16, F16};
use panel::{LayerState, PackedLayer};

/// One step of one layer for one stream.
pub(crate) type LayerStepFn = fn(&PackedLayer, In<'_>, &mut LayerState);
/// One step of one layer for up to `MAX_COLS` streams.
pub(crate) type LayerStepColsFn = fn(&PackedLayer, &[In<'_>], &mut [&mut LayerState]);
/// Input projection (bias + W·x) of many columns.
pub(crate) type InputProjFn = fn(&PackedLayer, &[&[f32]], &mut [&mut [f32]]);

/// The kernels of one ISA for one weight precision.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub isa: Isa,
    /// f32 lanes of one vector; panels are packed for this width.
    pub lanes: usize,
    /// The weight precision the panels must be packed in.
    pub precision: WeightPrecision,
    pub layer_step: LayerStepFn,
    pub layer_step_cols: LayerStepColsFn,
    pub input_proj: InputProjFn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({}, {})", self.isa, self.precision)
    }
}

/// Defines the entry points of one ISA from a token expression, the column
/// counts its multi-column micro-kernel takes (exactly `1..=GEMM_COLS`,
/// checked at compile time) and its feature list (the one the token's
/// constructor checks, supplied by `x86_features!`/`neon_features!`; empty
/// for portable code), compiled with one `#[target_feature]` per feature:
/// per weight type, three safe entries that inline the generic bodies of
/// `body.rs`, and the one outlined micro-kernel they all call
/// ([`body::Micro`]), so each (ISA, weight type) compiles `3 × GEMM_COLS`
/// block kernels once.
macro_rules! entries {
    ($modname:ident, $tok:ty, $new:expr, cols [$($nc:literal)+], [$($feat:literal),*]) => {
        pub(crate) mod $modname {
            #[allow(unused_imports)]
            use super::*;
            use crate::kernels::body::{self, Chunk, In, Micro};
            use crate::kernels::body_int::{self, ChunkQ, MicroQ};
            use crate::kernels::elem::Widen;
            use crate::kernels::panel::{LayerState, Nv, PackedLayer, Stored};
            use crate::kernels::simd::Simd;

            // The column list is exactly 1..=GEMM_COLS: every balanced()
            // group reaches an arm, and no arm is compiled in vain.
            const _: () = {
                let l = [$($nc),+];
                assert!(l.len() == <$tok as Simd>::GEMM_COLS);
                let mut i = 0;
                while i < l.len() {
                    assert!(l[i] == i + 1);
                    i += 1;
                }
            };

            #[inline(always)]
            fn cols<W: Stored, const NV: usize>(t: $tok, c: Chunk<'_, W>, ins: &[&[f32]], ts: &mut [&mut [f32]])
            where
                $tok: Widen<W>,
            {
                match ins.len() {
                    $($nc => body::gemm_block::<$tok, W, NV, $nc>(t, c, ins, ts),)+
                    // balanced(n, GEMM_COLS) yields non-empty ranges of at
                    // most GEMM_COLS (tested in body.rs), all listed above.
                    n => unreachable!("a column group of {n}"),
                }
            }

            #[inline(always)]
            fn group<W: Stored>(t: $tok, c: Chunk<'_, W>, ins: &[&[f32]], ts: &mut [&mut [f32]])
            where
                $tok: Widen<W>,
            {
                match c.nv {
                    Nv::V8 => cols::<W, 8>(t, c, ins, ts),
                    Nv::V6 => cols::<W, 6>(t, c, ins, ts),
                    Nv::V4 => cols::<W, 4>(t, c, ins, ts),
                }
            }

            $(#[target_feature(enable = $feat)])*
            #[inline(never)]
            fn micro_tf<W: Stored>(t: $tok, c: Chunk<'_, W>, ins: &[&[f32]], ts: &mut [&mut [f32]])
            where
                $tok: Widen<W>,
            {
                // Each balanced() group of at most GEMM_COLS columns; only
                // the first prefetches. (Called directly: a function passed
                // as `impl Fn` would be compiled as a shim without the
                // target features, every intrinsic a call.)
                for r in body::balanced(ins.len(), <$tok as Simd>::GEMM_COLS) {
                    let pf = c.pf && r.start == 0;
                    group::<W>(t, Chunk { pf, ..c }, &ins[r.clone()], &mut ts[r]);
                }
            }

            impl<W: Stored> Micro<W> for $tok
            where
                $tok: Widen<W>,
            {
                #[inline(always)]
                #[allow(unused_unsafe)]
                fn gemm_chunk(self, c: Chunk<'_, W>, ins: &[&[f32]], ts: &mut [&mut [f32]]) {
                    // SAFETY: `self` is a token, so the CPU has every
                    // feature `micro_tf` is compiled for (the token's
                    // constructor checked them).
                    unsafe { micro_tf(self, c, ins, ts) }
                }
            }

            #[inline(always)]
            fn cols_q<const NV: usize>(t: $tok, c: ChunkQ<'_>, ws: &[&[f32]], ts: &mut [&mut [f32]]) {
                match ws.len() {
                    $($nc => body_int::gemm_block_q::<$tok, NV, $nc>(t, c, ws, ts),)+
                    n => unreachable!("a column group of {n}"),
                }
            }

            $(#[target_feature(enable = $feat)])*
            #[inline(never)]
            fn micro_q_tf(t: $tok, c: ChunkQ<'_>, ws: &[&[f32]], ts: &mut [&mut [f32]]) {
                for r in body::balanced(ws.len(), <$tok as Simd>::GEMM_COLS) {
                    let (w, t2) = (&ws[r.clone()], &mut ts[r]);
                    match c.nv {
                        Nv::V8 => cols_q::<8>(t, c, w, t2),
                        Nv::V6 => cols_q::<6>(t, c, w, t2),
                        Nv::V4 => cols_q::<4>(t, c, w, t2),
                    }
                }
            }

            impl MicroQ for $tok {
                #[inline(always)]
                #[allow(unused_unsafe)]
                fn gemm_chunk_q(self, c: ChunkQ<'_>, ws: &[&[f32]], ts: &mut [&mut [f32]]) {
                    // SAFETY: `self` is a token, so the CPU has every
                    // feature `micro_q_tf` is compiled for.
                    unsafe { micro_q_tf(self, c, ws, ts) }
                }
            }

            $(#[target_feature(enable = $feat)])*
            fn step_q_tf(t: $tok, pl: &PackedLayer, x: In<'_>, st: &mut LayerState) {
                body_int::layer_step_q::<$tok>(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn cols_q_tf(t: $tok, pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState]) {
                body_int::layer_step_cols_q::<$tok>(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn proj_q_tf(t: $tok, pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
                body_int::input_proj_q::<$tok>(t, pl, xs, out)
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step_q(pl: &PackedLayer, x: In<'_>, st: &mut LayerState) {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { step_q_tf(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step_cols_q(pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState]) {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { cols_q_tf(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn input_proj_q(pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { proj_q_tf(t, pl, xs, out) }
            }

            $(#[target_feature(enable = $feat)])*
            fn step_tf<W: Stored>(t: $tok, pl: &PackedLayer, x: In<'_>, st: &mut LayerState)
            where
                $tok: Micro<W>,
            {
                body::layer_step::<$tok, W>(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn cols_tf<W: Stored>(t: $tok, pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState])
            where
                $tok: Micro<W>,
            {
                body::layer_step_cols::<$tok, W>(t, pl, x, st)
            }
            $(#[target_feature(enable = $feat)])*
            fn proj_tf<W: Stored>(t: $tok, pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]])
            where
                $tok: Micro<W>,
            {
                body::input_proj::<$tok, W>(t, pl, xs, out)
            }
            fn token() -> $tok {
                $new.expect(concat!(stringify!($modname), " kernels used on a CPU without them"))
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step<W: Stored>(pl: &PackedLayer, x: In<'_>, st: &mut LayerState)
            where
                $tok: Micro<W>,
            {
                let t = token();
                // SAFETY: `t` exists, so the CPU has every feature `step_tf` is
                // compiled for (the token's constructor checked them).
                unsafe { step_tf::<W>(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn layer_step_cols<W: Stored>(pl: &PackedLayer, x: &[In<'_>], st: &mut [&mut LayerState])
            where
                $tok: Micro<W>,
            {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { cols_tf::<W>(t, pl, x, st) }
            }
            #[allow(unused_unsafe)]
            pub(crate) fn input_proj<W: Stored>(pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]])
            where
                $tok: Micro<W>,
            {
                let t = token();
                // SAFETY: as in `layer_step`: the token proves the features.
                unsafe { proj_tf::<W>(t, pl, xs, out) }
            }
        }
    };
}

entries!(scalar_entries, simd::Scalar, Some(simd::Scalar), cols [1 2 3 4], []);
entries!(wide16_entries, simd::Wide16, Some(simd::Wide16), cols [1 2 3 4 5 6 7 8], []);
#[cfg(target_arch = "x86_64")]
x86_features!(
    avx2,
    entries!(avx2_entries, x86::Avx2, x86::Avx2::new(), cols [1 2 3 4 5 6],)
);
#[cfg(target_arch = "x86_64")]
x86_features!(
    avx512,
    entries!(avx512_entries, x86::Avx512, x86::Avx512::new(), cols [1 2 3 4 5 6 7 8],)
);
#[cfg(target_arch = "aarch64")]
neon_features!(entries!(neon_entries, neon::Neon, neon::Neon::new(), cols [1 2 3 4 5 6 7 8],));

/// The table of module `$m` for one ISA, instantiated for the weight type
/// of `$prec`.
macro_rules! table {
    ($isa:expr, $lanes:expr, $m:ident, $prec:expr) => {{
        macro_rules! for_w {
            ($w:ty) => {
                Kernels {
                    isa: $isa,
                    lanes: $lanes,
                    precision: $prec,
                    layer_step: $m::layer_step::<$w>,
                    layer_step_cols: $m::layer_step_cols::<$w>,
                    input_proj: $m::input_proj::<$w>,
                }
            };
        }
        match $prec {
            WeightPrecision::F32 => for_w!(f32),
            WeightPrecision::F16 => for_w!(F16),
            WeightPrecision::Bf16 => for_w!(Bf16),
            WeightPrecision::Int8Weights => for_w!(i8),
            WeightPrecision::Int8 => Kernels {
                isa: $isa,
                lanes: $lanes,
                precision: $prec,
                layer_step: $m::layer_step_q,
                layer_step_cols: $m::layer_step_cols_q,
                input_proj: $m::input_proj_q,
            },
        }
    }};
}

impl Kernels {
    /// The portable emulation of the AVX-512 geometry (16 lanes, 8
    /// columns; see [`simd::Wide16`]), for tests on CPUs without AVX-512.
    /// It reports `Isa::Scalar`: it is portable code.
    pub(crate) fn wide16_emulation(precision: WeightPrecision) -> Kernels {
        table!(Isa::Scalar, 16, wide16_entries, precision)
    }

    /// The table for `isa`, or an error if this CPU cannot run it.
    pub(crate) fn for_isa(isa: Isa, precision: WeightPrecision) -> Result<Kernels> {
        if !isa.is_supported() {
            return Err(Error::IsaUnavailable(isa));
        }
        Ok(match isa {
            Isa::Scalar => table!(isa, 1, scalar_entries, precision),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => table!(isa, 8, avx2_entries, precision),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => table!(isa, 16, avx512_entries, precision),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => table!(isa, 4, neon_entries, precision),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::IsaUnavailable(isa)),
        })
    }
}
