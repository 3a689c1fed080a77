//! Reference implementations that the kernels are tested against.
//!
//! Two independent paths, both written as plainly as possible from the
//! canonical weights ([`LayerWeights`]), with no packing and no SIMD:
//!
//! * the **f64 oracle** (`oracle_*`): the equations of the semantics
//!   contract (DESIGN §1) in double precision with `f64::exp` and
//!   `f64::tanh`. It measures accuracy: the f32 kernels must stay within a
//!   small absolute distance of it.
//! * the **plain f32 reference** (`plain_*`): straightforward loops that
//!   apply, element by element, exactly the IEEE operations of the kernels
//!   in the same order (DESIGN §2): the accumulator of every gate row starts
//!   at the bias (`b_w + b_r`, summed in f32; for the linear-before-reset
//!   GRU candidate `b_w` and `b_r` stay apart), then one [`f32::mul_add`]
//!   per input column in ascending order, then one per column of h; the
//!   activations are [`crate::tanh_f32`] and [`crate::sigmoid_f32`]; the
//!   epilogues use the kernels' formulas (`c' = fma(f, c, i·g)`,
//!   `h' = fma(z, h − n, n)`, relu as `max(0, x) + 0`, clamps that keep
//!   NaN), and the denormal rule: every weight, summed bias, peephole,
//!   projection bias, state read (h, c) and state written (h', c', the
//!   projection input m, the GRU's r⊙h) with a subnormal value is taken
//!   as the zero of its sign; the layer-0 input x is used as given. Every
//!   [`crate::Model`], on every [`crate::Isa`], must return the same bits
//!   as this path.
//!
//! Both take the same [`ModelSpec`], canonical weights (one
//! [`LayerWeights`] per layer and direction, index `layer · D + direction`)
//! and [`Sequence`] as [`crate::Model::run`], and return their results in
//! the shapes of [`crate::SequenceOutput`]. They allocate freely; they are
//! meant for tests, not for speed.
//!
//! ```
//! use rnncell::reference::{oracle_run, plain_run};
//! use rnncell::*;
//! let spec = ModelSpec::new(CellKind::gru(), 2, 3);
//! let mut lw = LayerWeights::zeros(3, 3, 2, 3);
//! lw.w.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 * 0.37).sin() * 0.5);
//! lw.r.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 * 0.11).cos() * 0.5);
//! let x: Vec<f32> = (0..4 * 2).map(|i| (i as f32 * 0.3).sin()).collect();
//! let seq = Sequence::new(&x, 4, 1);
//!
//! let model = Model::with_isa(spec, &[lw.clone()], Isa::Scalar)?;
//! let mut y = vec![0.0f32; 4 * 3];
//! model.run(&seq, &mut SequenceOutput { output: &mut y, h_n: None, c_n: None })?;
//!
//! let exact = oracle_run(&spec, &[lw.clone()], &seq)?;
//! let plain = plain_run(&spec, &[lw], &seq)?;
//! for ((a, b), e) in y.iter().zip(&plain.output).zip(&exact.output) {
//!     assert_eq!(a.to_bits(), b.to_bits()); // same operations, same bits
//!     assert!((*a as f64 - e).abs() < 1e-5); // and close to the f64 truth
//! }
//! # Ok::<(), rnncell::Error>(())
//! ```

#![forbid(unsafe_code)]

use std::ops::Add;

use crate::cell::model::Sequence;
use crate::cell::spec::{CellKind, Coupling, Direction, MergeMode, ModelSpec, RnnActivation};
use crate::cell::weights::LayerWeights;
use crate::error::{Error, Result};
use crate::kernels::simd::{flush_f32 as fl, sigmoid_f32, tanh_f32};

/// The recurrent state of one layer and direction of a reference path:
/// `h` (size Hr = P or H) and `c` (size H, LSTM only; empty otherwise).
///
/// ```
/// use rnncell::reference::RefState;
/// use rnncell::*;
/// let s = RefState::<f64>::zeros(&ModelSpec::new(CellKind::lstm(), 3, 5));
/// assert_eq!((s.h.len(), s.c.len()), (5, 5));
/// let g = RefState::<f32>::zeros(&ModelSpec::new(CellKind::gru(), 3, 5));
/// assert!(g.c.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RefState<T> {
    /// h (size P with a projection, else H).
    pub h: Vec<T>,
    /// c (size H), empty for cells without a c state.
    pub c: Vec<T>,
}

impl<T: Copy + Default> RefState<T> {
    /// A zero state for one layer and direction of `spec`.
    ///
    /// ```
    /// use rnncell::reference::RefState;
    /// use rnncell::*;
    /// let s = RefState::<f32>::zeros(&ModelSpec::new(CellKind::rnn_tanh(), 3, 4));
    /// assert_eq!(s.h, vec![0.0; 4]);
    /// ```
    pub fn zeros(spec: &ModelSpec) -> RefState<T> {
        RefState {
            h: vec![T::default(); spec.state_size()],
            c: if spec.has_cell_state() {
                vec![T::default(); spec.hidden_size]
            } else {
                Vec::new()
            },
        }
    }

    /// Zero states for every layer of a forward model, as
    /// [`oracle_step`] and [`plain_step`] take them.
    ///
    /// ```
    /// use rnncell::reference::RefState;
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::lstm(), 3, 4).layers(3);
    /// assert_eq!(RefState::<f64>::for_layers(&spec).len(), 3);
    /// ```
    pub fn for_layers(spec: &ModelSpec) -> Vec<RefState<T>> {
        (0..spec.num_layers)
            .map(|_| RefState::zeros(spec))
            .collect()
    }
}

/// The results of a reference run, in the shapes of
/// [`crate::SequenceOutput`]: `output` [T, B, out] (or [B, T, out] for
/// batch-major input), `h_n` [L·D, B, Hr], `c_n` [L·D, B, H] (empty for
/// cells without c).
///
/// ```
/// use rnncell::reference::plain_run;
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::lstm(), 1, 2);
/// let x = [0.5f32; 3];
/// let out = plain_run(&spec, &[LayerWeights::zeros(4, 2, 1, 2)], &Sequence::new(&x, 3, 1))?;
/// assert_eq!((out.output.len(), out.h_n.len(), out.c_n.len()), (6, 2, 2));
/// # Ok::<(), rnncell::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RefOutput<T> {
    /// Per-step outputs of the last layer.
    pub output: Vec<T>,
    /// Final h of every layer and direction.
    pub h_n: Vec<T>,
    /// Final c of every layer and direction (LSTM), else empty.
    pub c_n: Vec<T>,
}

// ---------------------------------------------------------------------------
// Shape checks shared by both paths.

fn check_layer<T>(
    spec: &ModelSpec,
    layer: usize,
    lw: &LayerWeights,
    x: &[T],
    st: &RefState<T>,
) -> Result<()> {
    spec.validate()?;
    if layer >= spec.num_layers {
        return Err(Error::invalid(format!(
            "layer {layer} out of range (model has {})",
            spec.num_layers
        )));
    }
    lw.check(spec, layer, 0)?;
    let want = |v: usize, n: usize, what: &str| {
        if v == n {
            Ok(())
        } else {
            Err(Error::size(what, n, v))
        }
    };
    want(x.len(), spec.layer_input_size(layer), "x")?;
    want(st.h.len(), spec.state_size(), "h")?;
    let c = if spec.has_cell_state() {
        spec.hidden_size
    } else {
        0
    };
    want(st.c.len(), c, "c")
}

fn check_weights(spec: &ModelSpec, weights: &[LayerWeights]) -> Result<()> {
    spec.validate()?;
    let d = spec.directions();
    if weights.len() != spec.num_layers * d {
        return Err(Error::size(
            "layer weights (layers × directions)",
            spec.num_layers * d,
            weights.len(),
        ));
    }
    for (i, lw) in weights.iter().enumerate() {
        lw.check(spec, i / d, i % d)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The f64 oracle: DESIGN §1, written out.

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Clamp to ±k if a clip is set (NaN stays NaN).
fn clip64(x: f64, k: Option<f32>) -> f64 {
    match k {
        Some(k) => x.clamp(-(k as f64), k as f64),
        None => x,
    }
}

/// Σ_k m[row, k] · v[k] in f64, m row-major with `v.len()` columns.
fn dot64(m: &[f32], row: usize, v: &[f64]) -> f64 {
    let n = v.len();
    m[row * n..(row + 1) * n]
        .iter()
        .zip(v)
        .map(|(&a, &b)| a as f64 * b)
        .sum()
}

/// One time step of one layer and direction, in f64, straight from the
/// equations of DESIGN §1: reads `x` and `st.h`/`st.c`, replaces them with
/// h' and c'.
///
/// LSTM: `i, f, o = σ(·)`, `g = tanh(·)` of `W x + R h + b_w + b_r` (plus
/// `p_i⊙c`, `p_f⊙c`, and `p_o⊙c'` with peepholes; ONNX `clip` clamps each
/// of these four activation inputs), `c' = f⊙c + i⊙g` (clamped by
/// `cell_clip`), `h' = o⊙tanh(c')`, then with a projection
/// `h' = clip(W_proj h' + b_proj)`. CIFG: `i = 1 − f` (TFLite) or
/// `f = 1 − i` (ONNX). GRU: `h' = (1 − z)⊙n + z⊙h` with `n` in the
/// reset-before or linear-before-reset form. RNN: `tanh` or `max(0, ·)`.
///
/// ```
/// use rnncell::reference::{oracle_cell_step, RefState};
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::rnn_tanh(), 1, 1);
/// let mut lw = LayerWeights::zeros(1, 1, 1, 1);
/// lw.w[0] = 2.0;
/// let mut st = RefState::zeros(&spec);
/// oracle_cell_step(&spec, 0, &lw, &[0.25], &mut st)?;
/// assert_eq!(st.h[0], 0.5f64.tanh());
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn oracle_cell_step(
    spec: &ModelSpec,
    layer: usize,
    lw: &LayerWeights,
    x: &[f64],
    st: &mut RefState<f64>,
) -> Result<()> {
    check_layer(spec, layer, lw, x, st)?;
    let hs = spec.hidden_size;
    let h = st.h.clone();
    // W x + R h + b_w + b_r of gate `g`, unit `j`.
    let full = |g: usize, j: usize| {
        let row = g * hs + j;
        dot64(&lw.w, row, x) + dot64(&lw.r, row, &h) + lw.b_w[row] as f64 + lw.b_r[row] as f64
    };
    match spec.cell {
        CellKind::Lstm(o) => {
            let mut m = vec![0.0f64; hs];
            for (j, mj) in m.iter_mut().enumerate() {
                let c = st.c[j];
                let peep = |g: usize, v: f64| {
                    if o.peephole {
                        lw.peephole[g * hs + j] as f64 * v
                    } else {
                        0.0
                    }
                };
                let ai = clip64(full(0, j) + peep(0, c), o.clip);
                let af = clip64(full(1, j) + peep(1, c), o.clip);
                let ag = clip64(full(2, j), o.clip);
                let (i, f) = match o.coupling {
                    Coupling::None => (sigmoid64(ai), sigmoid64(af)),
                    Coupling::InputFromForget => (1.0 - sigmoid64(af), sigmoid64(af)),
                    Coupling::ForgetFromInput => (sigmoid64(ai), 1.0 - sigmoid64(ai)),
                };
                let g = ag.tanh();
                let c_new = clip64(f * c + i * g, o.cell_clip);
                let ao = clip64(full(3, j) + peep(2, c_new), o.clip);
                st.c[j] = c_new;
                *mj = sigmoid64(ao) * c_new.tanh();
            }
            if o.proj_size > 0 {
                for (p, hp) in st.h.iter_mut().enumerate() {
                    let b = lw.proj_bias.get(p).map_or(0.0, |&b| b as f64);
                    *hp = clip64(dot64(&lw.proj, p, &m) + b, o.proj_clip);
                }
            } else {
                st.h = m;
            }
        }
        CellKind::Gru(o) => {
            let r: Vec<f64> = (0..hs)
                .map(|j| sigmoid64(clip64(full(0, j), o.clip)))
                .collect();
            let rh: Vec<f64> = r.iter().zip(&h).map(|(a, b)| a * b).collect();
            for j in 0..hs {
                let z = sigmoid64(clip64(full(1, j), o.clip));
                let row = 2 * hs + j;
                let wx = dot64(&lw.w, row, x) + lw.b_w[row] as f64;
                let pre = if o.linear_before_reset {
                    wx + r[j] * (dot64(&lw.r, row, &h) + lw.b_r[row] as f64)
                } else {
                    wx + dot64(&lw.r, row, &rh) + lw.b_r[row] as f64
                };
                let n = clip64(pre, o.clip).tanh();
                st.h[j] = (1.0 - z) * n + z * h[j];
            }
        }
        CellKind::Rnn(o) => {
            for j in 0..hs {
                let a = clip64(full(0, j), o.clip);
                st.h[j] = match o.activation {
                    RnnActivation::Tanh => a.tanh(),
                    RnnActivation::Relu => {
                        if a > 0.0 {
                            a
                        } else {
                            0.0
                        }
                    }
                };
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The plain f32 reference: the kernels' operations, one element at a time.

/// Clamp to ±k if set; NaN stays NaN (the kernels' `min(k, max(−k, x))`).
fn clip32(x: f32, k: Option<f32>) -> f32 {
    match k {
        Some(k) => x.clamp(-k, k),
        None => x,
    }
}

/// `acc = fma(m[row, k], v[k], acc)` for k ascending, the weights
/// flushed as the packing flushes them.
fn fma_row(acc: f32, m: &[f32], row: usize, v: &[f32]) -> f32 {
    let n = v.len();
    m[row * n..(row + 1) * n]
        .iter()
        .zip(v)
        .fold(acc, |a, (&w, &vk)| fl(w).mul_add(vk, a))
}

/// One time step of one layer and direction in f32, applying exactly the
/// kernels' operations in the kernels' order (see the module docs), so
/// that every ISA must return the same bits. Reads `x` and `st.h`/`st.c`,
/// replaces them with h' and c'.
///
/// ```
/// use rnncell::reference::{plain_cell_step, RefState};
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::rnn_tanh(), 1, 1);
/// let mut lw = LayerWeights::zeros(1, 1, 1, 1);
/// lw.w[0] = 2.0;
/// let mut st = RefState::zeros(&spec);
/// plain_cell_step(&spec, 0, &lw, &[0.25], &mut st)?;
/// assert_eq!(st.h[0], tanh_f32(0.5));
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn plain_cell_step(
    spec: &ModelSpec,
    layer: usize,
    lw: &LayerWeights,
    x: &[f32],
    st: &mut RefState<f32>,
) -> Result<()> {
    check_layer(spec, layer, lw, x, st)?;
    let hs = spec.hidden_size;
    // The state as the library stores it: subnormals flushed.
    let h: Vec<f32> = st.h.iter().map(|&v| fl(v)).collect();
    st.c.iter_mut().for_each(|v| *v = fl(*v));
    // bias (b_w + b_r in f32, flushed), then x ascending, then h ascending.
    let full = |g: usize, j: usize| {
        let row = g * hs + j;
        let acc = fl(lw.b_w[row] + lw.b_r[row]);
        fma_row(fma_row(acc, &lw.w, row, x), &lw.r, row, &h)
    };
    match spec.cell {
        CellKind::Lstm(o) => {
            let mut m = vec![0.0f32; hs];
            for (j, mj) in m.iter_mut().enumerate() {
                let c = st.c[j];
                let (mut ai, mut af, ag, mut ao) = (full(0, j), full(1, j), full(2, j), full(3, j));
                if o.peephole {
                    ai = fl(lw.peephole[j]).mul_add(c, ai);
                    af = fl(lw.peephole[hs + j]).mul_add(c, af);
                }
                let (i, f) = match o.coupling {
                    Coupling::None => (
                        sigmoid_f32(clip32(ai, o.clip)),
                        sigmoid_f32(clip32(af, o.clip)),
                    ),
                    Coupling::InputFromForget => {
                        let f = sigmoid_f32(clip32(af, o.clip));
                        (1.0 - f, f)
                    }
                    Coupling::ForgetFromInput => {
                        let i = sigmoid_f32(clip32(ai, o.clip));
                        (i, 1.0 - i)
                    }
                };
                let g = tanh_f32(clip32(ag, o.clip));
                let c_new = fl(clip32(f.mul_add(c, i * g), o.cell_clip));
                st.c[j] = c_new;
                if o.peephole {
                    ao = fl(lw.peephole[2 * hs + j]).mul_add(c_new, ao);
                }
                let og = sigmoid_f32(clip32(ao, o.clip));
                *mj = fl(og * tanh_f32(c_new));
            }
            if o.proj_size > 0 {
                for (p, hp) in st.h.iter_mut().enumerate() {
                    let b = fl(lw.proj_bias.get(p).copied().unwrap_or(0.0));
                    *hp = fl(clip32(fma_row(b, &lw.proj, p, &m), o.proj_clip));
                }
            } else {
                st.h = m;
            }
        }
        CellKind::Gru(o) if o.linear_before_reset => {
            for j in 0..hs {
                let r = sigmoid_f32(clip32(full(0, j), o.clip));
                let z = sigmoid_f32(clip32(full(1, j), o.clip));
                let row = 2 * hs + j;
                let nx = fma_row(fl(lw.b_w[row]), &lw.w, row, x);
                let nh = fma_row(fl(lw.b_r[row]), &lw.r, row, &h);
                let n = tanh_f32(clip32(r.mul_add(nh, nx), o.clip));
                st.h[j] = fl(z.mul_add(h[j] - n, n));
            }
        }
        CellKind::Gru(o) => {
            // Phase 1: r, z, bias + W_n x, and r⊙h for every unit.
            let mut z = vec![0.0f32; hs];
            let mut nx = vec![0.0f32; hs];
            let mut rh = vec![0.0f32; hs];
            for j in 0..hs {
                let r = sigmoid_f32(clip32(full(0, j), o.clip));
                z[j] = sigmoid_f32(clip32(full(1, j), o.clip));
                let row = 2 * hs + j;
                nx[j] = fma_row(fl(lw.b_w[row] + lw.b_r[row]), &lw.w, row, x);
                rh[j] = fl(r * h[j]);
            }
            // Phase 2: n += R_n (r⊙h), then h'.
            for j in 0..hs {
                let n = tanh_f32(clip32(fma_row(nx[j], &lw.r, 2 * hs + j, &rh), o.clip));
                st.h[j] = fl(z[j].mul_add(h[j] - n, n));
            }
        }
        CellKind::Rnn(o) => {
            for j in 0..hs {
                let a = clip32(full(0, j), o.clip);
                st.h[j] = fl(match o.activation {
                    RnnActivation::Tanh => tanh_f32(a),
                    // max(0, x) keeping NaN, then + 0 to turn −0 into +0.
                    RnnActivation::Relu => (if a < 0.0 { 0.0 } else { a }) + 0.0,
                });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Models: stacks, directions, sequences. Shared by both paths; only the
// element type and the cell step differ.

fn step_model<T: Copy + From<f32>>(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    states: &mut [RefState<T>],
    x: &[f32],
    cell: impl Fn(&ModelSpec, usize, &LayerWeights, &[T], &mut RefState<T>) -> Result<()>,
) -> Result<Vec<T>> {
    check_weights(spec, weights)?;
    if spec.direction != Direction::Forward {
        return Err(Error::Unsupported(
            "stepping needs a forward model".to_string(),
        ));
    }
    if states.len() != spec.num_layers {
        return Err(Error::size("states", spec.num_layers, states.len()));
    }
    if x.len() != spec.input_size {
        return Err(Error::size("x", spec.input_size, x.len()));
    }
    // Check every layer before changing any, so an error leaves states alone.
    for (l, st) in states.iter().enumerate() {
        let probe: Vec<T> = vec![T::from(0.0); spec.layer_input_size(l)];
        check_layer(spec, l, &weights[l], &probe, st)?;
    }
    let mut input: Vec<T> = x.iter().map(|&v| T::from(v)).collect();
    for (l, st) in states.iter_mut().enumerate() {
        cell(spec, l, &weights[l], &input, st)?;
        input = st.h.clone();
    }
    Ok(input)
}

fn run_model<T: Copy + Default + From<f32> + Add<Output = T>>(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    seq: &Sequence<'_>,
    cell: impl Fn(&ModelSpec, usize, &LayerWeights, &[T], &mut RefState<T>) -> Result<()>,
) -> Result<RefOutput<T>> {
    check_weights(spec, weights)?;
    let (tl, bl) = (seq.steps, seq.batch);
    if tl == 0 || bl == 0 {
        return Err(Error::invalid(format!(
            "empty sequence: steps {tl}, batch {bl}"
        )));
    }
    let d = spec.directions();
    let ld = spec.num_layers * d;
    let (hs, hr, out_sz, n_in) = (
        spec.hidden_size,
        spec.state_size(),
        spec.output_size(),
        spec.input_size,
    );
    let lstm = spec.has_cell_state();
    let want = |v: usize, n: Option<usize>, what: &str| match n {
        Some(n) if n == v => Ok(()),
        Some(n) => Err(Error::size(what, n, v)),
        None => Err(Error::invalid(format!("{what}: size overflows"))),
    };
    let prod = |a: &[usize]| a.iter().try_fold(1usize, |p, &v| p.checked_mul(v));
    want(seq.input.len(), prod(&[tl, bl, n_in]), "input")?;
    if let Some(h0) = seq.h0 {
        want(h0.len(), prod(&[ld, bl, hr]), "h0")?;
    }
    if let Some(c0) = seq.c0 {
        if !lstm {
            return Err(Error::invalid("c0 given but the cell has no c state"));
        }
        want(c0.len(), prod(&[ld, bl, hs]), "c0")?;
    }
    if let Some(lens) = seq.seq_lens {
        want(lens.len(), Some(bl), "seq_lens")?;
        if let Some(&bad) = lens.iter().find(|&&v| v > tl) {
            return Err(Error::invalid(format!(
                "seq_lens entry {bad} exceeds steps {tl}"
            )));
        }
    }
    let zero = T::default();
    // cur[b][t]: the input of the current layer for stream b at step t.
    let mut cur: Vec<Vec<Vec<T>>> = (0..bl)
        .map(|b| {
            (0..tl)
                .map(|t| {
                    let at = if seq.batch_major {
                        b * tl + t
                    } else {
                        t * bl + b
                    };
                    seq.input[at * n_in..(at + 1) * n_in]
                        .iter()
                        .map(|&v| T::from(v))
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut h_n = vec![zero; ld * bl * hr];
    let mut c_n = vec![zero; if lstm { ld * bl * hs } else { 0 }];
    for l in 0..spec.num_layers {
        let mut next = vec![vec![vec![zero; out_sz]; tl]; bl];
        for dir in 0..d {
            let idx = l * d + dir;
            let reverse = spec.direction == Direction::Reverse || dir == 1;
            let sum = dir == 1 && spec.merge == MergeMode::Sum;
            let col = if spec.merge == MergeMode::Concat {
                dir * hr
            } else {
                0
            };
            for b in 0..bl {
                let mut st = RefState::<T>::zeros(spec);
                let at = idx * bl + b;
                if let Some(h0) = seq.h0 {
                    // Initial states flushed, as Model::run loads them.
                    for (s, &v) in st.h.iter_mut().zip(&h0[at * hr..(at + 1) * hr]) {
                        *s = T::from(fl(v));
                    }
                }
                if let Some(c0) = seq.c0 {
                    for (s, &v) in st.c.iter_mut().zip(&c0[at * hs..(at + 1) * hs]) {
                        *s = T::from(fl(v));
                    }
                }
                let n = seq.seq_lens.map_or(tl, |lens| lens[b]);
                for i in 0..n {
                    let t = if reverse { n - 1 - i } else { i };
                    cell(spec, l, &weights[idx], &cur[b][t], &mut st)?;
                    let dst = &mut next[b][t][col..col + hr];
                    for (o, &v) in dst.iter_mut().zip(&st.h) {
                        // Forward first, then backward added to it (the
                        // order Model::run uses; it matters for −0).
                        *o = if sum { *o + v } else { v };
                    }
                }
                h_n[at * hr..(at + 1) * hr].copy_from_slice(&st.h);
                if lstm {
                    c_n[at * hs..(at + 1) * hs].copy_from_slice(&st.c);
                }
            }
        }
        cur = next;
    }
    let mut output = vec![zero; tl * bl * out_sz];
    for (b, row) in cur.iter().enumerate() {
        for (t, v) in row.iter().enumerate() {
            let at = if seq.batch_major {
                b * tl + t
            } else {
                t * bl + b
            };
            output[at * out_sz..(at + 1) * out_sz].copy_from_slice(v);
        }
    }
    Ok(RefOutput { output, h_n, c_n })
}

/// The f64 oracle over a whole batch of sequences, with the semantics of
/// [`crate::Model::run`]: layers, directions (reverse outputs in the
/// original time order; bidirectional concatenated forward ‖ backward or
/// summed), per-sequence lengths (ONNX semantics), optional `h0`/`c0`,
/// time- or batch-major input.
///
/// ```
/// use rnncell::reference::oracle_run;
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::lstm(), 1, 2).direction(Direction::Bidirectional);
/// let lw = LayerWeights::zeros(4, 2, 1, 2);
/// let x = [1.0f32, 2.0, 3.0];
/// let out = oracle_run(&spec, &[lw.clone(), lw], &Sequence::new(&x, 3, 1))?;
/// assert_eq!(out.output.len(), 3 * 4);
/// assert_eq!(out.h_n.len(), 2 * 2);
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn oracle_run(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    seq: &Sequence<'_>,
) -> Result<RefOutput<f64>> {
    run_model(spec, weights, seq, oracle_cell_step)
}

/// The plain f32 reference over a whole batch of sequences: the same
/// semantics as [`oracle_run`], with [`plain_cell_step`] for every step,
/// so the result must equal [`crate::Model::run`] bit for bit.
///
/// ```
/// use rnncell::reference::plain_run;
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::gru(), 1, 2);
/// let mut lw = LayerWeights::zeros(3, 2, 1, 2);
/// lw.w = vec![0.5, -0.25, 0.75, 0.1, -0.6, 0.3];
/// let x = [1.0f32, 2.0, 3.0, 4.0];
/// let seq = Sequence { seq_lens: Some(&[1, 2]), ..Sequence::new(&x, 2, 2) };
/// let out = plain_run(&spec, &[lw], &seq)?;
/// assert_eq!(&out.output[4..6], &[0.0, 0.0]); // step 1 of stream 0 is past its end
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn plain_run(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    seq: &Sequence<'_>,
) -> Result<RefOutput<f32>> {
    run_model(spec, weights, seq, plain_cell_step)
}

/// One f64 oracle step of a forward model: `states` holds one
/// [`RefState`] per layer (see [`RefState::for_layers`]); returns the last
/// layer's new h. On error the states are unchanged.
///
/// ```
/// use rnncell::reference::{oracle_step, RefState};
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::rnn_relu(), 1, 1).layers(2);
/// let mut l0 = LayerWeights::zeros(1, 1, 1, 1);
/// l0.w[0] = 1.0;
/// let mut l1 = l0.clone();
/// l1.b_w[0] = -0.5;
/// let mut st = RefState::for_layers(&spec);
/// assert_eq!(oracle_step(&spec, &[l0, l1], &mut st, &[2.0])?, vec![1.5]);
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn oracle_step(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    states: &mut [RefState<f64>],
    x: &[f32],
) -> Result<Vec<f64>> {
    step_model(spec, weights, states, x, oracle_cell_step)
}

/// One plain f32 reference step of a forward model, to compare bit for bit
/// with [`crate::Model::step`]. On error the states are unchanged.
///
/// ```
/// use rnncell::reference::{plain_step, RefState};
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
/// let mut lw = LayerWeights::zeros(4, 3, 2, 3);
/// lw.w.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32).sin());
/// let model = Model::with_isa(spec, &[lw.clone()], Isa::Scalar)?;
/// let (mut s, mut rs) = (model.new_state(), RefState::for_layers(&spec));
/// let mut y = [0.0f32; 3];
/// model.step(&mut s, &[0.5, -1.0], &mut y)?;
/// let r = plain_step(&spec, &[lw], &mut rs, &[0.5, -1.0])?;
/// assert_eq!(y.map(f32::to_bits).to_vec(), r.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn plain_step(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    states: &mut [RefState<f32>],
    x: &[f32],
) -> Result<Vec<f32>> {
    step_model(spec, weights, states, x, plain_cell_step)
}
