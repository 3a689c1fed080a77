//! The immutable [`Model`] and the per-stream [`State`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::spec::{Direction, MergeMode, ModelSpec};
use super::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::{Error, Result};
use crate::isa::Isa;
use crate::kernels::buf::try_vec;
use crate::kernels::fpenv::FpEnv;
use crate::kernels::simd::copy_flushed;
use crate::kernels::{In, Kernels, MAX_COLS, balanced, body};
use crate::pack::{LayerState, PackedLayer};

/// Columns (time steps × batch rows) of one input-projection GEMM in
/// [`Model::run`] and [`Model::step_chunk`], at most: the pre-activation
/// block holds this many columns (fewer when a column is large, see
/// [`PRE_BLOCK_FLOATS`]).
const RUN_BLOCK_COLS: usize = 256;

/// A pre-activation block holds at most this many floats (16 MiB), or one
/// column if a column alone is larger: columns per block
/// `kb = clamp(PRE_BLOCK_FLOATS / pre_len, 1, RUN_BLOCK_COLS)`. For an
/// LSTM or GRU (pre_len = 4H) this changes nothing up to H = 4096.
const PRE_BLOCK_FLOATS: usize = 1 << 22;

/// Columns of one input-projection call in [`Model::run`] (its argument
/// arrays live on the stack, 16 KiB): a block has at most
/// `kb + bb − 1 < 2·RUN_BLOCK_COLS` columns, so it is always one call.
const PROJ_COLS: usize = 2 * RUN_BLOCK_COLS;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// A model is shared across threads; a state moves between them.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    send_sync::<State>();
};

/// A recurrent network ready to run: weights packed once for one ISA,
/// immutable, `Send + Sync`, shareable across threads (for example in an
/// `Arc`). Each stream keeps its own [`State`].
///
/// ```
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::lstm(), 3, 4);
/// let lw = LayerWeights::zeros(4, 4, 3, 4);
/// let model = Model::new(spec, &[lw]).unwrap();
/// let mut state = model.new_state();
/// let mut y = [0.0f32; 4];
/// model.step(&mut state, &[1.0, 2.0, 3.0], &mut y).unwrap();
/// assert_eq!(y, [0.0; 4]); // zero weights: o = 0.5, g = 0, so h = 0
/// ```
#[derive(Clone, Debug)]
pub struct Model {
    spec: ModelSpec,
    kernels: Kernels,
    /// Index `layer * directions + direction`.
    layers: Vec<PackedLayer>,
    id: u64,
}

/// The recurrent state of one stream: h (and c for an LSTM) of every layer,
/// plus the scratch a step needs, so that [`Model::step`] allocates nothing.
/// Created by [`Model::new_state`]; `Clone` forks a stream (for example for
/// beam search).
///
/// ```
/// use rnncell::*;
/// let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
///                        &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
/// let mut s = model.new_state();
/// s.set_h(0, &[0.5, -0.5, 0.25]).unwrap();
/// let fork = s.clone();
/// s.reset();
/// assert_eq!(s.h(0), &[0.0; 3]);
/// assert_eq!(fork.h(0), &[0.5, -0.5, 0.25]);
/// ```
#[derive(Clone, Debug)]
pub struct State {
    model_id: u64,
    hr: usize,
    hidden: usize,
    layers: Vec<LayerState>,
    /// Workspace of `Model::step_chunk`, grown on demand.
    work: Vec<f32>,
}

impl State {
    /// Zeros h and c of every layer.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let mut s = model.new_state();
    /// s.reset();
    /// ```
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.h.fill(0.0);
            l.c.fill(0.0);
        }
    }
    /// Number of layers.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert_eq!(model.new_state().layers(), 1);
    /// ```
    pub fn layers(&self) -> usize {
        self.layers.len()
    }
    /// h of layer `layer` (size P or H). Panics if `layer` is out of range.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert_eq!(model.new_state().h(0).len(), 3);
    /// ```
    pub fn h(&self, layer: usize) -> &[f32] {
        &self.layers[layer].h[..self.hr]
    }
    /// c of layer `layer` (size H), or `None` for cells without c.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert!(model.new_state().c(0).is_none());
    /// ```
    pub fn c(&self, layer: usize) -> Option<&[f32]> {
        let l = &self.layers[layer];
        (!l.c.is_empty()).then(|| &l.c[..self.hidden])
    }
    /// Sets h of layer `layer`; subnormal values are stored as zeros of the
    /// same sign (README, "Denormals").
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let mut s = model.new_state();
    /// assert!(s.set_h(0, &[1.0; 2]).is_err());
    /// ```
    pub fn set_h(&mut self, layer: usize, h: &[f32]) -> Result<()> {
        let n = self.layers.len();
        let hr = self.hr;
        let l = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| Error::invalid(format!("layer {layer} out of range ({n} layers)")))?;
        if h.len() != hr {
            return Err(Error::size(format!("h of layer {layer}"), hr, h.len()));
        }
        copy_flushed(&mut l.h[..hr], h);
        Ok(())
    }
    /// Sets c of layer `layer` (LSTM only); subnormals become signed zeros.
    ///
    /// ```
    /// # use rnncell::*;
    /// let model = Model::new(ModelSpec::new(CellKind::lstm(), 2, 3),
    ///     &[LayerWeights::zeros(4, 3, 2, 3)]).unwrap();
    /// let mut s = model.new_state();
    /// s.set_c(0, &[1.0; 3]).unwrap();
    /// ```
    pub fn set_c(&mut self, layer: usize, c: &[f32]) -> Result<()> {
        let n = self.layers.len();
        let hidden = self.hidden;
        let l = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| Error::invalid(format!("layer {layer} out of range ({n} layers)")))?;
        if l.c.is_empty() {
            return Err(Error::invalid("this cell has no c state"));
        }
        if c.len() != hidden {
            return Err(Error::size(format!("c of layer {layer}"), hidden, c.len()));
        }
        copy_flushed(&mut l.c[..hidden], c);
        Ok(())
    }
    /// A copy of this state (a forked stream) without its
    /// [`Model::step_chunk`] workspace, or [`Error::Allocation`] if it
    /// cannot be allocated; `clone()` copies the workspace too and aborts
    /// when out of memory, as `Vec` does.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let model = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    /// #     &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let mut s = model.new_state();
    /// s.set_h(0, &[0.5, -0.5, 0.25]).unwrap();
    /// assert_eq!(s.try_clone().unwrap().h(0), s.h(0));
    /// ```
    pub fn try_clone(&self) -> Result<State> {
        let mut layers = try_vec(self.layers.len(), "state")?;
        for l in &self.layers {
            layers.push(l.try_clone()?);
        }
        Ok(State {
            model_id: self.model_id,
            hr: self.hr,
            hidden: self.hidden,
            layers,
            work: Vec::new(),
        })
    }
}

/// The tensors of one ONNX LSTM/GRU/RNN node, all directions (`D` = 1 or 2).
///
/// ```
/// let t = rnncell::OnnxTensors { w: &[], r: &[], b: None, p: None };
/// assert!(t.b.is_none());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OnnxTensors<'a> {
    /// W [D, G·H, in].
    pub w: &'a [f32],
    /// R [D, G·H, H].
    pub r: &'a [f32],
    /// B [D, 2·G·H] = Wb ‖ Rb, optional.
    pub b: Option<&'a [f32]>,
    /// P [D, 3H] = p_i ‖ p_o ‖ p_f, LSTM with peepholes only.
    pub p: Option<&'a [f32]>,
}

/// The weights of one Keras LSTM/GRU/SimpleRNN layer (one direction).
///
/// ```
/// let t = rnncell::KerasTensors { kernel: &[], recurrent_kernel: &[], bias: None };
/// assert!(t.bias.is_none());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct KerasTensors<'a> {
    /// kernel [in, G·H].
    pub kernel: &'a [f32],
    /// recurrent_kernel [H, G·H].
    pub recurrent_kernel: &'a [f32],
    /// bias [G·H], or [2, G·H] for a GRU with `reset_after=True`.
    pub bias: Option<&'a [f32]>,
}

/// A batch of sequences to run through a model.
///
/// Shapes (T = `steps`, B = `batch`, L layers, D directions, Hr = P or H):
/// `input` is [T, B, I] (time-major) or [B, T, I] (`batch_major`); `h0`
/// is [L·D, B, Hr] and `c0` [L·D, B, H], as PyTorch and ONNX order them.
///
/// ```
/// let x = vec![0.0f32; 10 * 2 * 3];
/// let seq = rnncell::Sequence::new(&x, 10, 2);
/// assert!(!seq.batch_major);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'a> {
    /// The inputs.
    pub input: &'a [f32],
    /// T.
    pub steps: usize,
    /// B.
    pub batch: usize,
    /// `true` for [B, T, I] input and output.
    pub batch_major: bool,
    /// Per-sequence lengths (each ≤ T), ONNX semantics: outputs past a
    /// sequence's end are zero, its final state is the state after its last
    /// valid step, and the reverse direction starts at its own last step.
    /// A length of 0 gives zero outputs and returns the initial state.
    pub seq_lens: Option<&'a [usize]>,
    /// Initial h, or zeros.
    pub h0: Option<&'a [f32]>,
    /// Initial c (LSTM), or zeros.
    pub c0: Option<&'a [f32]>,
}

impl<'a> Sequence<'a> {
    /// Time-major input, full lengths, zero initial state.
    ///
    /// ```
    /// let x = [0.0f32; 6];
    /// assert_eq!(rnncell::Sequence::new(&x, 3, 1).steps, 3);
    /// ```
    pub fn new(input: &'a [f32], steps: usize, batch: usize) -> Sequence<'a> {
        Sequence {
            input,
            steps,
            batch,
            batch_major: false,
            seq_lens: None,
            h0: None,
            c0: None,
        }
    }
}

/// Where [`Model::run`] writes: `output` is [T, B, out] (or [B, T, out] if
/// the input is batch-major), out = [`ModelSpec::output_size`]; `h_n` is
/// [L·D, B, Hr] and `c_n` [L·D, B, H].
///
/// ```
/// let mut y = vec![0.0f32; 4];
/// let out = rnncell::SequenceOutput { output: &mut y, h_n: None, c_n: None };
/// assert_eq!(out.output.len(), 4);
/// ```
#[derive(Debug)]
pub struct SequenceOutput<'a> {
    /// The per-step outputs of the last layer.
    pub output: &'a mut [f32],
    /// Final h of every layer and direction, optional.
    pub h_n: Option<&'a mut [f32]>,
    /// Final c (LSTM), optional.
    pub c_n: Option<&'a mut [f32]>,
}

fn checked_mul(a: &[usize], what: &str) -> Result<usize> {
    a.iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or_else(|| Error::invalid(format!("{what}: size overflows")))
}

fn expect_len(s: &[f32], n: usize, what: &str) -> Result<()> {
    if s.len() != n {
        return Err(Error::size(what, n, s.len()));
    }
    Ok(())
}

impl Model {
    /// Builds a model from canonical weights (one [`LayerWeights`] per layer
    /// and direction, index `layer * directions + direction`), for the best
    /// ISA of this CPU ([`Isa::detect`]).
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::rnn_tanh(), 2, 2);
    /// let err = Model::new(spec, &[]).unwrap_err();
    /// assert!(matches!(err, Error::SizeMismatch { .. }));
    /// ```
    pub fn new(spec: ModelSpec, weights: &[LayerWeights]) -> Result<Model> {
        Model::with_isa(spec, weights, Isa::try_detect()?)
    }

    /// Like [`Model::new`], for a chosen ISA; [`Error::IsaUnavailable`] if
    /// this CPU cannot run it.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::rnn_tanh(), 2, 2);
    /// let m = Model::with_isa(spec, &[LayerWeights::zeros(1, 2, 2, 2)], Isa::Scalar).unwrap();
    /// assert_eq!(m.isa(), Isa::Scalar);
    /// ```
    pub fn with_isa(spec: ModelSpec, weights: &[LayerWeights], isa: Isa) -> Result<Model> {
        spec.validate()?;
        Model::with_kernels(spec, weights, Kernels::for_isa(isa, spec.precision)?)
    }

    /// A model on `isa` with the integer dot `dot` (tests and benches; see
    /// `bench_internals::model_with_int_dot`).
    pub(crate) fn with_int_dot(
        spec: ModelSpec,
        weights: &[LayerWeights],
        isa: Isa,
        dot: &str,
    ) -> Result<Model> {
        spec.validate()?;
        let k = Kernels::for_isa_int_dot(isa, spec.precision, dot)?;
        Model::with_kernels(spec, weights, k)
    }

    /// A model on the portable emulation of the AVX-512 kernels' geometry
    /// (tests only; see `bench_internals::model_with_wide16_emulation`).
    pub(crate) fn with_wide16_emulation(
        spec: ModelSpec,
        weights: &[LayerWeights],
    ) -> Result<Model> {
        spec.validate()?;
        Model::with_kernels(spec, weights, Kernels::wide16_emulation(spec.precision))
    }

    fn with_kernels(spec: ModelSpec, weights: &[LayerWeights], kernels: Kernels) -> Result<Model> {
        let d = spec.directions();
        let n = spec.num_layers * d;
        if weights.len() != n {
            return Err(Error::size(
                "layer weights (layers × directions)",
                n,
                weights.len(),
            ));
        }
        for (i, lw) in weights.iter().enumerate() {
            lw.check(&spec, i / d, i % d)?;
        }
        let mut layers = try_vec(n, "model layers")?;
        for (i, lw) in weights.iter().enumerate() {
            layers.push(PackedLayer::new(&spec, i / d, i % d, lw, kernels.lanes)?);
        }
        Ok(Model {
            spec,
            kernels,
            layers,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Builds a model from a PyTorch `state_dict` of `nn.LSTM`, `nn.GRU` or
    /// `nn.RNN`: `get(name)` returns the tensor named `weight_ih_l0`,
    /// `bias_hh_l1_reverse`, `weight_hr_l0`, … (flattened, row-major), or
    /// `None` if absent (missing biases are zeros).
    ///
    /// ```
    /// use rnncell::*;
    /// use std::collections::HashMap;
    /// let mut sd: HashMap<String, Vec<f32>> = HashMap::new();
    /// sd.insert("weight_ih_l0".into(), vec![0.1; 3 * 4 * 2]);
    /// sd.insert("weight_hh_l0".into(), vec![0.1; 3 * 4 * 4]);
    /// let spec = ModelSpec::new(CellKind::gru(), 2, 4);
    /// let m = Model::from_pytorch(spec, |n| sd.get(n).map(|v| v.as_slice())).unwrap();
    /// assert_eq!(m.spec().hidden_size, 4);
    /// ```
    pub fn from_pytorch<'a>(
        spec: ModelSpec,
        get: impl Fn(&str) -> Option<&'a [f32]>,
    ) -> Result<Model> {
        Model::from_pytorch_with_isa(spec, get, Isa::try_detect()?)
    }

    /// [`Model::from_pytorch`] for a chosen ISA.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru(), 2, 4);
    /// let err = Model::from_pytorch_with_isa(spec, |_| None, Isa::Scalar).unwrap_err();
    /// assert!(err.to_string().contains("weight_ih_l0"));
    /// ```
    pub fn from_pytorch_with_isa<'a>(
        spec: ModelSpec,
        get: impl Fn(&str) -> Option<&'a [f32]>,
        isa: Isa,
    ) -> Result<Model> {
        spec.validate()?;
        let mut all = Vec::new();
        for l in 0..spec.num_layers {
            for d in 0..spec.directions() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let name = |base: &str| format!("{base}_l{l}{sfx}");
                let req = |base: &str| {
                    get(&name(base))
                        .ok_or_else(|| Error::invalid(format!("missing tensor {}", name(base))))
                };
                let t = LayerTensors {
                    w: req("weight_ih")?,
                    r: req("weight_hh")?,
                    b_w: get(&name("bias_ih")),
                    b_r: get(&name("bias_hh")),
                    peephole: None,
                    proj: if spec.proj_size() > 0 {
                        Some(req("weight_hr")?)
                    } else {
                        None
                    },
                    proj_bias: None,
                };
                all.push(
                    LayerWeights::from_layout(Layout::PyTorch, &spec, l, &t)
                        .map_err(|e| rename(e, l, sfx))?,
                );
            }
        }
        Model::with_isa(spec, &all, isa)
    }

    /// Builds a model from ONNX LSTM/GRU/RNN node tensors, one
    /// [`OnnxTensors`] per layer (ONNX nodes are single-layer; a stack is a
    /// chain of nodes). Gate orders and the B = Wb ‖ Rb and P = p_i ‖ p_o ‖
    /// p_f layouts are converted.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru_reset_before(), 2, 3);
    /// let (w, r) = (vec![0.0; 18], vec![0.0; 27]);
    /// let m = Model::from_onnx(spec, &[OnnxTensors { w: &w, r: &r, b: None, p: None }]).unwrap();
    /// assert_eq!(m.spec().input_size, 2);
    /// ```
    pub fn from_onnx(spec: ModelSpec, layers: &[OnnxTensors<'_>]) -> Result<Model> {
        Model::from_onnx_with_isa(spec, layers, Isa::try_detect()?)
    }

    /// [`Model::from_onnx`] for a chosen ISA.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru(), 2, 3);
    /// assert!(Model::from_onnx_with_isa(spec, &[], Isa::Scalar).is_err());
    /// ```
    pub fn from_onnx_with_isa(
        spec: ModelSpec,
        layers: &[OnnxTensors<'_>],
        isa: Isa,
    ) -> Result<Model> {
        spec.validate()?;
        if layers.len() != spec.num_layers {
            return Err(Error::size("ONNX layers", spec.num_layers, layers.len()));
        }
        let d = spec.directions();
        let g = spec.cell.gates();
        let h = spec.hidden_size;
        let mut all = Vec::new();
        for (l, t) in layers.iter().enumerate() {
            let wn = g * h * spec.layer_input_size(l);
            let rn = g * h * spec.state_size();
            expect_len(t.w, d * wn, &format!("layer {l} W"))?;
            expect_len(t.r, d * rn, &format!("layer {l} R"))?;
            if let Some(b) = t.b {
                expect_len(b, d * 2 * g * h, &format!("layer {l} B"))?;
            }
            if let Some(p) = t.p {
                expect_len(p, d * 3 * h, &format!("layer {l} P"))?;
            }
            for dir in 0..d {
                let b = t.b.map(|b| &b[dir * 2 * g * h..(dir + 1) * 2 * g * h]);
                let lt = LayerTensors {
                    w: &t.w[dir * wn..(dir + 1) * wn],
                    r: &t.r[dir * rn..(dir + 1) * rn],
                    b_w: b.map(|b| &b[..g * h]),
                    b_r: b.map(|b| &b[g * h..]),
                    peephole: t.p.map(|p| &p[dir * 3 * h..(dir + 1) * 3 * h]),
                    proj: None,
                    proj_bias: None,
                };
                all.push(LayerWeights::from_layout(Layout::Onnx, &spec, l, &lt)?);
            }
        }
        Model::with_isa(spec, &all, isa)
    }

    /// Builds a model from Keras layer weights, one [`KerasTensors`] per
    /// layer and direction (index `layer * directions + direction`).
    /// A GRU bias of [2, 3H] (`reset_after=True`) is split into input and
    /// recurrent biases.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
    /// let (k, rk, b) = (vec![0.0; 2 * 12], vec![0.0; 3 * 12], vec![0.0; 12]);
    /// let t = KerasTensors { kernel: &k, recurrent_kernel: &rk, bias: Some(&b) };
    /// let m = Model::from_keras(spec, &[t]).unwrap();
    /// assert_eq!(m.spec().hidden_size, 3);
    /// ```
    pub fn from_keras(spec: ModelSpec, layers: &[KerasTensors<'_>]) -> Result<Model> {
        Model::from_keras_with_isa(spec, layers, Isa::try_detect()?)
    }

    /// [`Model::from_keras`] for a chosen ISA.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
    /// assert!(Model::from_keras_with_isa(spec, &[], Isa::Scalar).is_err());
    /// ```
    pub fn from_keras_with_isa(
        spec: ModelSpec,
        layers: &[KerasTensors<'_>],
        isa: Isa,
    ) -> Result<Model> {
        spec.validate()?;
        let d = spec.directions();
        if layers.len() != spec.num_layers * d {
            return Err(Error::size(
                "Keras layers (layers × directions)",
                spec.num_layers * d,
                layers.len(),
            ));
        }
        let gh = spec.cell.gates() * spec.hidden_size;
        let mut all = Vec::new();
        for (i, t) in layers.iter().enumerate() {
            let (b_w, b_r) = match t.bias {
                Some(b) if b.len() == 2 * gh => (Some(&b[..gh]), Some(&b[gh..])),
                b => (b, None),
            };
            let lt = LayerTensors {
                w: t.kernel,
                r: t.recurrent_kernel,
                b_w,
                b_r,
                ..LayerTensors::default()
            };
            all.push(LayerWeights::from_layout(Layout::Keras, &spec, i / d, &lt)?);
        }
        Model::with_isa(spec, &all, isa)
    }

    /// The spec the model was built from.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert_eq!(m.spec().input_size, 2);
    /// ```
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The ISA whose kernels this model runs.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert_eq!(m.isa(), Isa::detect());
    /// ```
    pub fn isa(&self) -> Isa {
        self.kernels.isa
    }

    /// The integer dot sequence of an [`WeightPrecision::Int8`] model
    /// (`None` for every other precision): the fastest exact sequence of
    /// the model's ISA that this CPU has, e.g. `avx2-sign` (`vpmaddubsw` /
    /// `vpmaddwd`), `avx-vnni` or `avx512-vnni` (`vpdpbusd`),
    /// `avx512bw-sign`, `neon-sdot`, `neon-smull`, `portable`. All return
    /// the same bits.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru(), 3, 4).precision(WeightPrecision::Int8);
    /// let w = LayerWeights::zeros(3, 4, 3, 4);
    /// let m = Model::with_isa(spec, &[w], Isa::Scalar)?;
    /// assert_eq!(m.int_dot(), Some("portable"));
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    ///
    /// [`WeightPrecision::Int8`]: crate::WeightPrecision::Int8
    pub fn int_dot(&self) -> Option<&'static str> {
        self.kernels.int_dot
    }

    /// The precision the weight matrices were built in (the spec's).
    pub fn precision(&self) -> crate::cell::spec::WeightPrecision {
        self.spec.precision
    }

    /// Bytes of packed weights a streaming step reads: every weight, bias,
    /// peephole and projection buffer of every layer (rows padded to whole
    /// panels, vectors to multiples of 128 floats).
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert!(m.weight_bytes() > 0);
    /// ```
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(PackedLayer::weight_bytes).sum()
    }

    /// A fresh zero state for one stream of this model (see
    /// [`Model::try_new_state`] for what it allocates).
    ///
    /// # Panics
    ///
    /// If the state cannot be allocated; [`Model::try_new_state`] returns
    /// [`Error::Allocation`] instead.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let s = m.new_state();
    /// assert_eq!(s.layers(), 1);
    /// ```
    pub fn new_state(&self) -> State {
        self.try_new_state().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh zero state for one stream of this model, or
    /// [`Error::Allocation`] if it cannot be allocated. Allocates, per
    /// layer, 2·⌈Hr⌉ + 128 floats, plus ⌈H⌉ for an LSTM's c, ⌈H⌉ more with
    /// a projection, 3·⌈H⌉ for a reset-before GRU (⌈n⌉ = n rounded up to a
    /// multiple of 128); [`Model::step_chunk`] grows a workspace in it
    /// later.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let s = m.try_new_state().unwrap();
    /// assert_eq!(s.layers(), 1);
    /// ```
    pub fn try_new_state(&self) -> Result<State> {
        let mut layers = try_vec(self.spec.num_layers, "state")?;
        for _ in 0..self.spec.num_layers {
            layers.push(LayerState::new(&self.spec)?);
        }
        Ok(State {
            model_id: self.id,
            hr: self.spec.state_size(),
            hidden: self.spec.hidden_size,
            layers,
            work: Vec::new(),
        })
    }

    /// Whether `state` was created by this model (or a clone of it).
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// assert!(m.owns(&m.new_state()));
    /// ```
    pub fn owns(&self, state: &State) -> bool {
        state.model_id == self.id
    }

    /// Advances one stream by one time step: reads `x` (size I), updates
    /// `state`, writes the last layer's new h to `y` (size Hr). Allocates
    /// nothing. Forward models only (a reverse or bidirectional layer needs
    /// the whole sequence: use [`Model::run`]). On error, `state` is
    /// unchanged.
    ///
    /// ```
    /// # use rnncell::*;
    /// # let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3), &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let mut s = m.new_state();
    /// let mut y = [0.0; 3];
    /// m.step(&mut s, &[0.5, 0.25], &mut y).unwrap();
    /// assert!(m.step(&mut s, &[0.5], &mut y).is_err());
    /// ```
    pub fn step(&self, state: &mut State, x: &[f32], y: &mut [f32]) -> Result<()> {
        let _fp = FpEnv::enter(); // round to nearest, no FTZ/DAZ (kernels/fpenv.rs)
        self.check_streaming()?;
        if !self.owns(state) {
            return Err(Error::StateMismatch);
        }
        expect_len(x, self.spec.input_size, "x")?;
        let hr = self.spec.state_size();
        expect_len(y, hr, "y")?;
        let step = self.kernels.layer_step;
        for (l, pl) in self.layers.iter().enumerate() {
            let (before, rest) = state.layers.split_at_mut(l);
            let st = &mut rest[0];
            let input: &[f32] = if l == 0 { x } else { &before[l - 1].h[..hr] };
            step(pl, In::X(input), st);
            std::mem::swap(&mut st.h, &mut st.h_next);
        }
        y.copy_from_slice(&state.layers[self.spec.num_layers - 1].h[..hr]);
        Ok(())
    }

    fn check_streaming(&self) -> Result<()> {
        if self.spec.direction != Direction::Forward {
            return Err(Error::Unsupported(
                "streaming needs a forward model; run reverse and bidirectional models over \
                 whole sequences with Model::run"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Advances N independent streams by one step each, in one call: every
    /// weight panel is loaded once for up to 24 streams instead of once per
    /// stream. `states[i]`, `xs[i]` (size I) and `ys[i]` (size Hr) belong to
    /// stream i; states need not be contiguous, and which streams take part
    /// may change from call to call. Allocates nothing. Each stream's result
    /// is bit-identical to [`Model::step`] on it alone. On error no state
    /// is changed.
    ///
    /// ```
    /// use rnncell::*;
    /// let m = Model::new(ModelSpec::new(CellKind::gru(), 2, 3),
    ///                    &[LayerWeights::zeros(3, 3, 2, 3)]).unwrap();
    /// let (mut a, mut b) = (m.new_state(), m.new_state());
    /// let (mut ya, mut yb) = ([0.0f32; 3], [0.0f32; 3]);
    /// m.step_many(&mut [&mut a, &mut b], &[&[0.5, 0.25], &[1.0, -1.0]],
    ///             &mut [&mut ya, &mut yb]).unwrap();
    /// ```
    pub fn step_many(
        &self,
        states: &mut [&mut State],
        xs: &[&[f32]],
        ys: &mut [&mut [f32]],
    ) -> Result<()> {
        let _fp = FpEnv::enter(); // round to nearest, no FTZ/DAZ (kernels/fpenv.rs)
        self.check_streaming()?;
        let n = states.len();
        if xs.len() != n {
            return Err(Error::size("xs (one input per state)", n, xs.len()));
        }
        if ys.len() != n {
            return Err(Error::size("ys (one output per state)", n, ys.len()));
        }
        let hr = self.spec.state_size();
        for i in 0..n {
            if !self.owns(states[i]) {
                return Err(Error::StateMismatch);
            }
            expect_len(xs[i], self.spec.input_size, "x")?;
            expect_len(ys[i], hr, "y")?;
            // The same state twice would be two &mut to one object; Rust
            // forbids that already, so no check is needed here.
        }
        let cols = self.kernels.layer_step_cols;
        let one = self.kernels.layer_step;
        for r in balanced(n, MAX_COLS) {
            let (g_states, g_xs, g_ys) =
                (&mut states[r.clone()], &xs[r.clone()], &mut ys[r.clone()]);
            let k = g_states.len();
            for (l, pl) in self.layers.iter().enumerate() {
                if k == 1 {
                    let st = &mut *g_states[0];
                    let (before, rest) = st.layers.split_at_mut(l);
                    let input: &[f32] = if l == 0 {
                        g_xs[0]
                    } else {
                        &before[l - 1].h[..hr]
                    };
                    one(pl, In::X(input), &mut rest[0]);
                    std::mem::swap(&mut rest[0].h, &mut rest[0].h_next);
                    continue;
                }
                let mut dummies: [LayerState; MAX_COLS] =
                    std::array::from_fn(|_| LayerState::empty());
                let mut refs: [&mut LayerState; MAX_COLS] = dummies.each_mut();
                let mut ins: [In<'_>; MAX_COLS] = [In::X(&[]); MAX_COLS];
                for (c, st) in g_states.iter_mut().enumerate() {
                    let (before, rest) = st.layers.split_at_mut(l);
                    ins[c] = In::X(if l == 0 {
                        g_xs[c]
                    } else {
                        &before[l - 1].h[..hr]
                    });
                    refs[c] = &mut rest[0];
                }
                cols(pl, &ins[..k], &mut refs[..k]);
                for st in refs[..k].iter_mut() {
                    std::mem::swap(&mut st.h, &mut st.h_next);
                }
            }
            for (st, y) in g_states.iter().zip(g_ys.iter_mut()) {
                y.copy_from_slice(&st.layers[self.spec.num_layers - 1].h[..hr]);
            }
        }
        Ok(())
    }

    /// Advances one stream by K frames in one call (chunked streaming):
    /// `xs` is [K, I], `ys` [K, Hr]. Frames are taken in blocks of kb
    /// (at most 256, fewer for very large layers: see below); the input
    /// part of a block's frames is one GEMM per layer, then the block's
    /// recurrent steps touch only the recurrent weights. Same state object
    /// as [`Model::step`], and bit-identical to K calls of it.
    ///
    /// Memory: a workspace inside the state of min(K, kb) · (pre_len +
    /// 2·Hr) floats, where pre_len is the pre-activations of one frame
    /// (4·H for an LSTM or GRU, H for an RNN, H rounded up to whole
    /// panels) and kb = clamp(2^22 / pre_len, 1, 256): at most 2^22 +
    /// 512·Hr floats (16 MiB + 2 KiB·Hr), or pre_len + 2·Hr for a huge
    /// layer. It is allocated only when it must grow (K, up to kb, exceeds
    /// every earlier K of this state), so a second call with the same or a
    /// smaller K allocates nothing. [`Error::Allocation`] if it cannot be allocated; on any
    /// error `state` and `ys` are unchanged.
    ///
    /// ```
    /// use rnncell::*;
    /// let m = Model::new(ModelSpec::new(CellKind::lstm(), 2, 3),
    ///                    &[LayerWeights::zeros(4, 3, 2, 3)]).unwrap();
    /// let mut s = m.new_state();
    /// let xs = [0.5f32; 2 * 10];
    /// let mut ys = [0.0f32; 3 * 10];
    /// m.step_chunk(&mut s, &xs, &mut ys).unwrap();
    /// ```
    pub fn step_chunk(&self, state: &mut State, xs: &[f32], ys: &mut [f32]) -> Result<()> {
        let _fp = FpEnv::enter(); // round to nearest, no FTZ/DAZ (kernels/fpenv.rs)
        self.check_streaming()?;
        if !self.owns(state) {
            return Err(Error::StateMismatch);
        }
        let (i_sz, hr) = (self.spec.input_size, self.spec.state_size());
        if xs.is_empty() || !xs.len().is_multiple_of(i_sz) {
            return Err(Error::invalid(format!(
                "xs has {} elements, not a positive multiple of the input size {i_sz}",
                xs.len()
            )));
        }
        let k = xs.len() / i_sz;
        expect_len(ys, checked_mul(&[k, hr], "ys")?, "ys")?;
        let pre_len = self.pre_len();
        let kb = k.min(self.block_cols());
        let need = checked_mul(&[kb, pre_len + 2 * hr], "step_chunk workspace")?;
        if state.work.len() < need {
            let more = need - state.work.len();
            state
                .work
                .try_reserve_exact(more)
                .map_err(|_| Error::alloc("step_chunk workspace", need, 4))?;
            state.work.resize(need, 0.0);
        }
        let (pre, rest) = state.work.split_at_mut(kb * pre_len);
        let (mut cur, mut next) = rest.split_at_mut(kb * hr);
        let step = self.kernels.layer_step;
        let proj = self.kernels.input_proj;
        // Blocks of kb frames through every layer: frame t of layer l
        // still follows frame t of layer l − 1 and frame t − 1 of layer l,
        // as in K calls of `step`.
        for f0 in (0..k).step_by(kb) {
            let n = kb.min(k - f0);
            for (l, pl) in self.layers.iter().enumerate() {
                let in_sz = if l == 0 { i_sz } else { hr };
                let src: &[f32] = if l == 0 {
                    &xs[f0 * i_sz..(f0 + n) * i_sz]
                } else {
                    &cur[..n * hr]
                };
                for r in balanced(n, MAX_COLS) {
                    let (c0, c1) = (r.start, r.end);
                    let mut ins: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
                    let mut outs: [&mut [f32]; MAX_COLS] = Default::default();
                    for (j, (i, o)) in ins
                        .iter_mut()
                        .zip(outs.iter_mut())
                        .enumerate()
                        .take(c1 - c0)
                    {
                        *i = &src[(c0 + j) * in_sz..][..in_sz];
                        *o = &mut [];
                    }
                    for (o, chunk) in outs
                        .iter_mut()
                        .zip(pre[c0 * pre_len..c1 * pre_len].chunks_mut(pre_len))
                    {
                        *o = chunk;
                    }
                    proj(pl, &ins[..c1 - c0], &mut outs[..c1 - c0]);
                }
                let st = &mut state.layers[l];
                for t in 0..n {
                    step(pl, In::Pre(&pre[t * pre_len..(t + 1) * pre_len]), st);
                    std::mem::swap(&mut st.h, &mut st.h_next);
                    next[t * hr..(t + 1) * hr].copy_from_slice(&st.h[..hr]);
                }
                std::mem::swap(&mut cur, &mut next);
            }
            ys[f0 * hr..(f0 + n) * hr].copy_from_slice(&cur[..n * hr]);
        }
        Ok(())
    }

    /// The input-projection GEMM of layer 0 (bias + W·x for every column,
    /// in the kernels' tile layout, `pre_len()` floats per column). For
    /// benchmarks.
    pub(crate) fn input_projection(&self, xs: &[&[f32]], out: &mut [&mut [f32]]) {
        (self.kernels.input_proj)(&self.layers[0], xs, out)
    }

    /// Floats of one column's pre-activations, the largest over layers.
    pub(crate) fn pre_len(&self) -> usize {
        self.layers
            .iter()
            .map(|pl| body::pre_len(pl, self.kernels.lanes))
            .max()
            .unwrap_or(0)
    }

    /// Columns per pre-activation block: as many as fit in
    /// [`PRE_BLOCK_FLOATS`], at least 1, at most [`RUN_BLOCK_COLS`].
    fn block_cols(&self) -> usize {
        (PRE_BLOCK_FLOATS / self.pre_len().max(1)).clamp(1, RUN_BLOCK_COLS)
    }

    /// Runs a batch of whole sequences through every layer and direction
    /// (see [`Sequence`] and [`SequenceOutput`] for shapes and semantics).
    /// Batch rows are taken in blocks of bb through every layer; for each
    /// layer and direction, time is taken in blocks of about kb columns
    /// (steps × batch rows; all T steps when B = 1 and T ≤ kb): the input
    /// projection of a block is one GEMM, then the recurrence advances the
    /// block's batch rows together (a small GEMM over the rows still inside
    /// their length). Each stream's result is bit-identical to stepping it
    /// alone.
    ///
    /// Memory (floats): with pre_len the pre-activations of one column
    /// (4·H for an LSTM or GRU, H for an RNN, H rounded up to whole
    /// panels), kb = clamp(2^22 / pre_len, 1, 256) columns per block and
    /// bb = min(B, kb) batch rows per block, the call allocates, before
    /// writing any output:
    /// - pre-activations: tb·bb·pre_len, tb = min(T, ⌈kb / bb⌉), so at most
    ///   (kb + bb − 1)·pre_len < 2^23 (32 MiB), or one column if a column
    ///   alone exceeds 16 MiB;
    /// - bb per-row states ([`Model::try_new_state`] of one layer each);
    /// - with L ≥ 2 layers, min(L − 1, 2)·bb·T·out for the outputs of the
    ///   intermediate layers (at most twice `output`).
    ///
    /// Nothing per time step. [`Error::Allocation`] if any of it cannot be
    /// allocated; nothing has been written then.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru(), 2, 3).direction(Direction::Bidirectional);
    /// let w = vec![LayerWeights::zeros(3, 3, 2, 3), LayerWeights::zeros(3, 3, 2, 3)];
    /// let m = Model::new(spec, &w).unwrap();
    /// let x = vec![0.5f32; 4 * 1 * 2];
    /// let mut y = vec![0.0f32; 4 * 1 * 6];
    /// let mut hn = vec![0.0f32; 2 * 1 * 3];
    /// m.run(&Sequence::new(&x, 4, 1),
    ///       &mut SequenceOutput { output: &mut y, h_n: Some(&mut hn), c_n: None }).unwrap();
    /// ```
    pub fn run(&self, seq: &Sequence<'_>, out: &mut SequenceOutput<'_>) -> Result<()> {
        let _fp = FpEnv::enter(); // round to nearest, no FTZ/DAZ (kernels/fpenv.rs)
        let sp = &self.spec;
        let (t_len, b_len) = (seq.steps, seq.batch);
        if t_len == 0 || b_len == 0 {
            return Err(Error::invalid(format!(
                "empty sequence: steps {t_len}, batch {b_len}"
            )));
        }
        let d = sp.directions();
        let (h, hr, out_sz) = (sp.hidden_size, sp.state_size(), sp.output_size());
        let ld = sp.num_layers * d;
        expect_len(
            seq.input,
            checked_mul(&[t_len, b_len, sp.input_size], "input")?,
            "input",
        )?;
        expect_len(
            out.output,
            checked_mul(&[t_len, b_len, out_sz], "output")?,
            "output",
        )?;
        if let Some(h0) = seq.h0 {
            expect_len(h0, ld * b_len * hr, "h0")?;
        }
        let lstm = sp.has_cell_state();
        if let Some(c0) = seq.c0 {
            if !lstm {
                return Err(Error::invalid("c0 given but the cell has no c state"));
            }
            expect_len(c0, ld * b_len * h, "c0")?;
        }
        if let Some(hn) = out.h_n.as_deref() {
            expect_len(hn, ld * b_len * hr, "h_n")?;
        }
        if let Some(cn) = out.c_n.as_deref() {
            if !lstm {
                return Err(Error::invalid("c_n given but the cell has no c state"));
            }
            expect_len(cn, ld * b_len * h, "c_n")?;
        }
        if let Some(lens) = seq.seq_lens {
            if lens.len() != b_len {
                return Err(Error::size("seq_lens", b_len, lens.len()));
            }
            if let Some(&bad) = lens.iter().find(|&&v| v > t_len) {
                return Err(Error::invalid(format!(
                    "seq_lens entry {bad} exceeds steps {t_len}"
                )));
            }
        }
        let len_of = |b: usize| seq.seq_lens.map_or(t_len, |l| l[b]);
        let padded = (0..b_len).any(|b| len_of(b) < t_len);
        // Rows of the caller's input and output buffers.
        let row = |b: usize, t: usize| {
            if seq.batch_major {
                b * t_len + t
            } else {
                t * b_len + b
            }
        };
        let i_sz = sp.input_size;
        // Batch rows are taken in blocks of `bb` through every layer and
        // direction, so that the per-row scratch (states, pre-activations,
        // the outputs of intermediate layers) is bounded by the block, not
        // by B. Within a batch block the recurrence runs in blocks of `tb`
        // iterations; each block's input projection is one GEMM of up to
        // `tb · bb` columns. Blocks bound the pre-activation buffer (and
        // keep it in cache) however long the sequence; at ≥ RUN_BLOCK_COLS
        // columns each GEMM still reads each weight panel once for many
        // columns.
        let kb = self.block_cols();
        let bb = b_len.min(kb);
        let tb = kb.div_ceil(bb).min(t_len);
        let pre_len = self.pre_len();
        // Every allocation is made here, before any output is written.
        let pre_n = checked_mul(&[tb, bb, pre_len], "run pre-activations")?;
        let mut pre: Vec<f32> = try_vec(pre_n, "run scratch: pre-activations")?;
        pre.resize(pre_n, 0.0);
        let mut sts: Vec<LayerState> = try_vec(bb, "run scratch: states")?;
        for _ in 0..bb {
            sts.push(LayerState::new(sp)?);
        }
        // Outputs of the previous and the current layer (internal layout
        // [bb][T][out_sz]); the last layer writes straight into `out.output`.
        // One buffer for two layers, two for three or more.
        let inter = checked_mul(&[bb, t_len, out_sz], "run layer outputs")?;
        let what = "run scratch: outputs of an intermediate layer";
        let mut cur: Vec<f32> = try_vec(if sp.num_layers > 2 { inter } else { 0 }, what)?;
        let mut next: Vec<f32> = try_vec(if sp.num_layers > 1 { inter } else { 0 }, what)?;
        let (step, cols, proj) = (
            self.kernels.layer_step,
            self.kernels.layer_step_cols,
            self.kernels.input_proj,
        );
        // Placeholders for the unused slots of a column group (own no memory).
        let mut dummies: [LayerState; MAX_COLS] = std::array::from_fn(|_| LayerState::empty());
        for b0 in (0..b_len).step_by(bb) {
            let b1 = (b0 + bb).min(b_len);
            let bn = b1 - b0;
            let sts = &mut sts[..bn];
            for l in 0..sp.num_layers {
                let last = l + 1 == sp.num_layers;
                let in_sz = sp.layer_input_size(l);
                // Outputs past a sequence's end are zero; every other one is
                // written below (by the first direction before a Sum merge
                // adds the second), so without padding there is nothing to
                // clear.
                if last {
                    if padded {
                        for b in b0..b1 {
                            for t in len_of(b)..t_len {
                                out.output[row(b, t) * out_sz..][..out_sz].fill(0.0);
                            }
                        }
                    }
                } else {
                    next.clear();
                    next.resize(bn * t_len * out_sz, 0.0);
                }
                for dir in 0..d {
                    let pl = &self.layers[l * d + dir];
                    let reverse = sp.direction == Direction::Reverse || dir == 1;
                    let col = if sp.merge == MergeMode::Concat {
                        dir * hr
                    } else {
                        0
                    };
                    let sidx = l * d + dir;
                    // Initial states.
                    for (b, st) in (b0..b1).zip(sts.iter_mut()) {
                        st.h.fill(0.0);
                        st.c.fill(0.0);
                        if let Some(h0) = seq.h0 {
                            copy_flushed(&mut st.h[..hr], &h0[(sidx * b_len + b) * hr..][..hr]);
                        }
                        if let Some(c0) = seq.c0 {
                            copy_flushed(&mut st.c[..h], &c0[(sidx * b_len + b) * h..][..h]);
                        }
                    }
                    let time_of = |b: usize, i: usize| if reverse { len_of(b) - 1 - i } else { i };
                    let mut i0 = 0;
                    while i0 < t_len && (b0..b1).any(|b| len_of(b) > i0) {
                        let i1 = (i0 + tb).min(t_len);
                        // 1. Input projection of every valid (b, i) of the
                        //    block, column (i − i0)·bn + (b − b0): one GEMM
                        //    (tb·bb ≤ kb + bb − 1 < PROJ_COLS columns).
                        {
                            let mut xs: [&[f32]; PROJ_COLS] = [&[]; PROJ_COLS];
                            let mut outs: [&mut [f32]; PROJ_COLS] =
                                std::array::from_fn(|_| <&mut [f32]>::default());
                            let mut n = 0;
                            for (slot, o) in
                                pre.chunks_mut(pre_len).take((i1 - i0) * bn).enumerate()
                            {
                                let (i, b) = (i0 + slot / bn, b0 + slot % bn);
                                if i < len_of(b) {
                                    let t = time_of(b, i);
                                    xs[n] = if l == 0 {
                                        &seq.input[row(b, t) * i_sz..][..i_sz]
                                    } else {
                                        &cur[((b - b0) * t_len + t) * in_sz..][..in_sz]
                                    };
                                    outs[n] = o;
                                    n += 1;
                                    if n == PROJ_COLS {
                                        proj(pl, &xs[..n], &mut outs[..n]);
                                        n = 0;
                                    }
                                }
                            }
                            if n > 0 {
                                proj(pl, &xs[..n], &mut outs[..n]);
                            }
                        }
                        // 2. The recurrence, all rows still inside their
                        //    length at once, in balanced groups of columns.
                        for i in i0..i1 {
                            let n_active = (b0..b1).filter(|&b| i < len_of(b)).count();
                            if n_active == 0 {
                                break;
                            }
                            let mut rows =
                                (b0..b1).zip(sts.iter_mut()).filter(|(b, _)| i < len_of(*b));
                            for r in balanced(n_active, MAX_COLS) {
                                let g = r.len();
                                let mut refs: [&mut LayerState; MAX_COLS] = dummies.each_mut();
                                let mut ins: [In<'_>; MAX_COLS] = [In::X(&[]); MAX_COLS];
                                let mut bs = [0usize; MAX_COLS];
                                for (c, (b, st)) in rows.by_ref().take(g).enumerate() {
                                    ins[c] = In::Pre(
                                        &pre[((i - i0) * bn + (b - b0)) * pre_len..][..pre_len],
                                    );
                                    refs[c] = st;
                                    bs[c] = b;
                                }
                                if g == 1 {
                                    step(pl, ins[0], refs[0]);
                                } else {
                                    cols(pl, &ins[..g], &mut refs[..g]);
                                }
                                for (&b, st) in bs[..g].iter().zip(refs[..g].iter_mut()) {
                                    std::mem::swap(&mut st.h, &mut st.h_next);
                                    let t = time_of(b, i);
                                    let dst = if last {
                                        &mut out.output[row(b, t) * out_sz + col..][..hr]
                                    } else {
                                        &mut next[((b - b0) * t_len + t) * out_sz + col..][..hr]
                                    };
                                    if dir == 1 && sp.merge == MergeMode::Sum {
                                        for (o, v) in dst.iter_mut().zip(&st.h[..hr]) {
                                            *o += v;
                                        }
                                    } else {
                                        dst.copy_from_slice(&st.h[..hr]);
                                    }
                                }
                            }
                        }
                        i0 = i1;
                    }
                    // Final states.
                    for (b, st) in (b0..b1).zip(sts.iter()) {
                        if let Some(hn) = out.h_n.as_deref_mut() {
                            hn[(sidx * b_len + b) * hr..][..hr].copy_from_slice(&st.h[..hr]);
                        }
                        if let Some(cn) = out.c_n.as_deref_mut() {
                            cn[(sidx * b_len + b) * h..][..h].copy_from_slice(&st.c[..h]);
                        }
                    }
                }
                std::mem::swap(&mut cur, &mut next);
            }
        }
        Ok(())
    }
}

/// Renames a size error of PyTorch layer `l` to the `state_dict` name of
/// the tensor ("layer 1 weight_hh" -> "weight_hh_l1_reverse").
fn rename(e: Error, l: usize, sfx: &str) -> Error {
    match e {
        Error::SizeMismatch {
            what,
            expected,
            actual,
        } => Error::SizeMismatch {
            what: format!(
                "{}_l{l}{sfx}",
                what.trim_start_matches(&format!("layer {l} "))
            ),
            expected,
            actual,
        },
        e => e,
    }
}
