//! Loading a PyTorch `state_dict` from safetensors (see
//! [`super::WeightFormat::PyTorch`]): the names are parsed by
//! `cell/frameworks/pytorch.rs` (`weight_ih_l{k}`, … with `_reverse`, and
//! the cell modules' `weight_ih`, …); this file groups the tensors by layer
//! and direction, infers the spec from their shapes and reads them.

use std::collections::BTreeMap;

use super::tensor::Tensor;
use super::{
    SafetensorsOptions, cell_with, format_err, gate_names, inferred_spec, model_precision,
};
use crate::cell::frameworks::pytorch::{Naming, PtKind, PtName, parse_pytorch_name};
use crate::cell::model::Model;
use crate::cell::spec::{CellKind, MergeMode};
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::{Error, Result};
use crate::isa::Isa;

/// Builds the model from the tensors under the prefix, as (name relative
/// to the prefix, tensor), sorted by name.
pub(super) fn load<'t, 'a: 't>(
    under: impl Iterator<Item = (&'t str, &'t Tensor<'a>)>,
    opts: &SafetensorsOptions,
    isa: Isa,
) -> Result<Model> {
    let mut found: BTreeMap<(usize, usize, PtKind), &Tensor<'_>> = BTreeMap::new();
    // The first tensor of each naming, to name both if a file mixes them.
    let (mut module_name, mut cell_name): (Option<&str>, Option<&str>) = (None, None);
    for (rel, t) in under {
        let name = t.name();
        let Some(n) = parse_pytorch_name(rel) else {
            return Err(format_err(format!(
                "unexpected tensor {name:?} under the prefix {:?}: not a weight of \
                 nn.LSTM/GRU/RNN (weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, \
                 weight_hr_l<k>, with an optional _reverse suffix) nor of \
                 nn.LSTMCell/GRUCell/RNNCell (weight_ih, weight_hh, bias_ih, bias_hh)",
                opts.prefix
            )));
        };
        match n.naming {
            Naming::Module => module_name = module_name.or(Some(name)),
            Naming::Cell => cell_name = cell_name.or(Some(name)),
        }
        if let (Some(m), Some(c)) = (module_name, cell_name) {
            return Err(format_err(format!(
                "the tensors under the prefix {:?} mix two namings: {m:?} is named as \
                 nn.LSTM/GRU/RNN name their weights (with a _l<k> layer suffix), {c:?} as \
                 nn.LSTMCell/GRUCell/RNNCell do (no suffix); a prefix must hold the weights \
                 of one module (give the prefix of one of them)",
                opts.prefix
            )));
        }
        found.insert((n.layer, n.dir, n.kind), t);
    }
    let naming = if cell_name.is_some() {
        Naming::Cell
    } else {
        Naming::Module
    };
    let p = &opts.prefix;
    let full =
        |kind: PtKind, l: usize, d: usize| format!("{p}{}", PtName::format(kind, l, d, naming));
    let num_layers = found.keys().map(|k| k.0).max().unwrap_or(0) + 1;
    let dirs = if found.keys().any(|k| k.1 == 1) { 2 } else { 1 };
    let missing = |kind: PtKind, l: usize, d: usize, why: &str| {
        format_err(format!("missing tensor {:?} ({why})", full(kind, l, d)))
    };
    let g = opts.cell.gates();
    let cellname = opts.cell.name();

    // Sizes from layer 0, forward direction.
    let wih = found.get(&(0, 0, PtKind::WeightIh)).ok_or_else(|| {
        missing(
            PtKind::WeightIh,
            0,
            0,
            "every nn.LSTM/GRU/RNN state_dict has it",
        )
    })?;
    let whh = found
        .get(&(0, 0, PtKind::WeightHh))
        .ok_or_else(|| missing(PtKind::WeightHh, 0, 0, "every state_dict has it"))?;
    let (gh, input) = wih.dims2()?;
    let (gh2, hr) = whh.dims2()?;
    if gh % g != 0 {
        return Err(format_err(format!(
            "tensor {:?} has {gh} rows, not a multiple of {g} ({}): is the cell kind \
             ({cellname}) right?",
            wih.name,
            gate_names(&opts.cell)
        )));
    }
    if gh2 != gh {
        return Err(format_err(format!(
            "tensor {:?} has {gh2} rows but {:?} has {gh}",
            whh.name, wih.name
        )));
    }
    let hidden = gh / g;
    let proj = match found.get(&(0, 0, PtKind::WeightHr)) {
        Some(t) => {
            if !matches!(opts.cell, CellKind::Lstm(_)) {
                return Err(format_err(format!(
                    "unexpected tensor {:?}: only an LSTM with proj_size has weight_hr \
                     (the cell kind given is {cellname})",
                    t.name
                )));
            }
            let (pp, ph) = t.dims2()?;
            if ph != hidden {
                return Err(format_err(format!(
                    "tensor {:?} has shape {:?}, expected [proj_size, {hidden}] (hidden size \
                     {hidden} from {:?})",
                    t.name,
                    t.shape(),
                    wih.name
                )));
            }
            pp
        }
        None => 0,
    };
    let state = if proj > 0 { proj } else { hidden };
    if hr != state {
        let why = if proj > 0 {
            format!("proj_size {proj} from weight_hr_l0")
        } else {
            format!(
                "hidden size {hidden} from weight_ih_l0, and no weight_hr_l0; is the cell kind \
                 ({cellname}) right?"
            )
        };
        return Err(format_err(format!(
            "tensor {:?} has shape [{gh2}, {hr}], expected [{gh}, {state}] ({why})",
            whh.name
        )));
    }
    let has_bias =
        found.contains_key(&(0, 0, PtKind::BiasIh)) || found.contains_key(&(0, 0, PtKind::BiasHh));

    let cell = cell_with(opts.cell, proj, Some(true));
    let spec = inferred_spec(cell, input, hidden, num_layers, dirs == 2, opts)?;

    let mut weights: BTreeMap<(usize, usize, PtKind), Vec<f32>> = BTreeMap::new();
    // The weight matrices (not the biases), for the stored precision.
    let mut matrices: Vec<&Tensor<'_>> = Vec::new();
    for l in 0..num_layers {
        let in_l = spec.layer_input_size(l);
        for d in 0..dirs {
            let mut take = |kind: PtKind, shape: &[usize], why: &dyn Fn() -> String| {
                let t = found.remove(&(l, d, kind)).ok_or_else(|| {
                    let have = if dirs == 2 {
                        format!("{num_layers} bidirectional layers")
                    } else {
                        format!("{num_layers} layers")
                    };
                    missing(kind, l, d, &format!("the file has tensors of {have}"))
                })?;
                let v = t.read(shape, why)?;
                if !matches!(kind, PtKind::BiasIh | PtKind::BiasHh) {
                    matrices.push(t);
                }
                weights.insert((l, d, kind), v);
                Ok::<(), Error>(())
            };
            take(PtKind::WeightIh, &[gh, in_l], &|| {
                if l == 0 {
                    format!("{g} gates × hidden size {hidden}, input size {input}")
                } else {
                    format!(
                        "{g} gates × hidden size {hidden}; layer {l} input = {} of layer {}",
                        if dirs == 2 && opts.merge == MergeMode::Concat {
                            format!("2 directions × {state}")
                        } else {
                            format!("output size {state}")
                        },
                        l - 1
                    )
                }
            })?;
            take(PtKind::WeightHh, &[gh, state], &|| {
                format!("{g} gates × hidden size {hidden}, recurrent input {state}")
            })?;
            if has_bias {
                for kind in [PtKind::BiasIh, PtKind::BiasHh] {
                    take(kind, &[gh], &|| format!("{g} gates × hidden size {hidden}"))?;
                }
            }
            if proj > 0 {
                take(PtKind::WeightHr, &[proj, hidden], &|| {
                    format!("proj_size {proj} × hidden size {hidden}")
                })?;
            }
        }
    }
    if let Some(t) = found.values().next() {
        let why = if t.name.contains("bias") {
            "layer 0 has no biases".to_string()
        } else if t.name.contains("weight_hr") {
            "layer 0 has no projection".to_string()
        } else {
            "it does not fit the model read from the other tensors".to_string()
        };
        return Err(format_err(format!(
            "unexpected tensor {:?} ({why})",
            t.name
        )));
    }
    let spec = spec.precision(model_precision(opts, matrices)?);
    let mut all = Vec::new();
    all.try_reserve_exact(num_layers * dirs).map_err(|_| {
        Error::alloc(
            "the list of layers",
            num_layers * dirs,
            std::mem::size_of::<LayerWeights>(),
        )
    })?;
    for l in 0..num_layers {
        for d in 0..dirs {
            let get = |kind: PtKind| weights.get(&(l, d, kind)).map(Vec::as_slice);
            // Every shape was checked when the tensor was read.
            let t = LayerTensors {
                w: get(PtKind::WeightIh).unwrap_or_default(),
                r: get(PtKind::WeightHh).unwrap_or_default(),
                b_w: get(PtKind::BiasIh),
                b_r: get(PtKind::BiasHh),
                peephole: None,
                proj: get(PtKind::WeightHr),
                proj_bias: None,
            };
            all.push(LayerWeights::from_layout(Layout::PyTorch, &spec, l, &t)?);
        }
    }
    Model::with_isa(spec, &all, isa)
}
