//! # rnncell
//!
//! Hand-vectorised CPU inference for LSTM, GRU and vanilla RNN networks
//! trained in PyTorch, ONNX or Keras, with exactly their semantics, one
//! time step at a time (streaming) or over whole batches of sequences.
//!
//! * An immutable [`Model`] (weights packed once for the ISA chosen at run
//!   time) shared by any number of threads; a per-stream [`State`] owned by
//!   the caller; [`Model::step`] allocates nothing.
//! * Every ISA (portable scalar, AVX2+FMA, AVX-512F, NEON) returns
//!   **bit-identical** results: each output row is summed in one fixed
//!   order (bias, then x, then h, with FMA), and sigmoid/tanh are one
//!   rational approximation with an exact division (≤ 5e-7 absolute error
//!   against f64).
//!
//! ```
//! use rnncell::*;
//! // A 2-layer LSTM, 3 inputs, 8 hidden units, weights in PyTorch layout.
//! let spec = ModelSpec::new(CellKind::lstm(), 3, 8).layers(2);
//! let weights: Vec<LayerWeights> = (0..2)
//!     .map(|l| {
//!         let input = spec.layer_input_size(l);
//!         let mut lw = LayerWeights::zeros(4, 8, input, 8);
//!         lw.w.iter_mut().enumerate().for_each(|(i, v)| *v = ((i % 7) as f32 - 3.0) * 0.1);
//!         lw
//!     })
//!     .collect();
//! let model = Model::new(spec, &weights)?;
//! let mut state = model.new_state();
//! let mut y = [0.0f32; 8];
//! for t in 0..10 {
//!     let x = [t as f32 * 0.1, 0.5, -0.5];
//!     model.step(&mut state, &x, &mut y)?;
//! }
//! println!("h after 10 steps on {}: {y:?}", model.isa());
//! # Ok::<(), rnncell::Error>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cell;
mod error;
#[cfg(feature = "capi")]
pub mod ffi;
mod isa;
mod kernels;
mod loader;
mod pack;
pub mod reference;
#[cfg(test)]
mod test_rng;

pub use cell::activation::{Activation, Activations};
pub use cell::model::{
    KerasTensors, Model, OnnxTensors, SeqLens, Sequence, SequenceLayout, SequenceOutput, State,
};
pub use cell::spec::{
    CellKind, Coupling, Direction, Framework, GruOptions, LstmOptions, MAX_INT8_K, MergeMode,
    ModelSpec, RnnActivation, RnnOptions, WeightPrecision,
};
pub use cell::weights::{LayerTensors, LayerWeights, Layout};
pub use error::{Error, Result};
pub use isa::Isa;
pub use kernels::simd::{sigmoid_f32, tanh_f32};

/// Internal kernels exposed for the benchmarks only; not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    use crate::Model;

    /// Floats per column written by [`input_projection`].
    pub fn pre_len(model: &Model) -> usize {
        model.pre_len()
    }

    /// bias + W·x of layer 0 for every column (the input-projection GEMM).
    pub fn input_projection(model: &Model, xs: &[&[f32]], out: &mut [&mut [f32]]) {
        model.input_projection(xs, out)
    }

    /// The integer dot sequences of `i8` models on `isa` that this CPU can
    /// run, the one [`Model::with_isa`] takes first (see
    /// [`Model::int_dot`]).
    pub fn int_dots(isa: crate::Isa) -> Vec<&'static str> {
        crate::kernels::int_dots(isa)
    }

    /// A model on `isa` whose `i8` kernels use the integer dot `dot` (one of
    /// [`int_dots`]), to test and time each sequence.
    pub fn model_with_int_dot(
        spec: crate::ModelSpec,
        weights: &[crate::LayerWeights],
        isa: crate::Isa,
        dot: &str,
    ) -> crate::Result<Model> {
        Model::with_int_dot(spec, weights, isa, dot)
    }

    /// A model whose kernels are the generic bodies on a portable 16-lane
    /// vector with the AVX-512 geometry (16 lanes, 8 columns per block),
    /// for testing that geometry on CPUs without AVX-512. Slow; reports
    /// `Isa::Scalar`; bit-identical to every ISA by construction and by test.
    pub fn model_with_wide16_emulation(
        spec: crate::ModelSpec,
        weights: &[crate::LayerWeights],
    ) -> crate::Result<Model> {
        Model::with_wide16_emulation(spec, weights)
    }
}
pub use loader::{
    MAX_ONNX_BYTES, OnnxNodeInfo, OnnxOptions, SafetensorsOptions, WeightFormat, load_onnx,
    load_onnx_bytes, load_safetensors, load_safetensors_bytes, onnx_nodes,
};
