//! Streaming step latency per ISA, cell and size (batch 1, I = H).
//!
//! `cargo bench --bench cells` ; filter e.g. `-- lstm/step/avx512`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rnncell::*;
use std::hint::black_box;
use std::time::Duration;

#[path = "common.rs"]
mod common;

fn sizes() -> Vec<usize> {
    match std::env::var("RNNCELL_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|v| v.trim().parse().ok()).collect(),
        Err(_) => vec![8, 64, 128, 256, 512, 1024],
    }
}

fn step(c: &mut Criterion) {
    for (name, cell) in [("lstm", CellKind::lstm()), ("gru", CellKind::gru())] {
        let mut g = c.benchmark_group(format!("{name}/step"));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        g.sample_size(30);
        for h in sizes() {
            let spec = ModelSpec::new(cell, h, h);
            let w = common::random_weights(&spec, 7);
            for isa in Isa::available() {
                let model = Model::with_isa(spec, &w, isa).unwrap();
                g.throughput(Throughput::Bytes(model.weight_bytes() as u64));
                let mut state = model.new_state();
                let x = common::Rng(3).vec(h, 1.0);
                let mut y = vec![0.0f32; h];
                g.bench_function(BenchmarkId::new(isa.name(), h), |b| {
                    b.iter(|| model.step(&mut state, black_box(&x), &mut y).unwrap())
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, step);
criterion_main!(benches);
