//! Quickstart: a 2-layer LSTM and a GRU streaming a signal step by step.
//!
//! `cargo run --release --example quickstart`
//!
//! Builds both models from random weights in PyTorch layout (what you
//! would load from a `state_dict`), feeds a sine wave one sample frame at
//! a time, prints a few outputs, the ISA in use and the time per step.

use rnncell::*;
use std::time::Instant;

/// Deterministic pseudo-random weights, uniform in ±1/√H like PyTorch's
/// initialisation.
fn pytorch_like(spec: &ModelSpec, seed: u64) -> Vec<LayerWeights> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let (g, h) = (spec.cell.gates(), spec.hidden_size);
    let k = 1.0 / (h as f32).sqrt();
    (0..spec.num_layers * spec.directions())
        .map(|i| {
            let input = spec.layer_input_size(i / spec.directions());
            let mut lw = LayerWeights::zeros(g, h, input, spec.state_size());
            for v in
                lw.w.iter_mut()
                    .chain(&mut lw.r)
                    .chain(&mut lw.b_w)
                    .chain(&mut lw.b_r)
            {
                *v = next() * k;
            }
            lw
        })
        .collect()
}

fn stream(name: &str, model: &Model, frames: usize) -> Result<()> {
    let spec = model.spec();
    let mut state = model.new_state();
    let mut x = vec![0.0f32; spec.input_size];
    let mut y = vec![0.0f32; spec.state_size()];
    let start = Instant::now();
    for t in 0..frames {
        // One frame of a multi-channel sine wave.
        for (c, v) in x.iter_mut().enumerate() {
            *v = (0.05 * t as f32 + c as f32).sin();
        }
        model.step(&mut state, &x, &mut y)?;
        if t % (frames / 4) == 0 {
            println!("  {name} t={t:5}  y[0..4] = {:+.5?}", &y[..4]);
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / frames as f64;
    println!(
        "  {name}: {} layer(s), I={} H={}, {:.1} KiB of packed weights, {us:.2} µs per step on {}",
        spec.num_layers,
        spec.input_size,
        spec.hidden_size,
        model.weight_bytes() as f64 / 1024.0,
        model.isa()
    );
    Ok(())
}

fn main() -> Result<()> {
    println!(
        "rnncell {}: detected ISA {} (available: {})",
        env!("CARGO_PKG_VERSION"),
        Isa::detect(),
        Isa::available()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let lstm_spec = ModelSpec::new(CellKind::lstm(), 40, 128).layers(2);
    let lstm = Model::new(lstm_spec, &pytorch_like(&lstm_spec, 1))?;
    stream("lstm", &lstm, 20_000)?;

    let gru_spec = ModelSpec::new(CellKind::gru(), 40, 256);
    let gru = Model::new(gru_spec, &pytorch_like(&gru_spec, 2))?;
    stream("gru ", &gru, 20_000)?;
    Ok(())
}
