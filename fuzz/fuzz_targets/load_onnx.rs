//! Fuzzes the ONNX loader: any bytes, decoded as an ONNX model with one of
//! several option sets (the one chain, a node by name, the stored
//! precision) and listed with `onnx_nodes`, must give a model or an error,
//! never a panic, an out-of-bounds read or an unbounded allocation (the
//! folding budget is 4 elements per input byte plus 1 Mi); a model that
//! loads must run.
//!
//! The option set is chosen by the input's last byte (in the committed
//! seeds, part of the last tensor's data or a name).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use rnncell::*;

fn options() -> Vec<OnnxOptions> {
    let o = || OnnxOptions::new().isa(Isa::Scalar);
    vec![
        o(),
        o().stored_precision(),
        o().node("lstm"),
        o().node("encoder_lstm"),
        o().nodes(["l0", "l1"]),
        o().node("/rnn/LSTM"),
        o().precision(WeightPrecision::Int8),
    ]
}

fuzz_target!(|data: &[u8]| {
    let _ = onnx_nodes(data);
    let all = options();
    if let Ok(model) = load_onnx_bytes(data, &all[common::pick(data, &all)]) {
        common::runs(&model);
    }
});
