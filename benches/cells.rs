//! Streaming step latency per ISA, cell and size (batch 1, I = H), and per
//! weight precision at H = 256 and 1024.
//!
//! `cargo bench --bench cells` ; filter e.g. `-- lstm/step/avx512` or
//! `-- precision/gru1024`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rnncell::*;
use std::hint::black_box;
use std::time::Duration;

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

/// The step of `step` in every weight precision, at H = 256 and 1024
/// (group `precision/<cell><H>`, id `<isa>/<precision>`); the throughput is
/// the model's weight bytes, so that criterion reports GB/s read.
fn precision(c: &mut Criterion) {
    for (name, cell) in [("lstm", CellKind::lstm()), ("gru", CellKind::gru())] {
        for h in [256, 1024] {
            let mut g = c.benchmark_group(format!("precision/{name}{h}"));
            g.warm_up_time(Duration::from_millis(500));
            g.measurement_time(Duration::from_secs(2));
            g.sample_size(30);
            let spec = ModelSpec::new(cell, h, h);
            let w = common::random_weights(&spec, 7);
            for isa in Isa::available() {
                for p in WeightPrecision::ALL {
                    let model = Model::with_isa(spec.precision(p), &w, isa).unwrap();
                    g.throughput(Throughput::Bytes(model.weight_bytes() as u64));
                    let mut state = model.new_state();
                    let x = common::Rng(3).vec(h, 1.0);
                    let mut y = vec![0.0f32; h];
                    g.bench_function(BenchmarkId::new(isa.name(), p.name()), |b| {
                        b.iter(|| model.step(&mut state, black_box(&x), &mut y).unwrap())
                    });
                }
            }
            g.finish();
        }
    }
}

/// A state decaying toward zero must not slow a step down: the same step
/// with h and c reset before every call to normal values, to subnormal
/// values (|v| < 1.2e-38) and to zeros.
fn denormals(c: &mut Criterion) {
    let mut g = c.benchmark_group("denormal/lstm256");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);
    let h = 256;
    let spec = ModelSpec::new(CellKind::lstm(), h, h);
    // Zero biases and zero input: everything downstream of a subnormal
    // state stays subnormal, as when a stream decays toward silence.
    let mut w = common::random_weights(&spec, 11);
    for lw in &mut w {
        lw.b_w.fill(0.0);
        lw.b_r.fill(0.0);
    }
    for isa in Isa::available() {
        let model = Model::with_isa(spec, &w, isa).unwrap();
        let x = vec![0.0f32; h];
        for (name, scale) in [("normal", 0.5f32), ("subnormal", 1e-39), ("zero", 0.0)] {
            let init = common::Rng(5).vec(h, scale);
            let mut state = model.new_state();
            let mut y = vec![0.0f32; h];
            g.bench_function(BenchmarkId::new(isa.name(), name), |b| {
                b.iter(|| {
                    state.set_h(0, &init).unwrap();
                    state.set_c(0, &init).unwrap();
                    model.step(&mut state, black_box(&x), &mut y).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, step, precision, denormals);
criterion_main!(benches);
