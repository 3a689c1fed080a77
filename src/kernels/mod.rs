//! Per-ISA kernels behind one table of function pointers.
//!
//! `simd.rs` defines the vector vocabulary and the activations, `body.rs`
//! the kernels written once over it; `x86.rs` and `neon.rs` implement the
//! vocabulary with intrinsics and provide `#[target_feature]` entry points.
//! A [`Kernels`] table is chosen once, when a model is built.

#[macro_use]
pub(crate) mod act;
#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
pub(crate) mod body;
pub(crate) mod body_int;
pub(crate) mod buf;
pub(crate) mod elem;
pub(crate) mod fpenv;
pub(crate) mod panel;
#[macro_use]
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
    /// `i8` only: the integer dot sequence (see [`int_dots`]).
    pub int_dot: Option<&'static str>,
    pub layer_step: LayerStepFn,
    pub layer_step_cols: LayerStepColsFn,
    pub input_proj: InputProjFn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({}, {})", self.isa, self.precision)
    }
}

/// The `i8` entry points of one ISA (inside its module: uses the
/// module's `token()`): the three entries over `body_int.rs` and the
/// outlined integer micro-kernel ([`body_int::MicroQ`]).
macro_rules! int_entries {
    ($tok:ty, cols [$($nc:literal)+], [$($feat:literal),*]) => {
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
        if body_int::IntDot::tile_chunk(t, c, ws, ts) {
            return;
        }
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
        body_int::IntDot::with_tiles(t, || body_int::layer_step_cols_q::<$tok>(t, pl, x, st))
    }
    $(#[target_feature(enable = $feat)])*
    fn proj_q_tf(t: $tok, pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
        body_int::IntDot::with_tiles(t, || body_int::input_proj_q::<$tok>(t, pl, xs, out))
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

    };
}

/// A module with only the `i8` entries of a token (the integer-dot
/// variants of an ISA: AVX-VNNI, AVX-512 VNNI, NEON dotprod), whose f32
/// kernels are those of the base ISA.
#[allow(unused_macros)]
macro_rules! int_only_entries {
    ($modname:ident, $tok:ty, $new:expr, cols [$($nc:literal)+], [$($feat:literal),*]) => {
        pub(crate) mod $modname {
            #[allow(unused_imports)]
            use super::*;
            use crate::kernels::body::{self, In};
            use crate::kernels::body_int::{self, ChunkQ, MicroQ};
            use crate::kernels::panel::{LayerState, Nv, PackedLayer};
            use crate::kernels::simd::Simd;

            fn token() -> $tok {
                $new.expect(concat!(stringify!($modname), " kernels used on a CPU without them"))
            }
            int_entries!($tok, cols [$($nc)+], [$($feat),*]);
        }
    };
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

            int_entries!($tok, cols [$($nc)+], [$($feat),*]);

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
#[cfg(target_arch = "x86_64")]
x86_features!(
    avxvnni,
    int_only_entries!(avxvnni_entries, x86::AvxVnni, x86::AvxVnni::new(), cols [1 2 3 4 5 6],)
);
#[cfg(target_arch = "x86_64")]
x86_features!(
    avx512vnni,
    int_only_entries!(avx512vnni_entries, x86::Avx512Vnni, x86::Avx512Vnni::new(), cols [1 2 3 4 5 6 7 8],)
);
#[cfg(target_arch = "x86_64")]
x86_features!(
    avx512vnni,
    int_only_entries!(avx512amx_entries, x86::Avx512Amx, x86::Avx512Amx::new(), cols [1 2 3 4 5 6 7 8],)
);
#[cfg(target_arch = "aarch64")]
neon_features!(
    dotprod,
    int_only_entries!(neondot_entries, neon::NeonDot, neon::NeonDot::new(), cols [1 2 3 4 5 6 7 8],)
);
#[cfg(target_arch = "aarch64")]
neon_features!(entries!(neon_entries, neon::Neon, neon::Neon::new(), cols [1 2 3 4 5 6 7 8],));

/// The table of module `$m` for one ISA, instantiated for the weight type
/// of `$prec`.
macro_rules! table {
    ($isa:expr, $lanes:expr, $m:ident, $prec:expr) => {
        table!($isa, $lanes, $m, $prec, $m, "portable")
    };
    ($isa:expr, $lanes:expr, $m:ident, $prec:expr, $qm:ident, $qname:expr) => {{
        macro_rules! for_w {
            ($w:ty) => {
                Kernels {
                    isa: $isa,
                    lanes: $lanes,
                    precision: $prec,
                    int_dot: None,
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
                int_dot: Some($qname),
                layer_step: $qm::layer_step_q,
                layer_step_cols: $qm::layer_step_cols_q,
                input_proj: $qm::input_proj_q,
            },
        }
    }};
}

/// The integer dot sequences of the `i8` kernels for `isa` that this CPU
/// can run, the fastest first (the one a model takes):
/// `portable` (scalar, exact i32), `avx2-sign` (`vpmaddubsw` on |x| and
/// sign(w, x), then `vpmaddwd`), `avx-vnni` and `avx512-vnni`
/// (`vpdpbusd` on q + 128, less 128 · Σ w), `avx512-amx` (`avx512-vnni`
/// with the multi-column GEMM on AMX-INT8 tiles, `kernels/amx.rs`),
/// `avx512bw-sign` (the sign
/// trick on zmm), `neon-sdot` (FEAT_DotProd), `neon-smull` (`smull` +
/// `saddlp` + `addp`). Every one
/// is exact, so they all return the same bits.
pub(crate) fn int_dots(isa: Isa) -> Vec<&'static str> {
    let mut v = Vec::new();
    match isa {
        Isa::Scalar => v.push("portable"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            if x86::AvxVnni::new().is_some() {
                v.push("avx-vnni");
            }
            if x86::Avx2::new().is_some() {
                v.push("avx2-sign");
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            if x86::Avx512Amx::new().is_some() {
                v.push("avx512-amx");
            }
            if x86::Avx512Vnni::new().is_some() {
                v.push("avx512-vnni");
            }
            if x86::Avx512::new().is_some() {
                v.push("avx512bw-sign");
            }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            if neon::NeonDot::new().is_some() {
                v.push("neon-sdot");
            }
            if neon::Neon::new().is_some() {
                v.push("neon-smull");
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    v
}

impl Kernels {
    /// The portable emulation of the AVX-512 geometry (16 lanes, 8
    /// columns; see [`simd::Wide16`]), for tests on CPUs without AVX-512.
    /// It reports `Isa::Scalar`: it is portable code.
    pub(crate) fn wide16_emulation(precision: WeightPrecision) -> Kernels {
        table!(
            Isa::Scalar,
            16,
            wide16_entries,
            precision,
            wide16_entries,
            "wide16-vpdpbusd-emulation"
        )
    }

    /// The table for `isa`, or an error if this CPU cannot run it; for
    /// `i8`, with the first of [`int_dots`].
    pub(crate) fn for_isa(isa: Isa, precision: WeightPrecision) -> Result<Kernels> {
        let dot = int_dots(isa).first().copied().unwrap_or("portable");
        Kernels::for_isa_int_dot(isa, precision, dot)
    }

    /// The table for `isa` with the integer dot `dot` (one of
    /// [`int_dots`]; ignored unless the precision is `i8`).
    pub(crate) fn for_isa_int_dot(
        isa: Isa,
        precision: WeightPrecision,
        dot: &str,
    ) -> Result<Kernels> {
        if !isa.is_supported() {
            return Err(Error::IsaUnavailable(isa));
        }
        if precision == WeightPrecision::Int8 && !int_dots(isa).contains(&dot) {
            return Err(Error::invalid(format!(
                "integer dot {dot:?} is not available for {isa} on this CPU (available: {:?})",
                int_dots(isa)
            )));
        }
        Ok(match (isa, dot) {
            (Isa::Scalar, _) => table!(isa, 1, scalar_entries, precision),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, "avx-vnni") => {
                table!(isa, 8, avx2_entries, precision, avxvnni_entries, "avx-vnni")
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _) => table!(isa, 8, avx2_entries, precision, avx2_entries, "avx2-sign"),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, "avx512-amx") => {
                table!(
                    isa,
                    16,
                    avx512_entries,
                    precision,
                    avx512amx_entries,
                    "avx512-amx"
                )
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, "avx512-vnni") => {
                table!(
                    isa,
                    16,
                    avx512_entries,
                    precision,
                    avx512vnni_entries,
                    "avx512-vnni"
                )
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _) => {
                table!(
                    isa,
                    16,
                    avx512_entries,
                    precision,
                    avx512_entries,
                    "avx512bw-sign"
                )
            }
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, "neon-sdot") => {
                table!(
                    isa,
                    4,
                    neon_entries,
                    precision,
                    neondot_entries,
                    "neon-sdot"
                )
            }
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _) => table!(isa, 4, neon_entries, precision, neon_entries, "neon-smull"),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::IsaUnavailable(isa)),
        })
    }
}
