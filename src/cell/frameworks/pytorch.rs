//! PyTorch: `nn.LSTM` / `nn.GRU` / `nn.RNN` `state_dict` tensors (`weight_ih_l0`,
//! `bias_hh_l1_reverse`, `weight_hr_l0`, …) in rnncell's canonical layout, the
//! `_l{k}` / `_reverse` suffixes, the cell modules' names without them
//! (`nn.LSTMCell`: `weight_ih`, `bias_hh`, …) and their parser, and
//! [`Model::from_pytorch`].

use crate::cell::fit::{self, Allowed, Api, Counts, Which};
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

// ---- tensor names (the safetensors loader parses them with these) ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PtKind {
    WeightIh,
    WeightHh,
    BiasIh,
    BiasHh,
    WeightHr,
}

impl PtKind {
    pub(crate) const ALL: [PtKind; 5] = [
        PtKind::WeightIh,
        PtKind::WeightHh,
        PtKind::BiasIh,
        PtKind::BiasHh,
        PtKind::WeightHr,
    ];

    pub(crate) fn base(self) -> &'static str {
        match self {
            PtKind::WeightIh => "weight_ih",
            PtKind::WeightHh => "weight_hh",
            PtKind::BiasIh => "bias_ih",
            PtKind::BiasHh => "bias_hh",
            PtKind::WeightHr => "weight_hr",
        }
    }
}

/// Which PyTorch module wrote the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `nn.LSTM`, `nn.GRU`, `nn.RNN`: `weight_ih_l0`, `bias_hh_l1_reverse`.
    Module,
    /// `nn.LSTMCell`, `nn.GRUCell`, `nn.RNNCell`: `weight_ih`, `bias_hh`.
    Cell,
}

/// One parsed tensor name: what it is, of which layer and direction (0 or
/// 1), in which naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PtName {
    pub(crate) kind: PtKind,
    pub(crate) layer: usize,
    pub(crate) dir: usize,
    pub(crate) naming: Naming,
}

impl PtName {
    /// The name of `kind` of layer `layer`, direction `dir` in `naming`
    /// (the inverse of [`parse_pytorch_name`]; a cell module has only layer
    /// 0, direction 0 and no `weight_hr`).
    pub(crate) fn format(kind: PtKind, layer: usize, dir: usize, naming: Naming) -> String {
        match naming {
            Naming::Cell => kind.base().to_string(),
            Naming::Module => tensor_name(kind.base(), layer, dir),
        }
    }
}

/// `weight_ih_l3_reverse` → WeightIh of layer 3, direction 1 (module
/// naming: only canonical layer numbers, no leading zeros, at most 4096);
/// `bias_hh` → BiasHh of layer 0, direction 0 (cell naming: no
/// `weight_hr`, which the cell modules do not have).
pub(crate) fn parse_pytorch_name(rel: &str) -> Option<PtName> {
    let kind_of = |base: &str| PtKind::ALL.into_iter().find(|k| k.base() == base);
    if let Some(kind) = kind_of(rel).filter(|&k| k != PtKind::WeightHr) {
        return Some(PtName {
            kind,
            layer: 0,
            dir: 0,
            naming: Naming::Cell,
        });
    }
    let (rest, rev) = match rel.strip_suffix("_reverse") {
        Some(r) => (r, true),
        None => (rel, false),
    };
    let (base, num) = rest.rsplit_once("_l")?;
    let kind = kind_of(base)?;
    let canonical = !num.is_empty()
        && num.len() <= 4
        && num.bytes().all(|b| b.is_ascii_digit())
        && (num == "0" || !num.starts_with('0'));
    if !canonical {
        return None;
    }
    let layer: usize = num.parse().ok()?;
    (layer < 4096).then_some(PtName {
        kind,
        layer,
        dir: usize::from(rev),
        naming: Naming::Module,
    })
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
        // After the layers the spec names built: a size error (with its
        // hint) comes first.
        contradictions(&spec, get)?;
        Model::with_isa(spec, &all, isa)
    }
}

/// A spec that says less than the tensors do is an error, not a smaller
/// model: a layer past `num_layers`, a `_reverse` direction on a
/// unidirectional spec, or a projection the spec does not have would
/// otherwise be ignored and the model would run, wrong.
fn contradictions<'a>(spec: &ModelSpec, get: &impl Fn(&str) -> Option<&'a [f32]>) -> Result<()> {
    let extra = tensor_name("weight_ih", spec.num_layers, 0);
    if get(&extra).is_some() {
        return Err(Error::invalid(format!(
            "the tensors have {extra}, a layer past spec.num_layers = {} (set num_layers to \
             the state_dict's number of layers)",
            spec.num_layers
        )));
    }
    let rev = tensor_name("weight_ih", 0, 1);
    if spec.directions() == 1 && get(&rev).is_some() {
        return Err(Error::invalid(format!(
            "the tensors have {rev}, a reverse direction, but the spec is unidirectional (set \
             direction to bidirectional)"
        )));
    }
    let hr = tensor_name("weight_hr", 0, 0);
    if spec.proj_size() == 0 && get(&hr).is_some() {
        return Err(Error::invalid(format!(
            "the tensors have {hr}, an LSTM projection, but the spec has none (set the \
             projection size, PyTorch proj_size)"
        )));
    }
    Ok(())
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

/// Entries of a spec in a `state_dict`: one per layer and direction.
pub(crate) fn entries(spec: &ModelSpec) -> usize {
    spec.num_layers * spec.directions()
}

/// The element count each tensor of entry `i` may have (`fit`'s table
/// for this layout): `weight_ih` [G·H, in], `weight_hh` [G·H, Hr], the two
/// biases [G·H] optional, `weight_hr` [P, H] with a projection, and
/// rnncell's peephole extension [3, H].
pub(crate) fn allowed(spec: &ModelSpec, i: usize, which: Which) -> Allowed {
    let d = fit::dims(spec, i / spec.directions());
    match which {
        Which::W => Allowed::Required(vec![d.g, d.h, d.input]),
        Which::R => Allowed::Required(vec![d.g, d.h, d.hr]),
        Which::BW | Which::BR => Allowed::Optional(vec![d.g, d.h]),
        Which::Proj if d.proj_size > 0 => Allowed::Required(vec![(d.proj_size, "proj_size"), d.h]),
        Which::Peephole if d.peephole => Allowed::Optional(vec![(3, "3"), d.h]),
        _ => Allowed::Forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_names() {
        use PtKind::*;
        let n = |kind, layer, dir, naming| {
            Some(PtName {
                kind,
                layer,
                dir,
                naming,
            })
        };
        assert_eq!(
            parse_pytorch_name("weight_ih_l0"),
            n(WeightIh, 0, 0, Naming::Module)
        );
        assert_eq!(
            parse_pytorch_name("bias_hh_l12_reverse"),
            n(BiasHh, 12, 1, Naming::Module)
        );
        assert_eq!(
            parse_pytorch_name("weight_hr_l1"),
            n(WeightHr, 1, 0, Naming::Module)
        );
        assert_eq!(
            parse_pytorch_name("weight_ih"),
            n(WeightIh, 0, 0, Naming::Cell)
        );
        assert_eq!(parse_pytorch_name("bias_hh"), n(BiasHh, 0, 0, Naming::Cell));
        for bad in [
            "weight_ih_l01",
            "weight_ih_l",
            "weight_ih_l-1",
            "weight_ih_l99999",
            "weight_hr",
            "weight_ih_reverse",
            "weight_xx_l0",
            "weight_ih_l0_reverse_reverse",
            "weight_ih_l0x",
            "Weight_ih",
        ] {
            assert_eq!(parse_pytorch_name(bad), None, "{bad}");
        }
        // format is the inverse of parse
        for kind in PtKind::ALL {
            for (l, d) in [(0, 0), (3, 1)] {
                let s = PtName::format(kind, l, d, Naming::Module);
                assert_eq!(parse_pytorch_name(&s), n(kind, l, d, Naming::Module));
            }
            if kind != WeightHr {
                let s = PtName::format(kind, 0, 0, Naming::Cell);
                assert_eq!(parse_pytorch_name(&s), n(kind, 0, 0, Naming::Cell));
            }
        }
    }
}
