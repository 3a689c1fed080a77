//! The immutable [`Model`] and the per-stream [`State`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::spec::{Direction, ModelSpec};
use super::weights::LayerWeights;
use crate::error::{Error, Result};
use crate::isa::Isa;
use crate::kernels::buf::try_vec;
use crate::kernels::fpenv::FpEnv;
use crate::kernels::simd::copy_flushed;
use crate::kernels::{In, Kernels, MAX_COLS, balanced};
use crate::pack::{LayerState, PackedLayer};

mod sequence;
pub use sequence::{SeqLens, Sequence, SequenceLayout, SequenceOutput};
// The framework constructors (`Model::from_pytorch`, `from_onnx`,
// `from_keras`) and their tensor types live in `cell/frameworks/`.
pub use super::frameworks::{KerasTensors, OnnxTensors};

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
    /// `avx512-amx` (`avx512-vnni` with the multi-column GEMM on AMX tiles),
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
}
