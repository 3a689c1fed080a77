//! The activation functions of the recurrent cells: ONNX's f, g and h
//! (LSTM gates i, f, o use f, the cell candidate g, the output h = o ⊙
//! h(c'); GRU z, r use f and the candidate g; the RNN uses f), under the
//! names ONNX and Keras give them.
//!
//! Every function is computed by one shared sequence of IEEE operations
//! (kernels/act.rs) on every ISA, so non-default activations keep the
//! bit-identity across ISAs; [`Activation::eval`] is that arithmetic on
//! one value and [`Activation::eval_f64`] the exact definition, and
//! `tests/activations.rs` bounds the difference per function.

use crate::cell::spec::CellKind;
use crate::error::{Error, Result};

/// One activation function, with its parameters.
///
/// ```
/// use rnncell::Activation;
/// let a = Activation::from_onnx("HardSigmoid", None, None).unwrap();
/// assert_eq!(a, Activation::HardSigmoid { alpha: 0.2, beta: 0.5 });
/// assert_eq!(a.eval(1.0), 0.7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh(x).
    Tanh,
    /// max(0, x).
    Relu,
    /// min(1, max(0, α·x + β)) (ONNX; Keras 2's `hard_sigmoid` is
    /// α = 0.2, β = 0.5).
    HardSigmoid {
        /// α
        alpha: f32,
        /// β
        beta: f32,
    },
    /// x if x ≥ 0, else α·x.
    LeakyRelu {
        /// α
        alpha: f32,
    },
    /// x if x > α, else 0.
    ThresholdedRelu {
        /// α
        alpha: f32,
    },
    /// α·tanh(β·x).
    ScaledTanh {
        /// α
        alpha: f32,
        /// β
        beta: f32,
    },
    /// α·x + β (Keras `linear` is α = 1, β = 0).
    Affine {
        /// α
        alpha: f32,
        /// β
        beta: f32,
    },
    /// x if x ≥ 0, else α·(e^x − 1).
    Elu {
        /// α
        alpha: f32,
    },
    /// x / (1 + |x|).
    Softsign,
    /// ln(1 + e^x).
    Softplus,
    /// Keras 3's `hard_sigmoid`: relu6(x + 3) / 6 = min(6, max(0, x + 3)) / 6.
    KerasHardSigmoid,
}

/// ONNX's activation names (matched case-insensitively, as ONNX Runtime
/// does) and whether each takes α and β.
const ONNX: [(&str, bool, bool); 11] = [
    ("Sigmoid", false, false),
    ("Tanh", false, false),
    ("Relu", false, false),
    ("HardSigmoid", true, true),
    ("LeakyRelu", true, false),
    ("ThresholdedRelu", true, false),
    ("ScaledTanh", true, true),
    ("Affine", true, true),
    ("Elu", true, false),
    ("Softsign", false, false),
    ("Softplus", false, false),
];

impl Activation {
    /// The ONNX activation `name` (case-insensitive) with its `activation_alpha`
    /// / `activation_beta` values. A missing α or β takes **ONNX Runtime's**
    /// value: LeakyRelu α = 0.01, HardSigmoid α = 0.2, β = 0.5, Elu α = 1,
    /// and 0 for every other (so ThresholdedRelu without α thresholds at 0,
    /// where the operator spec says 1.0: pass `Some(1.0)` for the spec's).
    /// α or β given to a function that takes none is an error.
    ///
    /// ```
    /// use rnncell::Activation;
    /// let t = Activation::from_onnx("thresholdedrelu", None, None).unwrap();
    /// assert_eq!(t, Activation::ThresholdedRelu { alpha: 0.0 });
    /// assert!(Activation::from_onnx("Gelu", None, None).is_err());
    /// ```
    pub fn from_onnx(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Activation> {
        let Some(&(canon, takes_a, takes_b)) =
            ONNX.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name))
        else {
            return Err(Error::Unsupported(format!(
                "activation {name:?}: ONNX defines {}",
                ONNX.map(|(n, ..)| n).join(", ")
            )));
        };
        if (alpha.is_some() && !takes_a) || (beta.is_some() && !takes_b) {
            return Err(Error::invalid(format!(
                "activation {canon} takes no {}",
                if alpha.is_some() && !takes_a {
                    "alpha"
                } else {
                    "beta"
                }
            )));
        }
        let a = |d: f32| alpha.unwrap_or(d);
        let b = |d: f32| beta.unwrap_or(d);
        let act = match canon {
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "Relu" => Activation::Relu,
            "HardSigmoid" => Activation::HardSigmoid {
                alpha: a(0.2),
                beta: b(0.5),
            },
            "LeakyRelu" => Activation::LeakyRelu { alpha: a(0.01) },
            "ThresholdedRelu" => Activation::ThresholdedRelu { alpha: a(0.0) },
            "ScaledTanh" => Activation::ScaledTanh {
                alpha: a(0.0),
                beta: b(0.0),
            },
            "Affine" => Activation::Affine {
                alpha: a(0.0),
                beta: b(0.0),
            },
            "Elu" => Activation::Elu { alpha: a(1.0) },
            "Softsign" => Activation::Softsign,
            _ => Activation::Softplus,
        };
        act.validate()?;
        Ok(act)
    }

    /// The ONNX name (`Sigmoid`, `HardSigmoid`, …); Keras 3's hard sigmoid,
    /// which ONNX cannot express exactly, is `KerasHardSigmoid`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Relu => "Relu",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::ScaledTanh { .. } => "ScaledTanh",
            Activation::Affine { .. } => "Affine",
            Activation::Elu { .. } => "Elu",
            Activation::Softsign => "Softsign",
            Activation::Softplus => "Softplus",
            Activation::KerasHardSigmoid => "KerasHardSigmoid",
        }
    }

    /// The Keras 3 activation `name`: `sigmoid`, `tanh`, `relu`, `linear`,
    /// `hard_sigmoid` (relu6(x + 3) / 6), `softsign`, `softplus`, `elu`
    /// (α = 1), `leaky_relu` (negative slope 0.2). For tf.keras 2 use
    /// [`Activation::from_keras2`].
    ///
    /// ```
    /// use rnncell::Activation;
    /// assert_eq!(Activation::from_keras("hard_sigmoid").unwrap(), Activation::KerasHardSigmoid);
    /// ```
    pub fn from_keras(name: &str) -> Result<Activation> {
        Ok(match name {
            "hard_sigmoid" => Activation::KerasHardSigmoid,
            "leaky_relu" => Activation::LeakyRelu { alpha: 0.2 },
            _ => Activation::keras_common(name, "Keras 3")?,
        })
    }

    /// The tf.keras 2 activation `name`: as [`Activation::from_keras`]
    /// but `hard_sigmoid` is min(1, max(0, 0.2·x + 0.5)) and there is no
    /// `leaky_relu`.
    ///
    /// ```
    /// use rnncell::Activation;
    /// let h = Activation::from_keras2("hard_sigmoid").unwrap();
    /// assert_eq!(h, Activation::HardSigmoid { alpha: 0.2, beta: 0.5 });
    /// ```
    pub fn from_keras2(name: &str) -> Result<Activation> {
        Ok(match name {
            "hard_sigmoid" => Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            _ => Activation::keras_common(name, "tf.keras 2")?,
        })
    }

    fn keras_common(name: &str, which: &str) -> Result<Activation> {
        Ok(match name {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "linear" => Activation::Affine {
                alpha: 1.0,
                beta: 0.0,
            },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            "elu" => Activation::Elu { alpha: 1.0 },
            _ => {
                return Err(Error::Unsupported(format!(
                    "{which} activation {name:?}: supported are sigmoid, tanh, relu, linear, \
                     hard_sigmoid, softsign, softplus, elu{}",
                    if which == "Keras 3" {
                        ", leaky_relu"
                    } else {
                        ""
                    }
                )));
            }
        })
    }

    /// Checks that α and β are finite.
    pub fn validate(self) -> Result<()> {
        let (a, b) = self.params();
        for (what, v) in [("alpha", a), ("beta", b)] {
            if !v.is_finite() {
                return Err(Error::invalid(format!(
                    "activation {} {what} must be finite, got {v}",
                    self.name()
                )));
            }
        }
        Ok(())
    }

    /// (α, β), 0 where the function has none.
    fn params(self) -> (f32, f32) {
        match self {
            Activation::HardSigmoid { alpha, beta }
            | Activation::ScaledTanh { alpha, beta }
            | Activation::Affine { alpha, beta } => (alpha, beta),
            Activation::LeakyRelu { alpha }
            | Activation::ThresholdedRelu { alpha }
            | Activation::Elu { alpha } => (alpha, 0.0),
            _ => (0.0, 0.0),
        }
    }

    /// The function as every ISA's kernels compute it (one value).
    ///
    /// ```
    /// use rnncell::Activation;
    /// assert_eq!(Activation::Softsign.eval(1.0), 0.5);
    /// assert_eq!(Activation::Tanh.eval(0.3), rnncell::tanh_f32(0.3));
    /// ```
    pub fn eval(self, x: f32) -> f32 {
        crate::kernels::act::eval_f32(&self, x)
    }

    /// The exact definition in f64 (the accuracy reference).
    ///
    /// ```
    /// use rnncell::Activation;
    /// assert_eq!(Activation::Elu { alpha: 2.0 }.eval_f64(-1.0), 2.0 * ((-1f64).exp() - 1.0));
    /// ```
    pub fn eval_f64(self, x: f64) -> f64 {
        let (a, b) = self.params();
        let (a, b) = (a as f64, b as f64);
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::Relu => {
                if x > 0.0 || x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            Activation::HardSigmoid { .. } => (a * x + b).clamp(0.0, 1.0),
            Activation::LeakyRelu { .. } => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Activation::ThresholdedRelu { .. } => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { .. } => a * (b * x).tanh(),
            Activation::Affine { .. } => a * x + b,
            Activation::Elu { .. } => {
                if x >= 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Activation::KerasHardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        }
    }
}

/// The activations of one direction of a cell: f (LSTM i, f, o; GRU z, r;
/// the RNN), g (LSTM and GRU candidate) and h (LSTM output, h = o ⊙
/// h(c')). A GRU has no h and an RNN neither g nor h: those stay at
/// [`Activations::STANDARD`]'s values.
///
/// ```
/// use rnncell::*;
/// let keras2 = Activations {
///     f: Activation::from_keras2("hard_sigmoid")?,
///     ..Activations::STANDARD
/// };
/// let spec = ModelSpec::new(CellKind::lstm(), 8, 16).activations(keras2);
/// spec.validate()?;
/// assert_eq!(spec.activations_of(0).f, Activation::HardSigmoid { alpha: 0.2, beta: 0.5 });
/// # Ok::<(), rnncell::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activations {
    /// The gates' function.
    pub f: Activation,
    /// The candidate's function.
    pub g: Activation,
    /// The LSTM output's function.
    pub h: Activation,
}

impl Activations {
    /// Sigmoid, tanh, tanh: the LSTM and GRU of every framework (the
    /// tanh RNN uses tanh as its f; see [`crate::ModelSpec::activations_of`]).
    pub const STANDARD: Activations = Activations {
        f: Activation::Sigmoid,
        g: Activation::Tanh,
        h: Activation::Tanh,
    };

    /// The activations of an ONNX node of cell `cell` with `directions`
    /// directions from its `activations`, `activation_alpha` and
    /// `activation_beta` attributes (empty lists when absent): the names
    /// are f, g, h (LSTM), f, g (GRU) or f (RNN) per direction, forward
    /// first; α and β values are consumed in that order by the functions
    /// that take them ([`Activation::from_onnx`] for the defaults). Every
    /// value must be used.
    ///
    /// ```
    /// use rnncell::*;
    /// let a = Activations::from_onnx(&CellKind::gru(), 1, &["HardSigmoid", "Softsign"], &[0.3], &[])?;
    /// assert_eq!(a[0].f, Activation::HardSigmoid { alpha: 0.3, beta: 0.5 });
    /// assert_eq!(a[0].g, Activation::Softsign);
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    pub fn from_onnx(
        cell: &CellKind,
        directions: usize,
        names: &[&str],
        alphas: &[f32],
        betas: &[f32],
    ) -> Result<[Activations; 2]> {
        let per = match cell {
            CellKind::Lstm(_) => 3,
            CellKind::Gru(_) => 2,
            CellKind::Rnn(_) => 1,
        };
        let mut out = [Activations::STANDARD; 2];
        if let CellKind::Rnn(_) = cell {
            out = [Activations {
                f: Activation::Tanh,
                ..Activations::STANDARD
            }; 2];
        }
        if names.is_empty() {
            if !alphas.is_empty() || !betas.is_empty() {
                return Err(Error::invalid(
                    "activation_alpha/activation_beta given without activations",
                ));
            }
            return Ok(out);
        }
        if names.len() != per * directions {
            return Err(Error::invalid(format!(
                "activations: a {} with {directions} direction(s) takes {} names, got {}",
                cell.name(),
                per * directions,
                names.len()
            )));
        }
        let (mut ai, mut bi) = (alphas.iter(), betas.iter());
        for (i, name) in names.iter().enumerate() {
            let takes = ONNX
                .iter()
                .find(|(n, ..)| n.eq_ignore_ascii_case(name))
                .map_or((false, false), |&(_, a, b)| (a, b));
            let alpha = if takes.0 { ai.next().copied() } else { None };
            let beta = if takes.1 { bi.next().copied() } else { None };
            let act = Activation::from_onnx(name, alpha, beta)?;
            let a = &mut out[i / per];
            match i % per {
                0 => a.f = act,
                1 => a.g = act,
                _ => a.h = act,
            }
        }
        if ai.next().is_some() || bi.next().is_some() {
            return Err(Error::invalid(format!(
                "activation_alpha ({} values) or activation_beta ({} values) has more values \
                 than the activations {names:?} take",
                alphas.len(),
                betas.len()
            )));
        }
        if directions == 1 {
            out[1] = out[0];
        }
        Ok(out)
    }
}
