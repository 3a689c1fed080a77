//! Activation functions in the C spec: `RnncellActivationKind`,
//! `RnncellActivationSpec` and `RnncellSpec.activations[direction][slot]`
//! to and from `ModelSpec::activations`.

use super::RnncellSpec;
use crate::cell::activation::{Activation, Activations};
use crate::cell::spec::{CellKind, ModelSpec, RnnActivation};
use crate::error::Error;

/// An activation function of `RnncellActivationSpec.kind`: ONNX's eleven
/// (same names; alpha and beta as ONNX defines them) and Keras 3's hard sigmoid.
/// 0 is "the cell's default for this slot" (sigmoid for f, tanh for g and
/// h; an RNN's f follows `rnn_activation`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellActivationKind {
    /// The cell's default for the slot (what `rnncell_spec_init` writes).
    Default = 0,
    /// 1 / (1 + e^-x).
    Sigmoid = 1,
    /// tanh(x).
    Tanh = 2,
    /// max(0, x).
    Relu = 3,
    /// min(1, max(0, alpha*x + beta)) (ONNX HardSigmoid; tf.keras 2's
    /// `hard_sigmoid` is alpha 0.2, beta 0.5).
    HardSigmoid = 4,
    /// x if x >= 0, else alpha*x.
    LeakyRelu = 5,
    /// x if x > alpha, else 0.
    ThresholdedRelu = 6,
    /// alpha*tanh(beta*x).
    ScaledTanh = 7,
    /// alpha*x + beta (Keras `linear`: alpha 1, beta 0).
    Affine = 8,
    /// x if x >= 0, else alpha*(e^x - 1).
    Elu = 9,
    /// x / (1 + |x|).
    Softsign = 10,
    /// ln(1 + e^x).
    Softplus = 11,
    /// Keras 3's `hard_sigmoid`: min(6, max(0, x + 3)) / 6 (no parameters).
    KerasHardSigmoid = 12,
}

/// One activation function of a spec: `kind` is an `RnncellActivationKind`;
/// `alpha` and `beta` are its parameters, used exactly as given (no
/// defaults are filled in: ONNX HardSigmoid's usual values are alpha 0.2,
/// beta 0.5, LeakyRelu's alpha 0.01, Elu's alpha 1). A parameter the
/// function does not take must be 0, and every parameter must be finite.
/// Frozen: this struct is an array element and never grows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RnncellActivationSpec {
    /// An `RnncellActivationKind` (0: the cell's default).
    pub kind: u32,
    /// alpha (HardSigmoid, LeakyRelu, ThresholdedRelu, ScaledTanh, Affine,
    /// Elu), else 0.
    pub alpha: f32,
    /// beta (HardSigmoid, ScaledTanh, Affine), else 0.
    pub beta: f32,
}

/// Slot names, for messages.
const SLOTS: [&str; 3] = ["f", "g", "h"];

/// Slots a cell uses: LSTM f, g, h; GRU f, g; RNN f.
fn used_slots(cell: &CellKind) -> usize {
    match cell {
        CellKind::Lstm(_) => 3,
        CellKind::Gru(_) => 2,
        CellKind::Rnn(_) => 1,
    }
}

fn invalid(d: usize, s: usize, what: std::fmt::Arguments<'_>) -> Error {
    Error::InvalidArgument(format!("spec.activations[{d}][{s}] ({}): {what}", SLOTS[s]))
}

/// The function of one slot; `None` for kind 0 (the default).
fn from_c(a: RnncellActivationSpec, d: usize, s: usize) -> Result<Option<Activation>, Error> {
    // (function, takes alpha, takes beta)
    let (f, ta, tb) = match a.kind {
        0 => (None, false, false),
        1 => (Some(Activation::Sigmoid), false, false),
        2 => (Some(Activation::Tanh), false, false),
        3 => (Some(Activation::Relu), false, false),
        4 => (
            Some(Activation::HardSigmoid {
                alpha: a.alpha,
                beta: a.beta,
            }),
            true,
            true,
        ),
        5 => (Some(Activation::LeakyRelu { alpha: a.alpha }), true, false),
        6 => (
            Some(Activation::ThresholdedRelu { alpha: a.alpha }),
            true,
            false,
        ),
        7 => (
            Some(Activation::ScaledTanh {
                alpha: a.alpha,
                beta: a.beta,
            }),
            true,
            true,
        ),
        8 => (
            Some(Activation::Affine {
                alpha: a.alpha,
                beta: a.beta,
            }),
            true,
            true,
        ),
        9 => (Some(Activation::Elu { alpha: a.alpha }), true, false),
        10 => (Some(Activation::Softsign), false, false),
        11 => (Some(Activation::Softplus), false, false),
        12 => (Some(Activation::KerasHardSigmoid), false, false),
        k => {
            return Err(invalid(
                d,
                s,
                format_args!("kind {k} is not an RnncellActivationKind (0 to 12)"),
            ));
        }
    };
    // -0.0 counts as 0 (`!= 0.0` is false for it); NaN is not 0.
    for (name, v, takes) in [("alpha", a.alpha, ta), ("beta", a.beta, tb)] {
        if !takes && v != 0.0 {
            return Err(invalid(
                d,
                s,
                format_args!(
                    "{name} is {v}, but {} takes no {name} (leave it 0)",
                    f.map_or("the default", Activation::name)
                ),
            ));
        }
        if takes && !v.is_finite() {
            return Err(invalid(
                d,
                s,
                format_args!("{name} must be finite, got {v}"),
            ));
        }
    }
    Ok(f)
}

/// The cell's default activations (what kind 0 stands for).
fn defaults(cell: &CellKind) -> Activations {
    match cell {
        CellKind::Rnn(o) => Activations {
            f: match o.activation {
                RnnActivation::Tanh => Activation::Tanh,
                RnnActivation::Relu => Activation::Relu,
            },
            ..Activations::STANDARD
        },
        _ => Activations::STANDARD,
    }
}

impl RnncellSpec {
    /// `ModelSpec::activations` from `activations[2][3]` for a model of
    /// `cell` with `directions` directions (`None`: not known yet, a loader
    /// reads it from the file: the backward direction is then kept for the
    /// Rust validation to accept or reject). All slots 0: `None`. A
    /// direction whose slots are all 0 is the forward one's (direction 0)
    /// or the defaults (direction 0). Errors name `spec.activations[d][s]`.
    pub(crate) fn model_activations(
        &self,
        cell: &CellKind,
        directions: Option<usize>,
    ) -> Result<Option<[Activations; 2]>, Error> {
        let mut set = [[None; 3]; 2];
        for (d, dir) in self.activations.iter().enumerate() {
            for (s, a) in dir.iter().enumerate() {
                set[d][s] = from_c(*a, d, s)?;
            }
        }
        if set.iter().flatten().all(Option::is_none) {
            return Ok(None);
        }
        let used = used_slots(cell);
        for (d, dir) in set.iter().enumerate() {
            for (s, f) in dir.iter().enumerate().skip(used) {
                // A slot the cell has no function for: only its default
                // (tanh) may be named.
                if let Some(f) = f
                    && *f != Activation::Tanh
                {
                    return Err(invalid(
                        d,
                        s,
                        format_args!(
                            "{} is set, but {} has no {} function (leave it 0)",
                            f.name(),
                            match cell {
                                CellKind::Lstm(_) => "an LSTM",
                                CellKind::Gru(_) => "a GRU",
                                CellKind::Rnn(_) => "an RNN",
                            },
                            SLOTS[s]
                        ),
                    ));
                }
            }
        }
        if directions == Some(1) && set[1].iter().any(Option::is_some) {
            let s = set[1].iter().position(Option::is_some).unwrap_or(0);
            return Err(invalid(
                1,
                s,
                format_args!(
                    "set, but the model is not bidirectional (direction 1 is only read for \
                     RNNCELL_DIRECTION_BIDIRECTIONAL)"
                ),
            ));
        }
        if let CellKind::Rnn(o) = cell
            && o.activation == RnnActivation::Relu
        {
            for (d, dir) in set.iter().enumerate() {
                if let Some(f) = dir[0]
                    && f != Activation::Relu
                {
                    return Err(invalid(
                        d,
                        0,
                        format_args!(
                            "{}, but spec.rnn_activation is RNNCELL_ACTIVATION_RELU (set \
                             rnn_activation to tanh, or leave this slot 0)",
                            f.name()
                        ),
                    ));
                }
            }
        }
        let base = defaults(cell);
        let resolve = |dir: &[Option<Activation>; 3]| Activations {
            f: dir[0].unwrap_or(base.f),
            g: dir[1].unwrap_or(base.g),
            h: dir[2].unwrap_or(base.h),
        };
        let fwd = resolve(&set[0]);
        let bwd = if set[1].iter().all(Option::is_none) {
            fwd
        } else {
            resolve(&set[1])
        };
        Ok(Some([fwd, bwd]))
    }

    /// Writes `s.activations` into `activations[2][3]` (inverse of
    /// `model_activations`): every slot the cell uses, of every direction
    /// the model has, explicitly; the others 0.
    pub(crate) fn set_activations(&mut self, s: &ModelSpec) {
        self.activations = Default::default();
        let Some(acts) = s.activations else {
            return;
        };
        for (d, a) in acts.iter().take(s.directions()).enumerate() {
            for (slot, f) in [a.f, a.g, a.h]
                .into_iter()
                .take(used_slots(&s.cell))
                .enumerate()
            {
                self.activations[d][slot] = to_c(f);
            }
        }
    }
}

/// The C form of one function.
fn to_c(f: Activation) -> RnncellActivationSpec {
    use RnncellActivationKind as K;
    let (kind, alpha, beta) = match f {
        Activation::Sigmoid => (K::Sigmoid, 0.0, 0.0),
        Activation::Tanh => (K::Tanh, 0.0, 0.0),
        Activation::Relu => (K::Relu, 0.0, 0.0),
        Activation::HardSigmoid { alpha, beta } => (K::HardSigmoid, alpha, beta),
        Activation::LeakyRelu { alpha } => (K::LeakyRelu, alpha, 0.0),
        Activation::ThresholdedRelu { alpha } => (K::ThresholdedRelu, alpha, 0.0),
        Activation::ScaledTanh { alpha, beta } => (K::ScaledTanh, alpha, beta),
        Activation::Affine { alpha, beta } => (K::Affine, alpha, beta),
        Activation::Elu { alpha } => (K::Elu, alpha, 0.0),
        Activation::Softsign => (K::Softsign, 0.0, 0.0),
        Activation::Softplus => (K::Softplus, 0.0, 0.0),
        Activation::KerasHardSigmoid => (K::KerasHardSigmoid, 0.0, 0.0),
    };
    RnncellActivationSpec {
        kind: kind as u32,
        alpha,
        beta,
    }
}
