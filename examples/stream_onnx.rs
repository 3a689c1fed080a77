//! Load the recurrent network of an ONNX file and stream through it one time
//! step at a time; list the file's recurrent nodes first.
//!
//! ```text
//! cargo run --release --example stream_onnx -- [FILE.onnx] [--node NAME]...
//! ```
//!
//! Without arguments it loads `tests/onnx/torch/lstm_1l/model.onnx`, which is
//!
//! ```python
//! lstm = torch.nn.LSTM(5, 7)
//! torch.onnx.export(lstm, torch.zeros(6, 1, 5), "model.onnx", dynamo=False)
//! ```

use rnncell::*;

fn main() -> Result<()> {
    let mut file = format!(
        "{}/tests/onnx/torch/lstm_1l/model.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut nodes: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--node" => nodes.push(args.next().expect("--node NAME")),
            _ => file = a,
        }
    }
    let bytes = std::fs::read(&file).map_err(|e| Error::Io(format!("{file}: {e}")))?;
    for n in onnx_nodes(&bytes)? {
        println!(
            "node {:?}: {} {:?}, input {}, hidden {}, next {:?}{}",
            n.qualified_name(),
            n.op_type,
            n.direction,
            n.input_size,
            n.hidden_size,
            n.next,
            n.error
                .map(|e| format!(" (cannot load: {e})"))
                .unwrap_or_default()
        );
    }
    let model = load_onnx_bytes(&bytes, &OnnxOptions::new().nodes(nodes))?;
    let spec = model.spec();
    println!(
        "loaded: {} {} layer(s) × {} direction(s), input {}, hidden {}, isa {}",
        spec.cell.name(),
        spec.num_layers,
        spec.directions(),
        spec.input_size,
        spec.hidden_size,
        model.isa()
    );
    if spec.direction != Direction::Forward {
        println!("a bidirectional or reverse model cannot stream; use Model::run");
        return Ok(());
    }
    let mut state = model.new_state();
    let mut x = vec![0.0f32; spec.input_size];
    let mut y = vec![0.0f32; spec.output_size()];
    for t in 0..30 {
        for (k, v) in x.iter_mut().enumerate() {
            *v = (0.2 * t as f32 + k as f32).sin();
        }
        model.step(&mut state, &x, &mut y)?;
        if t % 10 == 9 {
            println!("t={t:2}  y[0]={:+.6}", y[0]);
        }
    }
    Ok(())
}
