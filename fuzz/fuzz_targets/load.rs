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
    let pick = data.last().map_or(0, |&b| usize::from(b) % all.len());
    for opts in &all[pick..=pick] {
        let Ok(model) = load_safetensors_bytes(data, opts) else {
            continue;
        };
        // The sizes come from tensors that are in the input, so this is small.
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
    }
});
