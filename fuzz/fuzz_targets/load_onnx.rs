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
    let pick = data.last().map_or(0, |&b| usize::from(b) % all.len());
    let Ok(model) = load_onnx_bytes(data, &all[pick]) else {
        return;
    };
    let sp = *model.spec();
    let x: Vec<f32> = (0..2 * sp.input_size)
        .map(|i| (i as f32 * 0.7).sin())
        .collect();
    let mut y = vec![0.0f32; 2 * sp.output_size()];
    model
        .run(
            &Sequence::new(&x, 2, 1),
            &mut SequenceOutput {
                output: &mut y,
                h_n: None,
                c_n: None,
            },
        )
        .expect("a loaded model runs");
});
