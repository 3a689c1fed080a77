//! Keras naming: `<layer>[/forward_*|/backward_*][/<cell>]/<leaf>` with
//! the leaves `kernel`, `recurrent_kernel`, `bias` (see
//! [`super::WeightFormat::Keras`]).

use std::collections::{BTreeMap, BTreeSet};

use super::tensor::Tensor;
use super::{
    SafetensorsOptions, cell_with, format_err, gate_names, inferred_spec, model_precision,
};
use crate::cell::frameworks::keras::KerasTensors;
use crate::cell::model::Model;
use crate::cell::spec::CellKind;
use crate::error::{Error, Result};
use crate::isa::Isa;

#[derive(Default)]
struct KerasDir<'t, 'a> {
    kernel: Option<&'t Tensor<'a>>,
    recurrent: Option<&'t Tensor<'a>>,
    bias: Option<&'t Tensor<'a>>,
}

/// Splits a Keras path (relative to the prefix) into (layer, direction,
/// leaf); direction 0 is also a unidirectional layer, `bidi` says whether
/// a `forward_`/`backward_` component was present.
fn parse_keras_name(rel: &str) -> (String, Option<usize>, &str) {
    let rel = rel.strip_suffix(":0").unwrap_or(rel);
    let (group, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut parts: Vec<&str> = if group.is_empty() {
        Vec::new()
    } else {
        group.split('/').collect()
    };
    if parts.last().is_some_and(|c| c.ends_with("cell")) {
        parts.pop();
    }
    let dir = match parts.last() {
        Some(c) if c.starts_with("forward_") => Some(0),
        Some(c) if c.starts_with("backward_") => Some(1),
        _ => None,
    };
    if dir.is_some() {
        parts.pop();
    }
    (parts.join("/"), dir, leaf)
}

/// Natural order: digit runs compare as numbers (`lstm_2` < `lstm_10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = da
                    .iter()
                    .position(|&c| c != b'0')
                    .map_or(&da[na..], |i| &da[i..]);
                let tb = db
                    .iter()
                    .position(|&c| c != b'0')
                    .map_or(&db[nb..], |i| &db[i..]);
                let o = ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(na.cmp(&nb));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// Builds the model from the tensors under the prefix, as (name relative
/// to the prefix, tensor), sorted by name.
pub(super) fn load<'t, 'a: 't>(
    under: impl Iterator<Item = (&'t str, &'t Tensor<'a>)>,
    opts: &SafetensorsOptions,
    isa: Isa,
) -> Result<Model> {
    let p = &opts.prefix;
    // layer path -> (bidirectional?, [forward, backward])
    let mut layers: BTreeMap<String, (bool, [KerasDir<'_, '_>; 2])> = BTreeMap::new();
    // Every layer under the prefix, listed or not (for messages).
    let mut in_file: BTreeSet<String> = BTreeSet::new();
    for (rel, t) in under {
        let name = t.name();
        let (layer, dir, leaf) = parse_keras_name(rel);
        if !opts.keras_layers.is_empty() && !opts.keras_layers.contains(&layer) {
            in_file.insert(layer);
            continue;
        }
        in_file.insert(layer.clone());
        let entry = layers.entry(layer.clone()).or_default();
        entry.0 |= dir.is_some();
        let d = &mut entry.1[dir.unwrap_or(0)];
        let slot = match leaf {
            "kernel" => &mut d.kernel,
            "recurrent_kernel" => &mut d.recurrent,
            "bias" => &mut d.bias,
            _ => {
                return Err(format_err(format!(
                    "unexpected tensor {name:?} under the prefix {p:?}: not a weight of a Keras \
                     LSTM/GRU/SimpleRNN (kernel, recurrent_kernel, bias)"
                )));
            }
        };
        if let Some(prev) = slot {
            return Err(format_err(format!(
                "tensors {:?} and {name:?} are the same weight of layer {layer:?}",
                prev.name()
            )));
        }
        *slot = Some(t);
    }
    let order: Vec<String> = if opts.keras_layers.is_empty() {
        let mut v: Vec<String> = layers.keys().cloned().collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    } else {
        let mut seen = std::collections::HashSet::new();
        for l in &opts.keras_layers {
            if !seen.insert(l) {
                return Err(Error::invalid(format!("keras_layers lists {l:?} twice")));
            }
            if !layers.contains_key(l) {
                let mut have: Vec<&str> = in_file.iter().map(String::as_str).collect();
                have.sort_by(|a, b| natural_cmp(a, b));
                let more = if have.len() > 8 { ", …" } else { "" };
                have.truncate(8);
                let have: Vec<String> = have.iter().map(|h| format!("{h:?}")).collect();
                return Err(format_err(format!(
                    "layer {l:?} (from keras_layers) has no tensors under the prefix {p:?} \
                     (the layers under it are: {}{more})",
                    have.join(", ")
                )));
            }
        }
        opts.keras_layers.clone()
    };
    let Some(first) = order.first() else {
        return Err(format_err(format!("no Keras layer under the prefix {p:?}")));
    };
    let bidi = layers[first].0;
    let dirs = if bidi { 2 } else { 1 };
    let path = |layer: &str, d: Option<usize>, leaf: &str| {
        let dir = match d {
            Some(0) => " (forward direction)",
            Some(_) => " (backward direction)",
            None => "",
        };
        format!("{leaf} of the Keras layer {:?}{dir}", format!("{p}{layer}"))
    };
    let g = opts.cell.gates();
    let cellname = opts.cell.name();

    // Sizes from the first layer, forward direction.
    let (input, hidden, gh) = {
        let f = &layers[first].1[0];
        let dsel = bidi.then_some(0);
        let k = f.kernel.as_ref().ok_or_else(|| {
            format_err(format!("missing tensor: {}", path(first, dsel, "kernel")))
        })?;
        let r = f.recurrent.as_ref().ok_or_else(|| {
            format_err(format!(
                "missing tensor: {}",
                path(first, dsel, "recurrent_kernel")
            ))
        })?;
        let (input, gh) = k.dims2()?;
        let (hidden, gh2) = r.dims2()?;
        if gh2 != hidden.saturating_mul(g) {
            return Err(format_err(format!(
                "tensor {:?} has shape [{hidden}, {gh2}], expected [{hidden}, {}] ({}, hidden \
                 size {hidden}): is the cell kind ({cellname}) right?",
                r.name,
                hidden.saturating_mul(g),
                gate_names(&opts.cell)
            )));
        }
        (input, hidden, gh)
    };
    // GRU reset_after from the first bias that exists.
    let first_bias = order
        .iter()
        .flat_map(|l| layers[l].1.iter())
        .find_map(|d| d.bias.as_ref());
    let lbr = match (opts.cell, first_bias) {
        (CellKind::Gru(_), Some(b)) => Some(b.shape().len() == 2),
        _ => None,
    };
    let spec = inferred_spec(
        cell_with(opts.cell, 0, lbr),
        input,
        hidden,
        order.len(),
        bidi,
        opts,
    )?;

    let mut all: Vec<[Vec<f32>; 3]> = Vec::with_capacity(order.len() * dirs);
    let mut has_bias: Vec<bool> = Vec::with_capacity(order.len() * dirs);
    // The weight matrices (not the biases), for the stored precision.
    let mut matrices: Vec<&Tensor<'_>> = Vec::new();
    for (l, name) in order.iter().enumerate() {
        let (lbidi, dirs_t) = &layers[name];
        if *lbidi != bidi {
            return Err(format_err(format!(
                "layer {name:?} is {} but layer {first:?} is {}: every layer of a model has the \
                 same direction",
                if *lbidi {
                    "bidirectional"
                } else {
                    "unidirectional"
                },
                if bidi {
                    "bidirectional"
                } else {
                    "unidirectional"
                },
            )));
        }
        let in_l = spec.layer_input_size(l);
        for (d, t) in dirs_t.iter().enumerate().take(dirs) {
            let dsel = bidi.then_some(d);
            let miss =
                |leaf: &str| format_err(format!("missing tensor: {}", path(name, dsel, leaf)));
            let k = t.kernel.as_ref().ok_or_else(|| miss("kernel"))?;
            let r = t
                .recurrent
                .as_ref()
                .ok_or_else(|| miss("recurrent_kernel"))?;
            let kv = k.read(&[in_l, gh], &|| {
                if l == 0 {
                    format!("input size {input}, {g} gates × hidden size {hidden}")
                } else {
                    format!(
                        "the input of layer {l} is the output of layer {:?}: {in_l} features",
                        order[l - 1]
                    )
                }
            })?;
            let rv = r.read(&[hidden, gh], &|| {
                format!("hidden size {hidden} from the first layer, {g} gates")
            })?;
            matrices.extend([*k, *r]);
            let bv = match &t.bias {
                None => {
                    has_bias.push(false);
                    Vec::new()
                }
                Some(b) => {
                    has_bias.push(true);
                    let shape: &[usize] = if lbr == Some(true) { &[2, gh] } else { &[gh] };
                    b.read(shape, &|| match lbr {
                        Some(true) => "GRU with reset_after=True, read from the first bias".into(),
                        Some(false) => {
                            "GRU with reset_after=False, read from the first bias".into()
                        }
                        None => format!("{g} gates × hidden size {hidden}"),
                    })?
                }
            };
            all.push([kv, rv, bv]);
        }
        if !bidi && dirs_t[1].kernel.is_some() {
            // unreachable: a backward_ component makes the layer bidirectional
            return Err(format_err(format!(
                "layer {name:?}: inconsistent directions"
            )));
        }
    }
    let tensors: Vec<KerasTensors<'_>> = all
        .iter()
        .zip(&has_bias)
        .map(|([k, r, b], &hb)| KerasTensors {
            kernel: k,
            recurrent_kernel: r,
            bias: hb.then_some(b.as_slice()),
        })
        .collect();
    let spec = spec.precision(model_precision(opts, matrices)?);
    Model::from_keras_with_isa(spec, &tensors, isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_names() {
        let p = |s| parse_keras_name(s);
        assert_eq!(p("lstm/lstm_cell/kernel"), ("lstm".into(), None, "kernel"));
        assert_eq!(
            p("bidirectional_1/backward_lstm_1/lstm_cell/bias:0"),
            ("bidirectional_1".into(), Some(1), "bias")
        );
        assert_eq!(
            p("forward_gru/gru_cell/kernel"),
            ("".into(), Some(0), "kernel")
        );
        assert_eq!(p("kernel"), ("".into(), None, "kernel"));
        assert_eq!(
            p("a/b/lstm_1/recurrent_kernel"),
            ("a/b/lstm_1".into(), None, "recurrent_kernel")
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec![
            "lstm_10", "lstm_2", "lstm", "lstm_1", "lstm_02", "a9b", "a10a",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "a9b", "a10a", "lstm", "lstm_1", "lstm_2", "lstm_02", "lstm_10"
            ]
        );
    }
}
