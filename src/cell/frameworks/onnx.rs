//! ONNX: the tensors of an `LSTM` / `GRU` / `RNN` node (W, R, B = Wb ‖ Rb,
//! P = p_i ‖ p_o ‖ p_f, all directions in one tensor) and
//! [`Model::from_onnx`]. The gate orders (i o f c, z r h) are
//! [`Layout::Onnx`], converted in [`LayerWeights::from_layout`].

use crate::cell::fit::{self, Allowed, Api, Counts, Which};
use crate::cell::model::Model;
use crate::cell::spec::ModelSpec;
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::{Error, Result};
use crate::isa::Isa;

/// ONNX LSTM gates i o f c: `LSTM_GATES[canonical gate]` = ONNX gate
/// (canonical i f g o).
pub(crate) const LSTM_GATES: [usize; 4] = [0, 2, 3, 1];
/// ONNX GRU gates z r h (canonical r z n).
pub(crate) const GRU_GATES: [usize; 3] = [1, 0, 2];
/// What [`LayerWeights::from_layout`] calls W, R and the two biases.
pub(crate) const NAMES: [&str; 4] = ["W", "R", "B (input half)", "B (recurrent half)"];

/// ONNX P = p_i ‖ p_o ‖ p_f of one direction (`h` each), in the canonical
/// order p_i, p_f, p_o.
pub(crate) fn peephole_parts(pp: &[f32], h: usize) -> [&[f32]; 3] {
    [&pp[..h], &pp[2 * h..], &pp[h..2 * h]]
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

impl Model {
    /// Builds a model from ONNX LSTM/GRU/RNN node tensors, one
    /// [`OnnxTensors`] per layer (ONNX nodes are single-layer; a stack is a
    /// chain of nodes). Gate orders and the B = Wb ‖ Rb and P = p_i ‖ p_o ‖
    /// p_f layouts are converted. The spec's GRU form is used as given:
    /// ONNX's default (`linear_before_reset = 0`) is
    /// `CellKind::gru_for(Framework::Onnx)`, not [`CellKind::gru`]
    /// (PyTorch's form, ONNX `linear_before_reset = 1`).
    ///
    /// [`CellKind::gru`]: crate::CellKind::gru
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
        Model::onnx_for_c(spec, layers, isa).map_err(|e| {
            let counts: Vec<Counts> = layers
                .iter()
                .map(|t| Counts {
                    w: t.w.len(),
                    r: t.r.len(),
                    b_w: t.b.map(<[f32]>::len),
                    peephole: t.p.map(<[f32]>::len),
                    ..Counts::default()
                })
                .collect();
            e.with_hint(fit::hint(Layout::Onnx, &spec, &counts, Api::Rust))
        })
    }

    /// [`Model::from_onnx_with_isa`] without the hint in Rust names (the C
    /// builder adds its own).
    pub(crate) fn onnx_for_c(
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
}

fn expect_len(s: &[f32], n: usize, what: &str) -> Result<()> {
    if s.len() != n {
        return Err(Error::size(what, n, s.len()));
    }
    Ok(())
}

/// Entries of a spec in ONNX: one node per layer (its directions inside).
pub(crate) fn entries(spec: &ModelSpec) -> usize {
    spec.num_layers
}

/// The element count each tensor of node `i` may have (`fit`'s table for
/// this layout): `W` [D, G·H, in], `R` [D, G·H, Hr], `B` [D, 2·G·H] and
/// `P` [D, 3·H] optional; no separate recurrent bias or projection.
pub(crate) fn allowed(spec: &ModelSpec, i: usize, which: Which) -> Allowed {
    let d = fit::dims(spec, i);
    let dirs = (spec.directions(), "directions");
    match which {
        Which::W => Allowed::Required(vec![dirs, d.g, d.h, d.input]),
        Which::R => Allowed::Required(vec![dirs, d.g, d.h, d.hr]),
        Which::BW => Allowed::Optional(vec![dirs, (2, "2"), d.g, d.h]),
        Which::Peephole if d.peephole => Allowed::Optional(vec![dirs, (3, "3"), d.h]),
        _ => Allowed::Forbidden,
    }
}
