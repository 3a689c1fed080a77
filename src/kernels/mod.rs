//! Per-ISA kernels behind one table of function pointers.
//!
//! `simd.rs` defines the vector vocabulary and the activations, `body.rs`
//! the kernels written once over it; `x86.rs` and `neon.rs` implement the
//! vocabulary with intrinsics and provide `#[target_feature]` entry points.
//! A [`Kernels`] table is chosen once, when a model is built.

pub(crate) mod body;
pub(crate) mod simd;

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use crate::error::{Error, Result};
use crate::isa::Isa;
use crate::pack::{LayerState, PackedLayer};

type LayerStepFn = fn(&PackedLayer, &[f32], &mut LayerState);

/// The kernels of one ISA.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub isa: Isa,
    /// f32 lanes of one vector; panels are packed for this width.
    pub lanes: usize,
    /// One step of one layer for one stream.
    pub layer_step: LayerStepFn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({})", self.isa)
    }
}

fn scalar_layer_step(pl: &PackedLayer, x: &[f32], st: &mut LayerState) {
    body::layer_step(simd::Scalar, pl, x, st)
}

impl Kernels {
    /// The table for `isa`, or an error if this CPU cannot run it.
    pub(crate) fn for_isa(isa: Isa) -> Result<Kernels> {
        if !isa.is_supported() {
            return Err(Error::IsaUnavailable(isa));
        }
        Ok(match isa {
            Isa::Scalar => Kernels {
                isa,
                lanes: 1,
                layer_step: scalar_layer_step,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Kernels {
                isa,
                lanes: 8,
                layer_step: x86::avx2_layer_step,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernels {
                isa,
                lanes: 16,
                layer_step: x86::avx512_layer_step,
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Kernels {
                isa,
                lanes: 4,
                layer_step: neon::neon_layer_step,
            },
            #[allow(unreachable_patterns)]
            _ => return Err(Error::IsaUnavailable(isa)),
        })
    }
}
