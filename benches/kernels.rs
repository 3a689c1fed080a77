//! Kernel benchmarks.
//!
//! * `gemm/…`: our input-projection GEMM (packed panels, bias first, the
//!   deterministic per-row order) against `matrixmultiply::sgemm` on the
//!   shapes of a sequence's input projection: T = 100 columns, I = H,
//!   4H rows (LSTM). Throughput in FLOP (2·4H·I·T).
//! * `gemv/…`: one streaming LSTM/GRU layer step per ISA and size, with
//!   throughput in bytes of packed weights read.
//!
//! `cargo bench --bench kernels`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rnncell::*;
use std::hint::black_box;
use std::time::Duration;

mod common;

fn sizes(default: &[usize]) -> Vec<usize> {
    match std::env::var("RNNCELL_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|v| v.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    let t = 100;
    for h in sizes(&[64, 256, 1024]) {
        let spec = ModelSpec::new(CellKind::lstm(), h, h);
        let w = common::random_weights(&spec, 3);
        let x = common::Rng(9).vec(t * h, 1.0);
        g.throughput(Throughput::Elements((2 * 4 * h * h * t) as u64));
        for isa in Isa::available() {
            if isa == Isa::Scalar && h > 256 {
                continue;
            }
            let model = Model::with_isa(spec, &w, isa).unwrap();
            let pl = rnncell::bench_internals::pre_len(&model);
            let mut out = vec![0.0f32; t * pl];
            let xs: Vec<&[f32]> = x.chunks(h).collect();
            g.bench_function(
                BenchmarkId::new(format!("rnncell-{}", isa.name()), h),
                |b| {
                    b.iter(|| {
                        let mut outs: Vec<&mut [f32]> = out.chunks_mut(pl).collect();
                        rnncell::bench_internals::input_projection(
                            &model,
                            black_box(&xs),
                            &mut outs,
                        )
                    })
                },
            );
        }
        // matrixmultiply: C[4H × T] = W[4H × I] · X[I × T], X stored as T columns of I.
        let wm = &w[0].w;
        let mut cm = vec![0.0f32; 4 * h * t];
        g.bench_function(BenchmarkId::new("matrixmultiply", h), |b| {
            b.iter(|| {
                // SAFETY: the pointers and strides describe the three
                // buffers above exactly: W is 4H×I row-major, X is I×T with
                // column stride I (row stride 1), C is 4H×T row-major.
                unsafe {
                    matrixmultiply::sgemm(
                        4 * h,
                        h,
                        t,
                        1.0,
                        wm.as_ptr(),
                        h as isize,
                        1,
                        x.as_ptr(),
                        1,
                        h as isize,
                        0.0,
                        cm.as_mut_ptr(),
                        t as isize,
                        1,
                    )
                }
            })
        });
    }
    g.finish();
}

fn gemv(c: &mut Criterion) {
    for (name, cell) in [("lstm", CellKind::lstm()), ("gru", CellKind::gru())] {
        let mut g = c.benchmark_group(format!("gemv/{name}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        g.sample_size(20);
        for h in sizes(&[7, 64, 129, 256]) {
            let spec = ModelSpec::new(cell, h, h);
            let w = common::random_weights(&spec, 5);
            for isa in Isa::available() {
                let model = Model::with_isa(spec, &w, isa).unwrap();
                g.throughput(Throughput::Bytes(model.weight_bytes() as u64));
                let mut st = model.new_state();
                let x = common::Rng(1).vec(h, 1.0);
                let mut y = vec![0.0f32; h];
                g.bench_function(BenchmarkId::new(isa.name(), h), |b| {
                    b.iter(|| model.step(&mut st, black_box(&x), &mut y).unwrap())
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, gemm, gemv);
criterion_main!(benches);
