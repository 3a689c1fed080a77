//! Load a trained PyTorch or Keras recurrent network from a safetensors file
//! and stream through it one time step at a time.
//!
//! ```text
//! cargo run --release --example stream_safetensors -- \
//!     [FILE] [--cell lstm|gru|rnn_tanh|rnn_relu] [--keras] [--prefix P] [--keras-layer NAME]...
//! ```
//!
//! Without arguments it loads `tests/safetensors/torch_lstm_2l_f16.safetensors`
//! (a 2-layer `nn.LSTM` saved in f16 by scripts/gen_safetensors.py). In
//! PyTorch that file is
//!
//! ```python
//! rnn = torch.nn.LSTM(input_size=3, hidden_size=5, num_layers=2)
//! safetensors.torch.save_file({k: v.half() for k, v in rnn.state_dict().items()}, path)
//! ```
//!
//! and in Keras 3 a file of the same kind is
//! `safetensors.numpy.save_file({w.path: w.numpy() for w in model.weights}, path)`
//! (load it with `--keras --prefix sequential/`).

use rnncell::*;

fn usage() -> ! {
    eprintln!(
        "usage: stream_safetensors [FILE] [--cell lstm|gru|rnn_tanh|rnn_relu] [--keras] \
         [--prefix P] [--keras-layer NAME]..."
    );
    std::process::exit(2);
}

fn main() {
    let mut file = format!(
        "{}/tests/safetensors/torch_lstm_2l_f16.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut cell = CellKind::lstm();
    let mut keras = false;
    let mut prefix = String::new();
    let mut layers: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cell" => {
                cell = match args.next().as_deref() {
                    Some("lstm") => CellKind::lstm(),
                    Some("gru") => CellKind::gru(),
                    Some("rnn_tanh") => CellKind::rnn_tanh(),
                    Some("rnn_relu") => CellKind::rnn_relu(),
                    _ => usage(),
                }
            }
            "--keras" => keras = true,
            "--prefix" => prefix = args.next().unwrap_or_else(|| usage()),
            "--keras-layer" => layers.push(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            f if !f.starts_with('-') => file = f.to_string(),
            _ => usage(),
        }
    }

    let opts = if keras {
        SafetensorsOptions::keras(cell)
    } else {
        SafetensorsOptions::pytorch(cell)
    }
    .prefix(prefix)
    .keras_layers(layers);
    let model = match load_safetensors(&file, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot load {file}: {e}");
            std::process::exit(1);
        }
    };
    let sp = *model.spec();
    println!("loaded {file}");
    println!(
        "  {} × {} layer(s), {:?}, input {}, hidden {}, projection {}, output {}, on {}",
        sp.cell.name(),
        sp.num_layers,
        sp.direction,
        sp.input_size,
        sp.hidden_size,
        sp.proj_size(),
        sp.output_size(),
        model.isa()
    );

    let steps = 8;
    let signal = |stream: usize, t: usize| -> Vec<f32> {
        (0..sp.input_size)
            .map(|k| ((t as f32 + 1.0) * 0.4 * (k + 1) as f32 + stream as f32).sin())
            .collect()
    };

    if sp.direction != Direction::Forward {
        // A backward direction needs the whole sequence: run it at once.
        println!("  bidirectional: runs over whole sequences, not step by step");
        let x: Vec<f32> = (0..steps).flat_map(|t| signal(0, t)).collect();
        let mut y = vec![0.0f32; steps * sp.output_size()];
        let out = &mut SequenceOutput {
            output: &mut y,
            h_n: None,
            c_n: None,
        };
        model.run(&Sequence::new(&x, steps, 1), out).unwrap();
        for (t, row) in y.chunks(sp.output_size()).enumerate() {
            println!("  t={t} y={row:.4?}");
        }
        return;
    }

    // Two independent streams (say, two audio channels), each with its own
    // State, interleaved step by step over one shared model.
    let mut states = [model.new_state(), model.new_state()];
    let mut y = vec![0.0f32; sp.state_size()];
    for t in 0..steps {
        for (s, state) in states.iter_mut().enumerate() {
            model.step(state, &signal(s, t), &mut y).unwrap();
            println!("  stream {s} t={t} y={y:.4?}");
        }
    }
    if let Some(c) = states[0].c(sp.num_layers - 1) {
        println!("  stream 0 final c of the last layer: {c:.4?}");
    }
}
