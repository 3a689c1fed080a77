//! The committed framework vectors (tests/vectors/*.json, written by
//! scripts/gen_vectors.py): the model spec a vector describes.

use super::*;
use serde_json::Value;

/// The spec of a vector: cell and options, sizes, layers, direction, and
/// (the `onnx_act_*` cases) the ONNX activation lists, read as ONNX
/// Runtime reads them.
pub fn spec_of(c: &Value) -> ModelSpec {
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let clip = c["clip"].as_f64().map(|v| v as f32);
    let cell = match c["cell"].as_str().unwrap() {
        "lstm" => CellKind::Lstm(LstmOptions {
            proj_size: n("proj_size"),
            peephole: c["tensors"].get("P").is_some(),
            coupling: if c["input_forget"].as_u64() == Some(1) {
                Coupling::ForgetFromInput
            } else {
                Coupling::None
            },
            clip,
            ..Default::default()
        }),
        "gru" => CellKind::Gru(GruOptions {
            linear_before_reset: c["linear_before_reset"].as_u64() == Some(1),
            clip,
        }),
        "rnn_tanh" => CellKind::Rnn(RnnOptions {
            activation: RnnActivation::Tanh,
            clip,
        }),
        "rnn_relu" => CellKind::Rnn(RnnOptions {
            activation: RnnActivation::Relu,
            clip,
        }),
        other => panic!("unknown cell {other}"),
    };
    let dir = if c["bidirectional"].as_bool().unwrap() {
        Direction::Bidirectional
    } else if c["reverse"].as_bool().unwrap() {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let spec = ModelSpec::new(cell, n("input_size"), n("hidden_size"))
        .layers(n("num_layers"))
        .direction(dir);
    match c.get("activations") {
        // ONNX activation lists, alpha/beta consumed as ONNX Runtime does.
        Some(names) => {
            let names: Vec<&str> = names
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let list = |k: &str| -> Vec<f32> {
                c[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            };
            let a = Activations::from_onnx(
                &cell,
                spec.directions(),
                &names,
                &list("activation_alpha"),
                &list("activation_beta"),
            )
            .unwrap();
            spec.activations_per_direction(a[0], a[1])
        }
        None => spec,
    }
}
