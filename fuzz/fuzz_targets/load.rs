//! Fuzzes the safetensors loader: any bytes, read as a file with one of
//! several option sets (formats, cell kinds, prefixes, the stored
//! precision), must give a model or an error, never a panic, an
//! out-of-bounds read or an unbounded allocation; a model that loads must
//! run.
//!
//! The option set is chosen by the input's last byte, which in a valid file
//! is tensor data (so mutating it keeps the file valid and lets the fuzzer
//! try every option set on every file it has found).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use rnncell::*;

fn options() -> Vec<SafetensorsOptions> {
    let pt = |c| SafetensorsOptions::pytorch(c).isa(Isa::Scalar);
    let ke = |c| SafetensorsOptions::keras(c).isa(Isa::Scalar);
    vec![
        pt(CellKind::lstm()),
        pt(CellKind::gru()),
        pt(CellKind::rnn_tanh()),
        pt(CellKind::lstm()).prefix("encoder.rnn."),
        ke(CellKind::lstm()),
        ke(CellKind::gru()),
        ke(CellKind::rnn_relu()),
        ke(CellKind::lstm()).prefix("sequential/"),
        ke(CellKind::gru()).prefix("sequential/"),
        ke(CellKind::lstm())
            .prefix("sequential/")
            .keras_layers(["lstm", "lstm_1"]),
        pt(CellKind::gru()).merge(MergeMode::Sum),
        // The stored precision (mixed dtypes are an error).
        pt(CellKind::lstm()).stored_precision(),
        ke(CellKind::gru()).prefix("sequential/").stored_precision(),
    ]
}

fuzz_target!(|data: &[u8]| {
    let all = options();
    if let Ok(model) = load_safetensors_bytes(data, &all[common::pick(data, &all)]) {
        common::runs(&model);
    }
});
