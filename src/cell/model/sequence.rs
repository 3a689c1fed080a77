//! Sequences and chunks: [`Model::run`] (batches of whole sequences, every
//! direction and layer) and [`Model::step_chunk`] (K frames of one
//! stream), both built on one input-projection GEMM per block of columns
//! followed by the recurrence.

use super::{Model, State, checked_mul, expect_len};
use crate::cell::spec::{Direction, MergeMode};
use crate::error::{Error, Result};
use crate::kernels::buf::try_vec;
use crate::kernels::fpenv::FpEnv;
use crate::kernels::simd::copy_flushed;
use crate::kernels::{In, MAX_COLS, balanced, body};
use crate::pack::LayerState;

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

/// How [`Model::run`] lays out the tensors of a [`Sequence`] and its
/// [`SequenceOutput`] (T steps, B batch rows, L layers, D directions, Hr
/// = P or H, out = [`ModelSpec::output_size`](crate::ModelSpec::output_size)).
///
/// | | input | h0, c0, h_n, c_n | output |
/// |---|---|---|---|
/// | `Native`, time-major | [T, B, I] | [L·D, B, ·] | [T, B, out] |
/// | `Native`, `batch_major` | [B, T, I] | [L·D, B, ·] | [B, T, out] |
/// | `Onnx0` (ONNX `layout = 0`) | X [T, B, I] | [L·D, B, ·] | Y [T, D, B, Hr] |
/// | `Onnx1` (ONNX `layout = 1`) | X [B, T, I] | [B, L·D, ·] | Y [B, T, D, Hr] |
///
/// `Native` is also PyTorch's layout: `batch_first=True` is `batch_major`,
/// and PyTorch's states are [L·D, B, ·] either way. The ONNX layouts are
/// ONNX's `X`, `initial_h`, `initial_c`, `Y`, `Y_h`, `Y_c` unchanged (a
/// stack of L nodes takes its states as L·D rows, layer-major); with
/// [`MergeMode::Sum`] the output is [T, B, Hr] or [B, T, Hr]. The
/// order of the rows is decided by the layout, so `batch_major` must stay
/// `false` with an ONNX layout.
///
/// ```
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::gru_for(Framework::Onnx), 2, 3)
///     .direction(Direction::Bidirectional);
/// let m = Model::new(spec, &[LayerWeights::zeros(3, 3, 2, 3), LayerWeights::zeros(3, 3, 2, 3)])?;
/// let x = [0.5f32; 4 * 1 * 2]; // X [T = 4, B = 1, I = 2]
/// let mut y = [0.0f32; 4 * 2 * 1 * 3]; // Y [T, D, B, H]
/// let seq = Sequence { layout: SequenceLayout::Onnx0, ..Sequence::new(&x, 4, 1) };
/// m.run(&seq, &mut SequenceOutput { output: &mut y, h_n: None, c_n: None })?;
/// # Ok::<(), rnncell::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SequenceLayout {
    /// rnncell's own layout (and PyTorch's).
    #[default]
    Native,
    /// ONNX `layout = 0`.
    Onnx0,
    /// ONNX `layout = 1`.
    Onnx1,
}

/// Per-sequence lengths in the integer type the caller has: ONNX
/// `sequence_lens` is int32, PyTorch's lengths int64. Negative entries and
/// entries above T are an [`Error::InvalidArgument`] naming the entry.
///
/// ```
/// let lens = [3i32, 1];
/// let l = rnncell::SeqLens::I32(&lens);
/// assert_eq!(l.len(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqLens<'a> {
    /// `usize` lengths (as [`Sequence::seq_lens`]).
    Usize(&'a [usize]),
    /// int32 lengths (ONNX `sequence_lens`).
    I32(&'a [i32]),
    /// int64 lengths (PyTorch).
    I64(&'a [i64]),
}

impl SeqLens<'_> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            SeqLens::Usize(v) => v.len(),
            SeqLens::I32(v) => v.len(),
            SeqLens::I64(v) => v.len(),
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `b` as a length, or `None` if it is negative or does not fit.
    fn get(&self, b: usize) -> Option<usize> {
        match self {
            SeqLens::Usize(v) => Some(v[b]),
            SeqLens::I32(v) => usize::try_from(v[b]).ok(),
            SeqLens::I64(v) => usize::try_from(v[b]).ok(),
        }
    }

    fn show(&self, b: usize) -> String {
        match self {
            SeqLens::Usize(v) => v[b].to_string(),
            SeqLens::I32(v) => v[b].to_string(),
            SeqLens::I64(v) => v[b].to_string(),
        }
    }
}

/// A batch of sequences to run through a model.
///
/// Shapes (T = `steps`, B = `batch`, L layers, D directions, Hr = P or H):
/// `input` is [T, B, I] (time-major) or [B, T, I] (`batch_major`); `h0`
/// is [L·D, B, Hr] and `c0` [L·D, B, H], as PyTorch and ONNX order them;
/// `layout` selects ONNX's layouts instead (see [`SequenceLayout`]).
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
    /// The layout of every tensor of the call (default
    /// [`SequenceLayout::Native`]).
    pub layout: SequenceLayout,
    /// Per-sequence lengths as int32 or int64 (or usize), with the
    /// semantics of `seq_lens`; give at most one of the two.
    pub lengths: Option<SeqLens<'a>>,
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
            layout: SequenceLayout::Native,
            lengths: None,
        }
    }
}

/// Where [`Model::run`] writes: `output` is [T, B, out] (or [B, T, out] if
/// the input is batch-major), out = [`ModelSpec::output_size`](crate::ModelSpec::output_size); `h_n` is
/// [L·D, B, Hr] and `c_n` [L·D, B, H]; or ONNX's `Y`, `Y_h`, `Y_c` with an
/// ONNX [`Sequence::layout`] (see [`SequenceLayout`]).
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

impl Model {
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
        let lens = match (seq.seq_lens, seq.lengths) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "seq_lens and lengths are both given; give the lengths once",
                ));
            }
            (Some(l), None) => Some(SeqLens::Usize(l)),
            (None, l) => l,
        };
        if let Some(lens) = lens {
            if lens.len() != b_len {
                return Err(Error::size("seq_lens", b_len, lens.len()));
            }
            if let Some(b) = (0..b_len).find(|&b| lens.get(b).is_none_or(|v| v > t_len)) {
                return Err(Error::invalid(format!(
                    "seq_lens entry {b} is {}: not in 0..={t_len} (steps)",
                    lens.show(b)
                )));
            }
        }
        let len_of = |b: usize| lens.map_or(t_len, |l| l.get(b).unwrap_or(0));
        let padded = (0..b_len).any(|b| len_of(b) < t_len);
        let batch_major = match seq.layout {
            SequenceLayout::Native => seq.batch_major,
            _ if seq.batch_major => {
                return Err(Error::invalid(
                    "batch_major is set with an ONNX layout, which decides the order itself \
                     (layout 0: time-major, layout 1: batch-major)",
                ));
            }
            SequenceLayout::Onnx0 => false,
            SequenceLayout::Onnx1 => true,
        };
        // Rows of the caller's input and output buffers.
        let row = |b: usize, t: usize| {
            if batch_major {
                b * t_len + t
            } else {
                t * b_len + b
            }
        };
        // The offset of (b, t, direction) in the output (Hr floats there):
        // [T, D, B, Hr] for ONNX layout 0 with concatenated directions,
        // else the row's `out_sz` floats, direction `dir` at `dir·Hr`.
        let y_dirs = seq.layout == SequenceLayout::Onnx0 && sp.merge == MergeMode::Concat;
        let out_at = |b: usize, t: usize, dir: usize| {
            if y_dirs {
                ((t * d + dir) * b_len + b) * hr
            } else {
                let col = if sp.merge == MergeMode::Concat {
                    dir * hr
                } else {
                    0
                };
                row(b, t) * out_sz + col
            }
        };
        // The row of (layer·D + direction, b) in h0, c0, h_n, c_n.
        let st_row = |sidx: usize, b: usize| {
            if seq.layout == SequenceLayout::Onnx1 {
                b * ld + sidx
            } else {
                sidx * b_len + b
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
                        let dirs = if sp.merge == MergeMode::Concat { d } else { 1 };
                        for b in b0..b1 {
                            for t in len_of(b)..t_len {
                                for dir in 0..dirs {
                                    out.output[out_at(b, t, dir)..][..hr].fill(0.0);
                                }
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
                            copy_flushed(&mut st.h[..hr], &h0[st_row(sidx, b) * hr..][..hr]);
                        }
                        if let Some(c0) = seq.c0 {
                            copy_flushed(&mut st.c[..h], &c0[st_row(sidx, b) * h..][..h]);
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
                                        &mut out.output[out_at(b, t, dir)..][..hr]
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
                            hn[st_row(sidx, b) * hr..][..hr].copy_from_slice(&st.h[..hr]);
                        }
                        if let Some(cn) = out.c_n.as_deref_mut() {
                            cn[st_row(sidx, b) * h..][..h].copy_from_slice(&st.c[..h]);
                        }
                    }
                }
                std::mem::swap(&mut cur, &mut next);
            }
        }
        Ok(())
    }
}
