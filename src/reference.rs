//! Reference implementations that the kernels are tested against.
//!
//! Two independent paths, both written as plainly as possible from the
//! canonical weights ([`LayerWeights`]), with no packing and no SIMD:
//!
//! * the **f64 oracle** (`oracle_*`): the equations of the semantics
//!   contract (DESIGN §1) in double precision with `f64::exp` and
//!   `f64::tanh` (other activation functions: [`crate::Activation::eval_f64`]).
//!   It measures accuracy: the f32 kernels must stay within a
//!   small absolute distance of it.
//! * the **plain f32 reference** (`plain_*`): straightforward loops that
//!   apply, element by element, exactly the IEEE operations of the kernels
//!   in the same order (DESIGN §2): the accumulator of every gate row starts
//!   at the bias (`b_w + b_r`, summed in f32; for the linear-before-reset
//!   GRU candidate `b_w` and `b_r` stay apart), then one [`f32::mul_add`]
//!   per input column in ascending order, then one per column of h; the
//!   activations are those of [`ModelSpec::activations_of`] for the layer's
//!   direction, each computed as [`crate::Activation::eval`] (the standard
//!   ones are [`crate::tanh_f32`] and [`crate::sigmoid_f32`]); the
//!   epilogues use the kernels' formulas (`c' = fma(f, c, i·g)`,
//!   `h' = fma(z, h − n, n)`, relu as `max(0, x) + 0`, clamps that keep
//!   NaN), and the denormal rule: every weight, summed bias, peephole,
//!   projection bias, state read (h, c) and state written (h', c', the
//!   projection input m, the GRU's r⊙h) with a subnormal value is taken
//!   as the zero of its sign; the layer-0 input x is used as given. Every
//!   [`crate::Model`], on every [`crate::Isa`], must return the same bits
//!   as this path.
//!
//! # Weight precisions
//!
//! Both paths honour [`ModelSpec::precision`]. This section is the
//! written contract of the reduced-precision kernels: every
//! [`crate::Model`] built with a precision, on every ISA, must return the
//! bits of [`plain_run`] / [`plain_step`] with the same spec. Only the
//! weight matrices W, R and the LSTM projection W_proj change; biases,
//! peepholes, the projection bias, inputs and states stay f32 and are used
//! exactly as with f32 weights.
//!
//! * **[`WeightPrecision::F32`]**: as described above.
//! * **[`WeightPrecision::F16`] / [`WeightPrecision::Bf16`]**: each matrix
//!   element is first flushed by the denormal rule, then rounded to the
//!   nearest IEEE binary16 / bfloat16 value, ties to even, and widened back
//!   to f32 (exactly; see [`f16_round`], [`bf16_round`]). f16 subnormals
//!   are kept (they are normal f32 values). A finite weight that rounds to
//!   ±∞ is an [`Error::InvalidArgument`] naming the tensor and index (f16:
//!   |w| ≥ 65520; bf16: |w| > 3.3961e38, i.e. beyond `f32::MAX` after
//!   rounding), e.g. `layer 0 weight_ih[3,7]: 70000 overflows f16`. ±∞
//!   stays ±∞ and NaN stays NaN (its payload is not part of the
//!   guarantee). Then the f32 path runs unchanged on the rounded weights,
//!   so a model with these weights equals the f32 model of
//!   [`round_weights`] bit for bit.
//! * **[`WeightPrecision::Int8Weights`]** (i8w): each matrix M ∈ {W, R,
//!   W_proj} is quantized row by row, a row being a row of the canonical
//!   layout ([G·H, K] for W and R, so each gate's rows separately; [P, H]
//!   for W_proj). After the denormal flush, a non-finite element is an
//!   [`Error::InvalidArgument`] naming the tensor and index; then
//!   `m = max_k |M[r,k]|`, `s = m / 127` (one f32 division); if
//!   `s < f32::MIN_POSITIVE` (m = 0, or a scale that would be subnormal)
//!   the row is `q = 0, s = 0`; otherwise
//!   `q[r,k] = round_ties_even(M[r,k] / s)` (f32 division), clamped to
//!   [−127, 127] (the clamp is never active). See [`quantize_i8w`]. Every
//!   product "initial value + `M[r]·v`" of the f32 path then becomes two
//!   operations, a chain over the integer weights from +0 and one rescale
//!   into the initial value:
//!
//!   ```text
//!   A = +0.0;  for k ascending: A = fma(f32(q[r,k]), v[k], A)
//!   result = fma(A, s[r], initial value)
//!   ```
//!
//!   so that a gate row is `P = fma(A_x, s_W[r], b[r])` (b = `b_w + b_r`
//!   summed in f32 and flushed, as with f32) and then
//!   `a = fma(A_h, s_R[r], P)`; the linear-before-reset GRU candidate is
//!   `n_x = fma(A_x, s_W, b_wn)`, `n_h = fma(A_h, s_R, b_rn)` and
//!   `n = tanh(fma(r, n_h, n_x))`; the reset-before GRU candidate is
//!   `P = fma(A_x, s_W, b_wn + b_rn)`, then `a = fma(A_rh, s_Rn, P)` with
//!   A_rh the chain over r⊙h; the LSTM projection is
//!   `y = fma(A_m, s_P, b_proj)` (b_proj = +0 without a projection bias),
//!   clipped and flushed as with f32. Activations, epilogues and the
//!   denormal rule for states are those of the f32 path.
//! * **[`WeightPrecision::Int8`]** (i8): the weights are quantized
//!   exactly as for i8w (the same `q` and `s` per row, two chains). The
//!   activations are quantized too, once per vector per call: x of a step,
//!   h, and the inputs of the second products (the reset-before GRU's r⊙h,
//!   the LSTM projection input m), each for each stream on its own, by
//!   [`quantize_i8_activations`]:
//!
//!   ```text
//!   mb = max_k (bits(v[k]) & 0x7fff_ffff)          (as integers: exact)
//!   if mb ≥ 0x7f80_0000 (an ∞ or NaN in v):  σ = NaN, q = 0
//!   m = f32::from_bits(mb);  inv = 127 / m          (f32 division)
//!   if inv is not finite (m = 0, or m < 127 / f32::MAX): σ = 0, q = 0
//!   else σ = m / 127;  q[k] = round_ties_even(v[k] · inv) clamped to ±127
//!   ```
//!
//!   Each product is then one exact integer dot and one rescale:
//!
//!   ```text
//!   I = Σ_k q_M[r,k] · q_v[k]                        (exact: |I| < 2^31)
//!   result = fma(f32(I), s[r] · σ, initial value)    (f32(I) rounds to
//!                                                     nearest even; s · σ
//!                                                     is one f32 multiply)
//!   ```
//!
//!   with the same initial values and joins as i8w (`P = fma(f32(I_x),
//!   s_W·σ_x, b)`, then `a = fma(f32(I_h), s_R·σ_h, P)`, …). K ≤
//!   [`crate::MAX_INT8_K`] for every matrix keeps |I| ≤ K · 127² < 2^31.
//!   The one departure from f32 arithmetic: a vector holding ±∞ or NaN
//!   makes every row it feeds NaN (σ = NaN), where f32 weights could give
//!   ±∞.
//! * **The f64 oracle** with a reduced precision evaluates the equations in
//!   f64 on the weights as the precision stores them: the rounded values
//!   for f16/bf16, `q·s` (exact in f64) for i8w and i8 (whose activation
//!   rounding is therefore part of its error against the oracle). So [`oracle_run`] with an
//!   F32 spec is "f64 on the original weights" and with the precision's
//!   spec "f64 on the rounded-weight model".
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

use std::borrow::Cow;
use std::ops::Add;

use crate::cell::model::Sequence;
use crate::cell::spec::{CellKind, Coupling, Direction, MergeMode, ModelSpec, WeightPrecision};
use crate::cell::weights::LayerWeights;
use crate::error::{Error, Result};
use crate::kernels::simd::flush_f32 as fl;

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
// Weight precisions: the stored form of the weight matrices (module docs,
// "Weight precisions"). Written from the definitions of the formats, with
// f64 arithmetic, independently of the kernels' conversions.

/// 2^e as an f64 (−1022 ≤ e ≤ 1023).
fn pow2(e: i32) -> f64 {
    f64::from_bits(((1023 + e) as u64) << 52)
}

/// `w` rounded to the nearest value (ties to even) of a binary format with
/// `frac` fraction bits and smallest normal exponent `emin`, as an f32;
/// ±∞ if the rounded magnitude exceeds `max`. NaN gives the quiet NaN with
/// the fraction bits the format keeps (`nan_mask`).
fn round_format(w: f32, frac: i32, emin: i32, max: f64, nan_mask: u32) -> f32 {
    if w.is_nan() {
        return f32::from_bits((w.to_bits() & nan_mask) | 0x7fc0_0000);
    }
    if w.is_infinite() || w == 0.0 {
        return w;
    }
    let v = w as f64; // exact; f32 subnormals are normal f64 values
    let e = ((v.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    // The spacing of the format's values around v (its subnormal spacing
    // below the normal range).
    let ulp = pow2(e.max(emin) - frac);
    let r = (v / ulp).round_ties_even() * ulp; // both steps exact in f64
    if r.abs() > max {
        f32::INFINITY.copysign(w)
    } else {
        r as f32 // exact: at most frac + 1 bits, inside the f32 range
    }
}

/// `w` rounded to IEEE binary16, ties to even, and widened back to f32
/// (exactly). f16 subnormals are kept; |w| ≥ 65520 gives ±∞ (the caller
/// decides whether that is an error: building a model with
/// [`WeightPrecision::F16`] rejects it). NaN stays NaN (quiet, with the
/// top 10 fraction bits kept).
///
/// ```
/// use rnncell::reference::f16_round;
/// assert_eq!(f16_round(1.0 + 1.0 / 2048.0), 1.0); // half an ulp: ties to even
/// assert_eq!(f16_round(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0);
/// assert_eq!(f16_round(65519.0), 65504.0);
/// assert_eq!(f16_round(65520.0), f32::INFINITY);
/// assert_eq!(f16_round(3e-8), 2f32.powi(-24)); // the smallest subnormal
/// assert_eq!(f16_round(-2e-8).to_bits(), (-0.0f32).to_bits());
/// ```
pub fn f16_round(w: f32) -> f32 {
    round_format(w, 10, -14, 65504.0, 0x807f_e000)
}

/// `w` rounded to bfloat16 (the top 16 bits of an f32), ties to even, and
/// widened back to f32. A value that rounds beyond `f32::MAX` gives ±∞
/// (building a model with [`WeightPrecision::Bf16`] rejects it). NaN
/// stays NaN (quiet, with the top 7 fraction bits kept).
///
/// ```
/// use rnncell::reference::bf16_round;
/// assert_eq!(bf16_round(1.0 + 1.0 / 256.0), 1.0); // half an ulp: ties to even
/// assert_eq!(bf16_round(1.0 + 3.0 / 256.0), 1.0 + 2.0 / 128.0);
/// assert_eq!(bf16_round(f32::MAX), f32::INFINITY);
/// assert_eq!(bf16_round(3.0e38).to_bits() & 0xffff, 0);
/// ```
pub fn bf16_round(w: f32) -> f32 {
    round_format(w, 7, -126, f32::MAX as f64, 0xffff_0000)
}

/// A matrix quantized by the i8w rule (see [`quantize_i8w`]): `q` row-major
/// like the f32 matrix, one `scale` per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizedMatrix {
    /// The integer weights, each in [−127, 127].
    pub q: Vec<i8>,
    /// The scale of each row (0 for a zero row).
    pub scale: Vec<f32>,
}

/// Quantizes a row-major `rows × cols` matrix by the i8w rule of the module
/// docs: each element flushed by the denormal rule; per row
/// `m = max |M[r,k]|`, `s = m / 127` (f32); a row with
/// `s < f32::MIN_POSITIVE` becomes `q = 0`, `s = 0`; otherwise
/// `q = round_ties_even(M[r,k] / s)` (f32 division) clamped to [−127, 127].
/// A non-finite element is an [`Error::InvalidArgument`] naming `tensor`
/// and the index `[r,k]`; a length other than `rows · cols` is an
/// [`Error::SizeMismatch`].
///
/// ```
/// use rnncell::reference::quantize_i8w;
/// let qm = quantize_i8w(&[0.5, -1.27, 0.0, 0.0, 0.0, 0.0], 2, 3, "w")?;
/// assert_eq!(qm.q, vec![50, -127, 0, 0, 0, 0]);
/// assert_eq!(qm.scale, vec![1.27f32 / 127.0, 0.0]);
/// assert!(quantize_i8w(&[1.0, f32::NAN], 1, 2, "w").is_err());
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn quantize_i8w(m: &[f32], rows: usize, cols: usize, tensor: &str) -> Result<QuantizedMatrix> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::invalid(format!("{tensor}: {rows} × {cols} overflows")))?;
    if m.len() != n {
        return Err(Error::size(tensor, n, m.len()));
    }
    let mut out = QuantizedMatrix {
        q: vec![0; n],
        scale: vec![0.0; rows],
    };
    for r in 0..rows {
        let row = &m[r * cols..(r + 1) * cols];
        if let Some(k) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "{tensor}[{r},{k}]: {} is not finite (int8 weights must be finite)",
                row[k]
            )));
        }
        let mx = row.iter().fold(0.0f32, |a, &v| a.max(fl(v).abs()));
        let s = mx / 127.0;
        if s < f32::MIN_POSITIVE {
            continue; // a zero row: q = 0, s = 0
        }
        out.scale[r] = s;
        for (q, &v) in out.q[r * cols..(r + 1) * cols].iter_mut().zip(row) {
            *q = (fl(v) / s).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
    Ok(out)
}

/// The activations `v` quantized by the i8 rule of the module docs: the
/// integers (one per element) and the scale σ (NaN if `v` holds ±∞ or a
/// NaN, 0 if every |v| is too small to scale, in both cases with `q = 0`).
///
/// ```
/// use rnncell::reference::quantize_i8_activations;
/// let (q, s) = quantize_i8_activations(&[0.5, -1.0, 0.25]);
/// assert_eq!((q, s), (vec![64, -127, 32], 1.0 / 127.0));
/// assert_eq!(quantize_i8_activations(&[0.0, -0.0]), (vec![0, 0], 0.0));
/// assert!(quantize_i8_activations(&[1.0, f32::INFINITY]).1.is_nan());
/// ```
pub fn quantize_i8_activations(v: &[f32]) -> (Vec<i8>, f32) {
    let mb = v
        .iter()
        .map(|x| x.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0);
    if mb >= 0x7f80_0000 {
        return (vec![0; v.len()], f32::NAN);
    }
    let m = f32::from_bits(mb);
    let inv = 127.0 / m;
    if !inv.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let q = v
        .iter()
        .map(|&x| (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, m / 127.0)
}

/// `Σ_k q[k] · a[k]` in i64 (exact), which the kernels compute in wrapping
/// i32: equal whenever it fits, which K ≤ [`crate::MAX_INT8_K`] ensures.
///
/// ```
/// use rnncell::reference::int_dot;
/// assert_eq!(int_dot(&[127; 3], &[-127; 3]), -3 * 127 * 127);
/// ```
pub fn int_dot(q: &[i8], a: &[i8]) -> i64 {
    q.iter().zip(a).map(|(&w, &x)| w as i64 * x as i64).sum()
}

/// The name of a tensor of layer `layer`, direction `dir`, as
/// [`LayerWeights`]' checks name it.
fn tensor_name(layer: usize, dir: usize, what: &str) -> String {
    let d = if dir == 1 { "_reverse" } else { "" };
    format!("layer {layer} {what}{d}")
}

/// One weight matrix as a precision stores it.
#[derive(Clone, Copy)]
enum Mat<'a> {
    /// f32 values (f32, or f16/bf16 rounded and widened).
    F32(&'a [f32]),
    /// i8w: integer weights and row scales.
    I8(&'a QuantizedMatrix),
    /// i8: integer weights and row scales, activations quantized.
    I8A(&'a QuantizedMatrix),
}

impl Mat<'_> {
    /// `init + M[row]·v` with exactly the operations of the precision: for
    /// f32 values `acc = fma(w, v[k], acc)` from `acc = init`, k ascending
    /// (weights flushed); for i8w the chain from +0 over the integers and
    /// one `fma(A, s, init)`.
    fn apply(self, init: f32, row: usize, v: &[f32]) -> f32 {
        match self {
            Mat::F32(m) => fma_row(init, m, row, v),
            Mat::I8(qm) => {
                let n = v.len();
                let a = qm.q[row * n..(row + 1) * n]
                    .iter()
                    .zip(v)
                    .fold(0.0f32, |a, (&q, &vk)| (q as f32).mul_add(vk, a));
                a.mul_add(qm.scale[row], init)
            }
            Mat::I8A(qm) => {
                let n = v.len();
                let (qv, sigma) = quantize_i8_activations(v);
                let i = int_dot(&qm.q[row * n..(row + 1) * n], &qv);
                let i = i32::try_from(i).expect("K ≤ MAX_INT8_K keeps the dot in i32");
                (i as f32).mul_add(qm.scale[row] * sigma, init)
            }
        }
    }

    /// Σ_k M[row, k] · v[k] in f64 on the stored values (`q·s` exactly for
    /// i8w).
    fn dot64(self, row: usize, v: &[f64]) -> f64 {
        match self {
            Mat::F32(m) => dot64(m, row, v),
            Mat::I8(qm) | Mat::I8A(qm) => {
                let n = v.len();
                let s = qm.scale[row] as f64;
                qm.q[row * n..(row + 1) * n]
                    .iter()
                    .zip(v)
                    .map(|(&q, &b)| (q as f64 * s) * b)
                    .sum()
            }
        }
    }
}

/// The weights of one layer and direction as `spec.precision` stores
/// them. `lw` holds the biases and peepholes (always as given) and, for
/// f32/f16/bf16, the matrices (rounded for f16/bf16); `quant` the i8w
/// matrices W, R, W_proj.
struct Stored<'a> {
    lw: Cow<'a, LayerWeights>,
    quant: Option<[QuantizedMatrix; 3]>,
    /// i8: the activations are quantized too.
    int8_act: bool,
    /// The direction (for its activations).
    dir: usize,
}

impl Stored<'_> {
    /// W, R and W_proj.
    fn mats(&self) -> [Mat<'_>; 3] {
        match &self.quant {
            Some([w, r, p]) if self.int8_act => [Mat::I8A(w), Mat::I8A(r), Mat::I8A(p)],
            Some([w, r, p]) => [Mat::I8(w), Mat::I8(r), Mat::I8(p)],
            None => [
                Mat::F32(&self.lw.w),
                Mat::F32(&self.lw.r),
                Mat::F32(&self.lw.proj),
            ],
        }
    }
}

/// `m` flushed and rounded by `round`, or an error naming the first
/// finite element that overflows `fmt`.
fn round_matrix(
    m: &[f32],
    cols: usize,
    round: fn(f32) -> f32,
    fmt: &str,
    tensor: &str,
) -> Result<Vec<f32>> {
    m.iter()
        .enumerate()
        .map(|(i, &v)| {
            let r = round(fl(v));
            if r.is_infinite() && v.is_finite() {
                // 70000 as "70000", 3.4e38 as "3.4e38" rather than 39 digits.
                let shown = if v.abs() < 1e7 {
                    format!("{v}")
                } else {
                    format!("{v:e}")
                };
                Err(Error::invalid(format!(
                    "{tensor}[{},{}]: {shown} overflows {fmt}",
                    i / cols.max(1),
                    i % cols.max(1)
                )))
            } else {
                Ok(r)
            }
        })
        .collect()
}

/// The stored form of layer `layer`, direction `dir` (shapes already
/// checked).
fn store<'a>(
    spec: &ModelSpec,
    layer: usize,
    dir: usize,
    lw: &'a LayerWeights,
) -> Result<Stored<'a>> {
    let rows = spec.cell.gates() * spec.hidden_size;
    let (cols_w, cols_r, hs) = (
        spec.layer_input_size(layer),
        spec.state_size(),
        spec.hidden_size,
    );
    let name = |what: &str| tensor_name(layer, dir, what);
    let rounded = |round: fn(f32) -> f32, fmt: &str| -> Result<Stored<'a>> {
        Ok(Stored {
            lw: Cow::Owned(LayerWeights {
                w: round_matrix(&lw.w, cols_w, round, fmt, &name("weight_ih"))?,
                r: round_matrix(&lw.r, cols_r, round, fmt, &name("weight_hh"))?,
                proj: round_matrix(&lw.proj, hs, round, fmt, &name("weight_hr"))?,
                ..lw.clone()
            }),
            quant: None,
            int8_act: false,
            dir,
        })
    };
    match spec.precision {
        WeightPrecision::F32 => Ok(Stored {
            lw: Cow::Borrowed(lw),
            quant: None,
            int8_act: false,
            dir,
        }),
        WeightPrecision::F16 => rounded(f16_round, "f16"),
        WeightPrecision::Bf16 => rounded(bf16_round, "bf16"),
        WeightPrecision::Int8Weights | WeightPrecision::Int8 => Ok(Stored {
            lw: Cow::Borrowed(lw),
            quant: Some([
                quantize_i8w(&lw.w, rows, cols_w, &name("weight_ih"))?,
                quantize_i8w(&lw.r, rows, cols_r, &name("weight_hh"))?,
                quantize_i8w(&lw.proj, spec.proj_size(), hs, &name("weight_hr"))?,
            ]),
            int8_act: spec.precision == WeightPrecision::Int8,
            dir,
        }),
    }
}

/// The weights of every layer and direction as `spec.precision` stores
/// them, in f32 (index `layer · D + direction`, like the input):
///
/// * F32: a copy;
/// * F16 / Bf16: W, R and W_proj flushed, rounded and widened (module
///   docs), everything else copied. A model built with precision F32 from
///   these weights returns the bits of the model built with the precision
///   from the original weights;
/// * Int8Weights and Int8: W, R and W_proj replaced by the dequantized `q·s`
///   (one f32 multiply). **For error bounds only**: the i8w model computes
///   (Σ q·x)·s, not Σ (q·s)·x, so it does not equal the f32 model of these
///   weights bit for bit.
///
/// Errors: the shape checks of [`plain_run`], and the precision's errors
/// (an f16/bf16 overflow, a non-finite i8w weight) naming the tensor.
///
/// ```
/// use rnncell::reference::round_weights;
/// use rnncell::*;
/// let spec = ModelSpec::new(CellKind::rnn_tanh(), 1, 1).precision(WeightPrecision::Bf16);
/// let mut lw = LayerWeights::zeros(1, 1, 1, 1);
/// lw.w[0] = 1.0 + 1.0 / 128.0 + 1.0 / 1024.0;
/// lw.b_w[0] = lw.w[0]; // biases stay f32
/// let r = round_weights(&spec, &[lw.clone()])?;
/// assert_eq!((r[0].w[0], r[0].b_w[0]), (1.0 + 1.0 / 128.0, lw.w[0]));
/// lw.r[0] = 70000.0;
/// let e = round_weights(&spec.precision(WeightPrecision::F16), &[lw]).unwrap_err();
/// assert!(e.to_string().contains("layer 0 weight_hh[0,0]: 70000 overflows f16"), "{e}");
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn round_weights(spec: &ModelSpec, weights: &[LayerWeights]) -> Result<Vec<LayerWeights>> {
    let stored = store_all(spec, weights)?;
    let dequant = |qm: &QuantizedMatrix, cols: usize| -> Vec<f32> {
        qm.q.iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * qm.scale[i / cols.max(1)])
            .collect()
    };
    Ok(stored
        .into_iter()
        .enumerate()
        .map(|(i, st)| match st.quant {
            None => st.lw.into_owned(),
            Some([w, r, p]) => LayerWeights {
                w: dequant(&w, spec.layer_input_size(i / spec.directions())),
                r: dequant(&r, spec.state_size()),
                proj: dequant(&p, spec.hidden_size),
                ..st.lw.into_owned()
            },
        })
        .collect())
}

/// Checks the shapes of every layer's weights, then stores each.
fn store_all<'a>(spec: &ModelSpec, weights: &'a [LayerWeights]) -> Result<Vec<Stored<'a>>> {
    check_weights(spec, weights)?;
    let d = spec.directions();
    weights
        .iter()
        .enumerate()
        .map(|(i, lw)| store(spec, i / d, i % d, lw))
        .collect()
}

// ---------------------------------------------------------------------------
// The f64 oracle: DESIGN §1, written out.

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
/// With a reduced `spec.precision` the matrices are first stored as the
/// precision stores them (module docs), on every call; an error from that
/// names the tensor as direction 0 (the step has no direction).
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
    oracle_cell(spec, layer, &store(spec, layer, 0, lw)?, x, st)
}

/// [`oracle_cell_step`] on stored weights.
fn oracle_cell(
    spec: &ModelSpec,
    layer: usize,
    sw: &Stored<'_>,
    x: &[f64],
    st: &mut RefState<f64>,
) -> Result<()> {
    let lw: &LayerWeights = &sw.lw;
    check_layer(spec, layer, lw, x, st)?;
    let [wm, rm, pm] = sw.mats();
    let hs = spec.hidden_size;
    let h = st.h.clone();
    let acts = spec.activations_of(sw.dir);
    let (fa, ga, ha) = (
        |x: f64| acts.f.eval_f64(x),
        |x: f64| acts.g.eval_f64(x),
        |x: f64| acts.h.eval_f64(x),
    );
    // W x + R h + b_w + b_r of gate `g`, unit `j`.
    let full = |g: usize, j: usize| {
        let row = g * hs + j;
        wm.dot64(row, x) + rm.dot64(row, &h) + lw.b_w[row] as f64 + lw.b_r[row] as f64
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
                    Coupling::None => (fa(ai), fa(af)),
                    Coupling::InputFromForget => (1.0 - fa(af), fa(af)),
                    Coupling::ForgetFromInput => (fa(ai), 1.0 - fa(ai)),
                };
                let g = ga(ag);
                let c_new = clip64(f * c + i * g, o.cell_clip);
                let ao = clip64(full(3, j) + peep(2, c_new), o.clip);
                st.c[j] = c_new;
                *mj = fa(ao) * ha(c_new);
            }
            if o.proj_size > 0 {
                for (p, hp) in st.h.iter_mut().enumerate() {
                    let b = lw.proj_bias.get(p).map_or(0.0, |&b| b as f64);
                    *hp = clip64(pm.dot64(p, &m) + b, o.proj_clip);
                }
            } else {
                st.h = m;
            }
        }
        CellKind::Gru(o) => {
            let r: Vec<f64> = (0..hs).map(|j| fa(clip64(full(0, j), o.clip))).collect();
            let rh: Vec<f64> = r.iter().zip(&h).map(|(a, b)| a * b).collect();
            for j in 0..hs {
                let z = fa(clip64(full(1, j), o.clip));
                let row = 2 * hs + j;
                let wx = wm.dot64(row, x) + lw.b_w[row] as f64;
                let pre = if o.linear_before_reset {
                    wx + r[j] * (rm.dot64(row, &h) + lw.b_r[row] as f64)
                } else {
                    wx + rm.dot64(row, &rh) + lw.b_r[row] as f64
                };
                let n = ga(clip64(pre, o.clip));
                st.h[j] = (1.0 - z) * n + z * h[j];
            }
        }
        CellKind::Rnn(o) => {
            for j in 0..hs {
                let a = clip64(full(0, j), o.clip);
                st.h[j] = fa(a);
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
/// replaces them with h' and c'. With a reduced `spec.precision` the
/// matrices are rounded or quantized first (module docs, "Weight
/// precisions"), on every call.
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
    plain_cell(spec, layer, &store(spec, layer, 0, lw)?, x, st)
}

/// [`plain_cell_step`] on stored weights. Every matrix product is written
/// as [`Mat::apply`] ("initial value + M[row]·v"), which is the f32 chain
/// or the i8w two-operation form.
fn plain_cell(
    spec: &ModelSpec,
    layer: usize,
    sw: &Stored<'_>,
    x: &[f32],
    st: &mut RefState<f32>,
) -> Result<()> {
    let lw: &LayerWeights = &sw.lw;
    check_layer(spec, layer, lw, x, st)?;
    let [wm, rm, pm] = sw.mats();
    let hs = spec.hidden_size;
    let acts = spec.activations_of(sw.dir);
    let (fa, ga, ha) = (
        |x: f32| acts.f.eval(x),
        |x: f32| acts.g.eval(x),
        |x: f32| acts.h.eval(x),
    );
    // The state as the library stores it: subnormals flushed.
    let h: Vec<f32> = st.h.iter().map(|&v| fl(v)).collect();
    st.c.iter_mut().for_each(|v| *v = fl(*v));
    // bias (b_w + b_r in f32, flushed), then x ascending, then h ascending.
    let full = |g: usize, j: usize| {
        let row = g * hs + j;
        let acc = fl(lw.b_w[row] + lw.b_r[row]);
        rm.apply(wm.apply(acc, row, x), row, &h)
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
                    Coupling::None => (fa(clip32(ai, o.clip)), fa(clip32(af, o.clip))),
                    Coupling::InputFromForget => {
                        let f = fa(clip32(af, o.clip));
                        (1.0 - f, f)
                    }
                    Coupling::ForgetFromInput => {
                        let i = fa(clip32(ai, o.clip));
                        (i, 1.0 - i)
                    }
                };
                let g = ga(clip32(ag, o.clip));
                let c_new = fl(clip32(f.mul_add(c, i * g), o.cell_clip));
                st.c[j] = c_new;
                if o.peephole {
                    ao = fl(lw.peephole[2 * hs + j]).mul_add(c_new, ao);
                }
                let og = fa(clip32(ao, o.clip));
                *mj = fl(og * ha(c_new));
            }
            if o.proj_size > 0 {
                for (p, hp) in st.h.iter_mut().enumerate() {
                    let b = fl(lw.proj_bias.get(p).copied().unwrap_or(0.0));
                    *hp = fl(clip32(pm.apply(b, p, &m), o.proj_clip));
                }
            } else {
                st.h = m;
            }
        }
        CellKind::Gru(o) if o.linear_before_reset => {
            for j in 0..hs {
                let r = fa(clip32(full(0, j), o.clip));
                let z = fa(clip32(full(1, j), o.clip));
                let row = 2 * hs + j;
                let nx = wm.apply(fl(lw.b_w[row]), row, x);
                let nh = rm.apply(fl(lw.b_r[row]), row, &h);
                let n = ga(clip32(r.mul_add(nh, nx), o.clip));
                st.h[j] = fl(z.mul_add(h[j] - n, n));
            }
        }
        CellKind::Gru(o) => {
            // Phase 1: r, z, bias + W_n x, and r⊙h for every unit.
            let mut z = vec![0.0f32; hs];
            let mut nx = vec![0.0f32; hs];
            let mut rh = vec![0.0f32; hs];
            for j in 0..hs {
                let r = fa(clip32(full(0, j), o.clip));
                z[j] = fa(clip32(full(1, j), o.clip));
                let row = 2 * hs + j;
                nx[j] = wm.apply(fl(lw.b_w[row] + lw.b_r[row]), row, x);
                rh[j] = fl(r * h[j]);
            }
            // Phase 2: n += R_n (r⊙h), then h'.
            for j in 0..hs {
                let n = ga(clip32(rm.apply(nx[j], 2 * hs + j, &rh), o.clip));
                st.h[j] = fl(z[j].mul_add(h[j] - n, n));
            }
        }
        CellKind::Rnn(o) => {
            for j in 0..hs {
                let a = clip32(full(0, j), o.clip);
                st.h[j] = fl(fa(a));
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
    cell: impl Fn(&ModelSpec, usize, &Stored<'_>, &[T], &mut RefState<T>) -> Result<()>,
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
    let stored = store_all(spec, weights)?;
    let mut input: Vec<T> = x.iter().map(|&v| T::from(v)).collect();
    for (l, st) in states.iter_mut().enumerate() {
        cell(spec, l, &stored[l], &input, st)?;
        input = st.h.clone();
    }
    Ok(input)
}

fn run_model<T: Copy + Default + From<f32> + Add<Output = T>>(
    spec: &ModelSpec,
    weights: &[LayerWeights],
    seq: &Sequence<'_>,
    cell: impl Fn(&ModelSpec, usize, &Stored<'_>, &[T], &mut RefState<T>) -> Result<()>,
) -> Result<RefOutput<T>> {
    let stored = store_all(spec, weights)?;
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
    if seq.layout != crate::SequenceLayout::Native || seq.lengths.is_some() {
        return Err(Error::Unsupported(
            "the reference runs take the native layout and usize seq_lens only".into(),
        ));
    }
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
                    cell(spec, l, &stored[idx], &cur[b][t], &mut st)?;
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
    run_model(spec, weights, seq, oracle_cell)
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
    run_model(spec, weights, seq, plain_cell)
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
    step_model(spec, weights, states, x, oracle_cell)
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
    step_model(spec, weights, states, x, plain_cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::tanh_f32;

    use crate::test_rng::Rng;

    /// The value of an IEEE binary16 bit pattern, decoded from the format's
    /// definition (NaN patterns give None).
    fn f16_value(b: u16) -> Option<f64> {
        let sign = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
        let (e, m) = ((b >> 10) & 0x1f, (b & 0x3ff) as f64);
        match e {
            0 => Some(sign * m * pow2(-24)),
            31 if m == 0.0 => Some(sign * f64::INFINITY),
            31 => None,
            _ => Some(sign * (1024.0 + m) * pow2(e as i32 - 25)),
        }
    }

    #[test]
    fn f16_round_keeps_every_f16_and_rounds_midpoints_to_even() {
        for b in 0..=u16::MAX {
            let Some(v) = f16_value(b) else {
                assert!(
                    f16_round(f32::from_bits(
                        0x7f80_0000 | ((b as u32 & 0x3ff) << 13) | 0x40_0000
                    ))
                    .is_nan()
                );
                continue;
            };
            assert_eq!(f16_round(v as f32) as f64, v, "f16 {b:#06x}");
            assert_eq!(f16_round(v as f32).to_bits(), (v as f32).to_bits());
            // The midpoint to the next value up in magnitude, and one f32
            // ulp on either side of it.
            if b & 0x7fff >= 0x7bff {
                continue;
            }
            let next = f16_value(b + 1).unwrap();
            let mid = (v + next) / 2.0;
            let mid32 = mid as f32;
            assert_eq!(mid32 as f64, mid); // midpoints are f32 values
            let even = if b & 1 == 0 { v } else { next };
            assert_eq!(f16_round(mid32) as f64, even, "midpoint above {b:#06x}");
            let toward_v = if mid > 0.0 {
                mid32.next_down()
            } else {
                mid32.next_up()
            };
            let toward_next = if mid > 0.0 {
                mid32.next_up()
            } else {
                mid32.next_down()
            };
            assert_eq!(
                f16_round(toward_v) as f64,
                v,
                "below the midpoint above {b:#06x}"
            );
            assert_eq!(
                f16_round(toward_next) as f64,
                next,
                "beyond the midpoint above {b:#06x}"
            );
        }
        // The largest finite value and the overflow threshold.
        assert_eq!(f16_round(65504.0), 65504.0);
        assert_eq!(f16_round(65519.996), 65504.0);
        assert_eq!(f16_round(65520.0), f32::INFINITY);
        assert_eq!(f16_round(-65520.0), f32::NEG_INFINITY);
        assert_eq!(f16_round(f32::MAX), f32::INFINITY);
        // Below half the smallest subnormal: a zero of the sign.
        assert_eq!(f16_round(2f32.powi(-25)).to_bits(), 0);
        assert_eq!(f16_round(-2f32.powi(-25)).to_bits(), 0x8000_0000);
        assert_eq!(f16_round(2f32.powi(-25).next_up()), 2f32.powi(-24));
        assert_eq!(f16_round(1e-40).to_bits(), 0);
    }

    #[test]
    fn bf16_round_keeps_every_bf16_and_rounds_midpoints_to_even() {
        for b in 0..=u16::MAX as u32 {
            let v = f32::from_bits(b << 16);
            if v.is_nan() {
                assert!(bf16_round(v).is_nan());
                assert_eq!(bf16_round(v).to_bits() & 0xffff, 0);
                continue;
            }
            assert_eq!(bf16_round(v).to_bits(), v.to_bits(), "bf16 {b:#06x}");
            if b & 0x7fff >= 0x7f7f {
                continue; // the largest finite value, ∞ and NaN
            }
            let mid = f32::from_bits((b << 16) | 0x8000);
            let even = if b & 1 == 0 { b } else { b + 1 };
            assert_eq!(
                bf16_round(mid).to_bits(),
                even << 16,
                "midpoint above {b:#06x}"
            );
            let below = f32::from_bits((b << 16) | 0x7fff);
            let above = f32::from_bits((b << 16) | 0x8001);
            assert_eq!(bf16_round(below).to_bits(), b << 16);
            assert_eq!(bf16_round(above).to_bits(), (b + 1) << 16);
        }
        // Beyond the largest finite bf16 (0x7f7f, 3.3895e38): the midpoint
        // to 2^128 and above round to ∞.
        assert_eq!(
            bf16_round(f32::from_bits(0x7f7f_7fff)).to_bits(),
            0x7f7f_0000
        );
        assert_eq!(bf16_round(f32::from_bits(0x7f7f_8000)), f32::INFINITY);
        assert_eq!(bf16_round(-f32::MAX), f32::NEG_INFINITY);
    }

    #[test]
    fn i8w_rule_q_in_range_row_max_to_127_clamp_inactive() {
        let mut rng = Rng(7);
        let scales = [1.0f32, 1e-3, 0.37, 40.0, 1e-30, 1e-36, 3e38, 2.2e-36];
        for (si, &sc) in scales.iter().enumerate() {
            for cols in [1usize, 2, 3, 7, 16, 33, 129] {
                let rows = 9;
                let mut m: Vec<f32> = (0..rows * cols).map(|_| rng.sym() * sc).collect();
                // Rows whose elements all sit at or near the max, ties at
                // half-integers, and negative maxima.
                for k in 0..cols {
                    m[cols + k] = sc * (1.0 - k as f32 * f32::EPSILON);
                    m[2 * cols + k] = -sc * ((k as f32 + 0.5) / cols as f32);
                }
                let qm = quantize_i8w(&m, rows, cols, "t").unwrap();
                for r in 0..rows {
                    let row = &m[r * cols..(r + 1) * cols];
                    let mx = row.iter().fold(0.0f32, |a, &v| a.max(fl(v).abs()));
                    let s = qm.scale[r];
                    let qs = &qm.q[r * cols..(r + 1) * cols];
                    if mx / 127.0 < f32::MIN_POSITIVE {
                        // A subnormal scale (scale 1e-36, 2.2e-36): a zero row.
                        assert_eq!(s.to_bits(), 0);
                        assert!(qs.iter().all(|&q| q == 0));
                        continue;
                    }
                    assert_eq!(s.to_bits(), (mx / 127.0).to_bits(), "scale {si} {cols} {r}");
                    let mut hit = false;
                    for (k, (&v, &q)) in row.iter().zip(qs).enumerate() {
                        // The unclamped value: the clamp is never active.
                        let u = (fl(v) / s).round_ties_even();
                        assert!(u.abs() <= 127.0, "row {r} col {k}: {v} / {s} = {u}");
                        assert_eq!(q as f32, u);
                        assert!((-127..=127).contains(&q));
                        if fl(v).abs() == mx {
                            assert_eq!(q.unsigned_abs(), 127, "row max -> ±127");
                            assert_eq!(q < 0, v < 0.0);
                            hit = true;
                        }
                    }
                    assert!(hit);
                }
            }
        }
        // The extreme ratios: m / (m / 127) for every f32 significand
        // near a power of two and for random ones.
        for bits in (0x3f80_0000u32..0x3f80_1000).chain(0x3fff_f000..0x4000_0000) {
            let m = f32::from_bits(bits);
            let s = m / 127.0;
            let u = (m / s).round_ties_even();
            assert_eq!(u, 127.0, "{m}");
            assert!(m / s <= 127.0 * (1.0 + f32::EPSILON));
        }
    }

    #[test]
    fn i8w_zero_rows_and_subnormal_scales() {
        let cols = 4;
        let m = [
            0.0,
            -0.0,
            0.0,
            0.0, // zeros
            1e-40,
            -1e-42,
            0.0,
            5e-39, // subnormals: flushed to zeros
            1e-37,
            -5e-38,
            2e-38,
            0.0, // max 1e-37: s = 7.9e-40 is subnormal
            127.0 * f32::MIN_POSITIVE,
            0.0,
            -f32::MIN_POSITIVE,
            0.0, // s = MIN_POSITIVE: kept
            1.0,
            0.0,
            -0.5,
            1e-40, // normal, with a subnormal element
        ];
        let qm = quantize_i8w(&m, 5, cols, "t").unwrap();
        assert_eq!(&qm.scale[..3], &[0.0, 0.0, 0.0]);
        assert!(qm.q[..12].iter().all(|&q| q == 0));
        assert_eq!(qm.scale[3], f32::MIN_POSITIVE);
        assert_eq!(&qm.q[12..16], &[127, 0, -1, 0]);
        assert_eq!(qm.scale[4], 1.0 / 127.0);
        assert_eq!(&qm.q[16..20], &[127, 0, -64, 0]);
        // An empty row (no columns) is a zero row too.
        let e = quantize_i8w(&[], 3, 0, "t").unwrap();
        assert_eq!(e.scale, vec![0.0; 3]);
        assert!(quantize_i8w(&[1.0; 5], 2, 3, "t").is_err());
    }

    fn lstm_proj_spec(p: WeightPrecision) -> (ModelSpec, Vec<LayerWeights>) {
        use crate::cell::spec::LstmOptions;
        let cell = CellKind::Lstm(LstmOptions {
            proj_size: 2,
            ..LstmOptions::default()
        });
        let spec = ModelSpec::new(cell, 9, 5)
            .direction(Direction::Bidirectional)
            .layers(2)
            .precision(p);
        let mut rng = Rng(3);
        let weights = (0..4)
            .map(|i| {
                let input = if i < 2 { 9 } else { 4 };
                let mut lw = LayerWeights::zeros(4, 5, input, 2);
                for v in lw.w.iter_mut().chain(&mut lw.r) {
                    *v = rng.sym();
                }
                lw.proj = (0..10).map(|_| rng.sym()).collect();
                lw
            })
            .collect();
        (spec, weights)
    }

    fn message(e: Error) -> String {
        match e {
            Error::InvalidArgument(m) => m,
            other => panic!("not InvalidArgument: {other:?}"),
        }
    }

    #[test]
    fn i8w_non_finite_weights_rejected_naming_the_tensor() {
        let x = vec![0.5f32; 2 * 9];
        let seq = Sequence::new(&x, 2, 1);
        for (bad, idx, tensor, at) in [
            (f32::NAN, 0, "layer 0 weight_ih", "[0,0]"),
            (f32::INFINITY, 1, "layer 0 weight_hh_reverse", "[3,1]"),
            (f32::NEG_INFINITY, 2, "layer 1 weight_hr", "[1,4]"),
        ] {
            let (spec, mut w) = lstm_proj_spec(WeightPrecision::Int8Weights);
            match idx {
                0 => w[0].w[0] = bad,
                1 => w[1].r[3 * 2 + 1] = bad,
                _ => w[2].proj[5 + 4] = bad,
            }
            let want = format!("{tensor}{at}");
            for e in [
                plain_run(&spec, &w, &seq).unwrap_err(),
                oracle_run(&spec, &w, &seq).unwrap_err(),
                round_weights(&spec, &w).unwrap_err(),
            ] {
                let m = message(e);
                assert!(m.starts_with(&want) && m.contains("not finite"), "{m}");
            }
            // f16 and bf16 keep NaN and ±∞ (as f32 does).
            for p in [WeightPrecision::F16, WeightPrecision::Bf16] {
                let r = round_weights(&spec.precision(p), &w).unwrap();
                let (a, b) = match idx {
                    0 => (r[0].w[0], w[0].w[0]),
                    1 => (r[1].r[3 * 2 + 1], w[1].r[3 * 2 + 1]),
                    _ => (r[2].proj[5 + 4], w[2].proj[5 + 4]),
                };
                assert!(a.is_nan() && b.is_nan() || a == b, "{p}: {a} vs {b}");
                plain_run(&spec.precision(p), &w, &seq).unwrap();
            }
        }
    }

    #[test]
    fn f16_bf16_overflow_rejected_naming_the_tensor() {
        let x = vec![0.5f32; 9];
        let seq = Sequence::new(&x, 1, 1);
        let cases = [
            (
                WeightPrecision::F16,
                0,
                70000.0,
                "layer 0 weight_ih[3,7]: 70000 overflows f16",
            ),
            (
                WeightPrecision::F16,
                1,
                -65520.0,
                "layer 0 weight_hh_reverse[3,1]: -65520 overflows f16",
            ),
            (
                WeightPrecision::Bf16,
                2,
                f32::MAX,
                "layer 1 weight_hr[1,4]: 3.4028235e38 overflows bf16",
            ),
        ];
        for (p, idx, bad, want) in cases {
            let (spec, mut w) = lstm_proj_spec(p);
            match idx {
                0 => w[0].w[3 * 9 + 7] = bad,
                1 => w[1].r[3 * 2 + 1] = bad,
                _ => w[2].proj[5 + 4] = bad,
            }
            for e in [
                plain_run(&spec, &w, &seq).unwrap_err(),
                oracle_run(&spec, &w, &seq).unwrap_err(),
                round_weights(&spec, &w).unwrap_err(),
            ] {
                assert_eq!(message(e), want);
            }
            // Just below the threshold is fine, and so is any f32 value
            // with f32 weights; biases are never rounded.
            let ok = if p == WeightPrecision::F16 {
                65519.0f32.copysign(bad)
            } else {
                f32::from_bits(0x7f7f_7fff)
            };
            match idx {
                0 => w[0].w[3 * 9 + 7] = ok,
                1 => w[1].r[3 * 2 + 1] = ok,
                _ => w[2].proj[5 + 4] = ok,
            }
            w[0].b_w[0] = f32::MAX;
            plain_run(&spec, &w, &seq).unwrap();
        }
    }

    /// The i8w pre-activation of a one-unit tanh RNN, written out from the
    /// module docs, equals `plain_cell_step`.
    #[test]
    fn i8w_rnn_step_is_the_two_chain_formula() {
        let spec =
            ModelSpec::new(CellKind::rnn_tanh(), 3, 1).precision(WeightPrecision::Int8Weights);
        let mut lw = LayerWeights::zeros(1, 1, 3, 1);
        lw.w = vec![0.3, -0.71, 0.05];
        lw.r = vec![-0.9];
        lw.b_w = vec![0.125];
        lw.b_r = vec![-0.03];
        let x = [0.7f32, 0.2, -1.3];
        let h = 0.4f32;
        let sw = 0.71f32 / 127.0;
        let qw: Vec<f32> = lw.w.iter().map(|&v| (v / sw).round_ties_even()).collect();
        let sr = 0.9f32 / 127.0;
        let qr = (-0.9f32 / sr).round_ties_even();
        assert_eq!(qr, -127.0);
        let ax = qw
            .iter()
            .zip(&x)
            .fold(0.0f32, |a, (&q, &v)| q.mul_add(v, a));
        let p = ax.mul_add(sw, 0.125f32 + -0.03);
        let a = qr.mul_add(h, 0.0).mul_add(sr, p);
        let mut st = RefState {
            h: vec![h],
            c: vec![],
        };
        plain_cell_step(&spec, 0, &lw, &x, &mut st).unwrap();
        assert_eq!(st.h[0].to_bits(), tanh_f32(a).to_bits());
        // The f32 result differs: the quantization is real.
        let mut st32 = RefState {
            h: vec![h],
            c: vec![],
        };
        plain_cell_step(&spec.precision(WeightPrecision::F32), 0, &lw, &x, &mut st32).unwrap();
        assert_ne!(st32.h[0], st.h[0]);
        assert!((st32.h[0] - st.h[0]).abs() < 1e-2);
        // The oracle on q·s.
        let mut o = RefState {
            h: vec![h as f64],
            c: vec![],
        };
        let x64 = x.map(|v| v as f64);
        oracle_cell_step(&spec, 0, &lw, &x64, &mut o).unwrap();
        let e: f64 = qw
            .iter()
            .zip(&x64)
            .map(|(&q, &v)| q as f64 * sw as f64 * v)
            .sum::<f64>()
            + qr as f64 * sr as f64 * h as f64
            + 0.125f32 as f64
            + (-0.03f32) as f64;
        assert_eq!(o.h[0], e.tanh());
    }
}
