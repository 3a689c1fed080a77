//! PyTorch: `nn.LSTM` / `nn.GRU` / `nn.RNN` `state_dict` tensors (`weight_ih_l0`,
//! `bias_hh_l1_reverse`, `weight_hr_l0`, …) in rnncell's canonical layout, the
//! `_l{k}` / `_reverse` suffixes, and [`Model::from_pytorch`].

use crate::cell::fit::{self, Api, Counts};
use crate::cell::model::Model;
use crate::cell::spec::ModelSpec;
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::{Error, Result};
use crate::isa::Isa;

/// PyTorch's gate order is the canonical one (LSTM i f g o, GRU r z n):
/// `LSTM_GATES[canonical gate]` = PyTorch gate.
pub(crate) const LSTM_GATES: [usize; 4] = [0, 1, 2, 3];
/// GRU r z n, canonical.
pub(crate) const GRU_GATES: [usize; 3] = [0, 1, 2];
/// What [`LayerWeights::from_layout`] calls W, R and the two biases.
pub(crate) const NAMES: [&str; 4] = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"];

/// The direction suffix of a bidirectional module's tensor names.
pub(crate) fn direction_suffix(dir: usize) -> &'static str {
    if dir == 1 { "_reverse" } else { "" }
}

/// The `state_dict` name of tensor `base` (`weight_ih`, …) of layer
/// `layer`, direction `dir` of `nn.LSTM`/`nn.GRU`/`nn.RNN`.
pub(crate) fn tensor_name(base: &str, layer: usize, dir: usize) -> String {
    format!("{base}_l{layer}{}", direction_suffix(dir))
}

impl Model {
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
        Model::pytorch_unhinted(spec, &get, isa).map_err(|e| {
            e.with_hint(fit::hint(
                Layout::PyTorch,
                &spec,
                &pytorch_counts(&get),
                Api::Rust,
            ))
        })
    }

    fn pytorch_unhinted<'a>(
        spec: ModelSpec,
        get: &impl Fn(&str) -> Option<&'a [f32]>,
        isa: Isa,
    ) -> Result<Model> {
        spec.validate()?;
        let mut all = Vec::new();
        for l in 0..spec.num_layers {
            for d in 0..spec.directions() {
                let name = |base: &str| tensor_name(base, l, d);
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
                        .map_err(|e| rename(e, l, d))?,
                );
            }
        }
        Model::with_isa(spec, &all, isa)
    }
}

/// The element counts of the tensors `get` has, for [`fit::hint`]: the
/// layers `weight_ih_l0`, `weight_ih_l1`, … present, each with its
/// `_reverse` direction if layer 0 has one.
fn pytorch_counts<'a>(get: &impl Fn(&str) -> Option<&'a [f32]>) -> Vec<Counts> {
    let dirs = if get(&tensor_name("weight_ih", 0, 1)).is_some() {
        2
    } else {
        1
    };
    let mut out = Vec::new();
    for l in 0..4096 {
        if get(&tensor_name("weight_ih", l, 0)).is_none() {
            break;
        }
        for d in 0..dirs {
            let n = |base: &str| get(&tensor_name(base, l, d)).map(<[f32]>::len);
            out.push(Counts {
                w: n("weight_ih").unwrap_or(0),
                r: n("weight_hh").unwrap_or(0),
                b_w: n("bias_ih"),
                b_r: n("bias_hh"),
                proj: n("weight_hr"),
                peephole: None,
            });
        }
    }
    out
}

/// Renames a size error of PyTorch layer `l` to the `state_dict` name of
/// the tensor ("layer 1 weight_hh" -> "weight_hh_l1_reverse").
fn rename(e: Error, l: usize, d: usize) -> Error {
    match e {
        Error::SizeMismatch {
            what,
            expected,
            actual,
            hint,
        } => Error::SizeMismatch {
            what: tensor_name(what.trim_start_matches(&format!("layer {l} ")), l, d),
            expected,
            actual,
            hint,
        },
        e => e,
    }
}
