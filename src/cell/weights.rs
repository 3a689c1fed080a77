//! Weights of one layer and direction in the canonical form (PyTorch
//! orientation and gate order), and the conversion from a framework's
//! layout (DESIGN §1 table; each framework's gate order and tensor names
//! are in `cell/frameworks/`).

use super::frameworks::{keras, onnx, pytorch};
use super::spec::{CellKind, ModelSpec};
use crate::error::{Error, Result};
use crate::kernels::buf::try_vec;

/// `n` zeros, or [`Error::Allocation`] naming `what`.
fn try_zeros(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = try_vec(n, what)?;
    v.resize(n, 0.0);
    Ok(v)
}

/// A copy of `s`, or [`Error::Allocation`] naming `what`.
fn try_copy(s: &[f32], what: &str) -> Result<Vec<f32>> {
    let mut v = try_vec(s.len(), what)?;
    v.extend_from_slice(s);
    Ok(v)
}

/// The weights of one layer and one direction, in PyTorch's orientation and
/// gate order: LSTM rows i, f, g, o; GRU rows r, z, n; RNN one gate.
///
/// With G gates, H hidden units, `in` inputs to the layer and Hr = P (with
/// a projection) or H:
///
/// | field | shape | |
/// |---|---|---|
/// | `w` | [G·H, in] | `weight_ih` |
/// | `r` | [G·H, Hr] | `weight_hh` |
/// | `b_w` | [G·H] | `bias_ih` (zeros if the model has no bias) |
/// | `b_r` | [G·H] | `bias_hh` |
/// | `peephole` | [3·H] | p_i, p_f, p_o (LSTM with peepholes only) |
/// | `proj` | [P, H] | `weight_hr` (LSTM with projection only) |
/// | `proj_bias` | \[P\] | projection bias (optional) |
///
/// ```
/// use rnncell::LayerWeights;
/// let lw = LayerWeights::zeros(4, 8, 3, 8);
/// assert_eq!(lw.w.len(), 4 * 8 * 3);
/// assert_eq!(lw.r.len(), 4 * 8 * 8);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerWeights {
    /// Input weights [G·H, in].
    pub w: Vec<f32>,
    /// Recurrent weights [G·H, Hr].
    pub r: Vec<f32>,
    /// Input bias [G·H].
    pub b_w: Vec<f32>,
    /// Recurrent bias [G·H].
    pub b_r: Vec<f32>,
    /// Peephole weights [3·H] in the order p_i, p_f, p_o; empty if none.
    pub peephole: Vec<f32>,
    /// Projection [P, H]; empty if none.
    pub proj: Vec<f32>,
    /// Projection bias \[P\]; empty if none.
    pub proj_bias: Vec<f32>,
}

/// The tensors of one layer as a framework stores them, borrowed.
///
/// What each field means depends on the [`Layout`]; see
/// [`LayerWeights::from_layout`].
///
/// ```
/// use rnncell::LayerTensors;
/// let w = vec![0.0f32; 12];
/// let r = vec![0.0f32; 16];
/// let t = LayerTensors { w: &w, r: &r, ..LayerTensors::default() };
/// assert!(t.b_w.is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTensors<'a> {
    /// Input weights.
    pub w: &'a [f32],
    /// Recurrent weights.
    pub r: &'a [f32],
    /// Input bias (PyTorch `bias_ih`, first half of ONNX `B`, Keras `bias`
    /// or its row 0 with `reset_after`).
    pub b_w: Option<&'a [f32]>,
    /// Recurrent bias (PyTorch `bias_hh`, second half of ONNX `B`, Keras
    /// bias row 1 with `reset_after`).
    pub b_r: Option<&'a [f32]>,
    /// Peepholes: ONNX order p_i, p_o, p_f for [`Layout::Onnx`]; p_i, p_f,
    /// p_o otherwise.
    pub peephole: Option<&'a [f32]>,
    /// Projection [P, H] (PyTorch `weight_hr`); for Keras layout [H, P].
    pub proj: Option<&'a [f32]>,
    /// Projection bias \[P\].
    pub proj_bias: Option<&'a [f32]>,
}

/// A framework's weight layout: orientation and gate order.
///
/// ```
/// assert_ne!(rnncell::Layout::PyTorch, rnncell::Layout::Onnx);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// [G·H, in], LSTM i f g o, GRU r z n.
    PyTorch,
    /// [G·H, in] (one direction of W/R), LSTM i o f c, GRU z r h.
    Onnx,
    /// Transposed [in, G·H], LSTM i f c o, GRU z r h.
    Keras,
}

impl LayerWeights {
    /// All-zero weights of the given shape (G gates, H hidden, `input`
    /// inputs, `hr` recurrent inputs), without peepholes or projection.
    ///
    /// ```
    /// let lw = rnncell::LayerWeights::zeros(3, 4, 2, 4);
    /// assert_eq!(lw.b_w.len(), 12);
    /// ```
    pub fn zeros(gates: usize, hidden: usize, input: usize, hr: usize) -> LayerWeights {
        LayerWeights {
            w: vec![0.0; gates * hidden * input],
            r: vec![0.0; gates * hidden * hr],
            b_w: vec![0.0; gates * hidden],
            b_r: vec![0.0; gates * hidden],
            ..LayerWeights::default()
        }
    }

    /// Converts layer `layer` of `spec` from a framework layout.
    ///
    /// Every tensor's element count is checked; a mismatch is an
    /// [`Error::SizeMismatch`] naming the tensor. Allocates a copy of the
    /// tensors (missing biases and peepholes as zeros);
    /// [`Error::Allocation`] if it cannot.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::gru(), 2, 3);
    /// // ONNX order z, r, h: rows 0..3 are z.
    /// let w: Vec<f32> = (0..18).map(|v| v as f32).collect();
    /// let r = vec![0.0; 27];
    /// let t = LayerTensors { w: &w, r: &r, ..Default::default() };
    /// let lw = LayerWeights::from_layout(Layout::Onnx, &spec, 0, &t).unwrap();
    /// // canonical order r, z, n: the first rows are ONNX's r rows (3..6).
    /// assert_eq!(lw.w[0], 6.0);
    /// let bad = LayerTensors { w: &w[..17], r: &r, ..Default::default() };
    /// assert!(LayerWeights::from_layout(Layout::Onnx, &spec, 0, &bad).is_err());
    /// ```
    pub fn from_layout(
        layout: Layout,
        spec: &ModelSpec,
        layer: usize,
        t: &LayerTensors<'_>,
    ) -> Result<LayerWeights> {
        spec.validate()?;
        if layer >= spec.num_layers {
            return Err(Error::invalid(format!(
                "layer {layer} out of range (model has {})",
                spec.num_layers
            )));
        }
        let g = spec.cell.gates();
        let h = spec.hidden_size;
        let input = spec.layer_input_size(layer);
        let hr = spec.state_size();
        let p = spec.proj_size();
        let name = |n: &str| format!("layer {layer} {n}");
        // perm[canonical gate] = source gate; each framework's order and
        // names are in `cell/frameworks/`.
        let (lstm_perm, gru_perm, names) = match layout {
            Layout::PyTorch => (&pytorch::LSTM_GATES, &pytorch::GRU_GATES, pytorch::NAMES),
            Layout::Onnx => (&onnx::LSTM_GATES, &onnx::GRU_GATES, onnx::NAMES),
            Layout::Keras => (&keras::LSTM_GATES, &keras::GRU_GATES, keras::NAMES),
        };
        let perm: &[usize] = match spec.cell {
            CellKind::Lstm(_) => lstm_perm,
            CellKind::Gru(_) => gru_perm,
            CellKind::Rnn(_) => &[0],
        };
        let transposed = layout == Layout::Keras;
        let mat = |src: &[f32], cols: usize, what: &str| -> Result<Vec<f32>> {
            check(src, g * h * cols, &name(what))?;
            let mut out = try_zeros(g * h * cols, &name(what))?;
            for (cg, &sg) in perm.iter().enumerate() {
                for u in 0..h {
                    for k in 0..cols {
                        let v = if transposed {
                            src[k * g * h + sg * h + u]
                        } else {
                            src[(sg * h + u) * cols + k]
                        };
                        out[(cg * h + u) * cols + k] = v;
                    }
                }
            }
            Ok(out)
        };
        let vecp = |src: Option<&[f32]>, what: &str| -> Result<Vec<f32>> {
            match src {
                None => try_zeros(g * h, &name(what)),
                Some(s) => {
                    check(s, g * h, &name(what))?;
                    let mut out = try_zeros(g * h, &name(what))?;
                    for (cg, &sg) in perm.iter().enumerate() {
                        out[cg * h..(cg + 1) * h].copy_from_slice(&s[sg * h..(sg + 1) * h]);
                    }
                    Ok(out)
                }
            }
        };
        let [wn, rn, bwn, brn] = names;
        let mut lw = LayerWeights {
            w: mat(t.w, input, wn)?,
            r: mat(t.r, hr, rn)?,
            b_w: vecp(t.b_w, bwn)?,
            b_r: vecp(t.b_r, brn)?,
            ..LayerWeights::default()
        };
        let lstm = match spec.cell {
            CellKind::Lstm(o) => Some(o),
            _ => None,
        };
        match (t.peephole, lstm) {
            (Some(pp), Some(o)) if o.peephole => {
                check(pp, 3 * h, &name("peephole"))?;
                lw.peephole = try_vec(3 * h, &name("peephole"))?;
                if layout == Layout::Onnx {
                    for part in onnx::peephole_parts(pp, h) {
                        lw.peephole.extend_from_slice(part);
                    }
                } else {
                    lw.peephole.extend_from_slice(pp);
                }
            }
            (None, Some(o)) if o.peephole => lw.peephole = try_zeros(3 * h, &name("peephole"))?,
            (Some(_), _) => {
                return Err(Error::invalid(format!(
                    "{}: peephole weights given but the spec has no peepholes",
                    name("peephole")
                )));
            }
            _ => {}
        }
        match (t.proj, p) {
            (Some(pw), p) if p > 0 => {
                check(pw, p * h, &name("weight_hr"))?;
                lw.proj = if transposed {
                    let mut out = try_zeros(p * h, &name("weight_hr"))?;
                    for i in 0..p {
                        for k in 0..h {
                            out[i * h + k] = pw[k * p + i];
                        }
                    }
                    out
                } else {
                    try_copy(pw, &name("weight_hr"))?
                };
            }
            (None, p) if p > 0 => {
                return Err(Error::invalid(format!(
                    "{}: the spec has proj_size {p} but no projection weights were given",
                    name("weight_hr")
                )));
            }
            (Some(_), _) => {
                return Err(Error::invalid(format!(
                    "{}: projection weights given but the spec has proj_size 0",
                    name("weight_hr")
                )));
            }
            _ => {}
        }
        let proj_bias = matches!(lstm, Some(o) if o.proj_bias);
        match t.proj_bias {
            Some(pb) if proj_bias => {
                check(pb, p, &name("proj_bias"))?;
                lw.proj_bias = try_copy(pb, &name("proj_bias"))?;
            }
            None if proj_bias => lw.proj_bias = try_zeros(p, &name("proj_bias"))?,
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{}: projection bias given but the spec has proj_bias = false",
                    name("proj_bias")
                )));
            }
            None => {}
        }
        Ok(lw)
    }

    /// Converts GRU weights written for the textbook form of the founding
    /// article, h' = z⊙n + (1 − z)⊙h (z weighs the candidate), into the
    /// framework form h' = (1 − z)⊙n + z⊙h that rnncell computes, by
    /// negating the z rows of W, R and both biases (σ(−a) = 1 − σ(a)).
    /// `hidden` is H. Applying it twice restores the original.
    ///
    /// ```
    /// let mut lw = rnncell::LayerWeights::zeros(3, 2, 1, 2);
    /// lw.b_w[2] = 1.5; // first z row (canonical order r, z, n)
    /// lw.gru_from_textbook(2);
    /// assert_eq!(lw.b_w[2], -1.5);
    /// ```
    pub fn gru_from_textbook(&mut self, hidden: usize) {
        let zr = hidden..2 * hidden;
        let cols_w = self.w.len() / (3 * hidden).max(1);
        let cols_r = self.r.len() / (3 * hidden).max(1);
        for v in &mut self.w[zr.start * cols_w..zr.end * cols_w] {
            *v = -*v;
        }
        for v in &mut self.r[zr.start * cols_r..zr.end * cols_r] {
            *v = -*v;
        }
        for b in [&mut self.b_w, &mut self.b_r] {
            if b.len() >= zr.end {
                for v in &mut b[zr.clone()] {
                    *v = -*v;
                }
            }
        }
    }

    /// Checks every tensor against layer `layer` of `spec`.
    pub(crate) fn check(&self, spec: &ModelSpec, layer: usize, dir: usize) -> Result<()> {
        let g = spec.cell.gates();
        let h = spec.hidden_size;
        let p = spec.proj_size();
        let name = |n: &str| {
            let d = if dir == 1 { "_reverse" } else { "" };
            format!("layer {layer} {n}{d}")
        };
        check(
            &self.w,
            g * h * spec.layer_input_size(layer),
            &name("weight_ih"),
        )?;
        check(&self.r, g * h * spec.state_size(), &name("weight_hh"))?;
        check(&self.b_w, g * h, &name("bias_ih"))?;
        check(&self.b_r, g * h, &name("bias_hh"))?;
        let (peep, pbias) = match spec.cell {
            CellKind::Lstm(o) => (o.peephole, o.proj_bias),
            _ => (false, false),
        };
        check(
            &self.peephole,
            if peep { 3 * h } else { 0 },
            &name("peephole"),
        )?;
        check(&self.proj, p * h, &name("weight_hr"))?;
        check(
            &self.proj_bias,
            if pbias { p } else { 0 },
            &name("proj_bias"),
        )?;
        Ok(())
    }
}

fn check(s: &[f32], expected: usize, what: &str) -> Result<()> {
    if s.len() != expected {
        return Err(Error::size(what, expected, s.len()));
    }
    Ok(())
}
