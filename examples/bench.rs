//! The benchmark table of the README: µs per time step for
//! cell × mode × H × batch × ISA × weight precision, single thread, I = H.
//!
//! ```text
//! cargo run --release --example bench                      # full table
//! cargo run --release --example bench -- --quick           # H = 64, 256 only
//! cargo run --release --example bench -- --json out.json   # also write JSON
//! cargo run --release --example bench -- --sizes 64,128 --cells lstm --modes step,seq --isa avx2
//! cargo run --release --example bench -- --cells lstm,gru,gru0,rnn   # gru0: reset-before GRU
//! cargo run --release --example bench -- --modes seq --batches 1     # seq with batch 1 only
//! cargo run --release --example bench -- --precision f32,bf16   # or `all`; default f32
//! cargo run --release --example bench -- --precision i8 --int-dot avx512-amx  # not the default dot
//! ```
//!
//! `--precision` takes [`WeightPrecision`] names (`f32`, `f16`, `bf16`,
//! `i8w`, `i8`) or `all`. With more than f32 the table gains a precision column;
//! every JSON row carries `"precision"` (its name) whatever the list.
//!
//! Modes (the peers' method, ../shared/peers/README.md):
//! * `step`: one `Model::step` per time step, state carried; µs per call.
//! * `seq`: one `Model::run` over T = 100 steps of B sequences; call time / T.
//! * `chunk`: `Model::step_chunk` with K = 16 frames; call time / K.
//! * `streams`: `Model::step_many` advancing B = 16 streams one step; µs per
//!   call (all 16 streams).
//!
//! Each number is the median of 7 repetitions, each repetition the mean of
//! enough calls to last ≥ 20 ms, after a warm-up. For A/B comparisons on a
//! noisy host, `--reps 60 --rep-ms 2 --stat min` takes the fastest of many
//! short repetitions instead (interference only ever adds time).

use rnncell::*;
use std::hint::black_box;
use std::time::Instant;

fn rng_vec(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn weights(spec: &ModelSpec) -> Vec<LayerWeights> {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let (g, h) = (spec.cell.gates(), spec.hidden_size);
    let k = 1.0 / (h as f32).sqrt();
    (0..spec.num_layers * spec.directions())
        .map(|i| {
            let mut lw = LayerWeights::zeros(
                g,
                h,
                spec.layer_input_size(i / spec.directions()),
                spec.state_size(),
            );
            lw.w = rng_vec(&mut seed, lw.w.len(), k);
            lw.r = rng_vec(&mut seed, lw.r.len(), k);
            lw.b_w = rng_vec(&mut seed, lw.b_w.len(), k);
            lw.b_r = rng_vec(&mut seed, lw.b_r.len(), k);
            lw
        })
        .collect()
}

/// How [`measure`] repeats and summarises.
#[derive(Clone, Copy)]
struct Plan {
    reps: usize,
    rep_s: f64,
    min: bool,
}

/// The median (or minimum) over `plan.reps` repetitions of the mean time of
/// `f` in µs, divided by `per`.
fn measure(plan: Plan, per: f64, mut f: impl FnMut()) -> f64 {
    // Warm-up and calibration.
    let t0 = Instant::now();
    let mut calls = 0u64;
    while t0.elapsed().as_secs_f64() < 0.02 || calls < 3 {
        f();
        calls += 1;
    }
    let per_call = t0.elapsed().as_secs_f64() / calls as f64;
    let iters = ((plan.rep_s / per_call).ceil() as u64).max(1);
    let mut reps: Vec<f64> = (0..plan.reps.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64 / per
        })
        .collect();
    reps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if plan.min {
        reps[0]
    } else {
        reps[reps.len() / 2]
    }
}

struct Row {
    cell: &'static str,
    mode: &'static str,
    h: usize,
    batch: usize,
    isa: Isa,
    precision: WeightPrecision,
    us: f64,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: Vec<usize> = arg(&args, "--sizes")
        .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick {
                vec![64, 256]
            } else {
                vec![64, 128, 256, 512, 1024]
            }
        });
    let cells: Vec<String> = arg(&args, "--cells")
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_else(|| vec!["lstm".into(), "gru".into()]);
    let modes: Vec<String> = arg(&args, "--modes")
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_else(|| {
            ["step", "seq", "chunk", "streams"]
                .map(String::from)
                .to_vec()
        });
    let isas: Vec<Isa> = match arg(&args, "--isa") {
        Some(s) => s
            .split(',')
            .filter_map(Isa::from_name)
            .filter(|i| i.is_supported())
            .collect(),
        None => Isa::available()
            .into_iter()
            .filter(|&i| i != Isa::Scalar)
            .collect(),
    };
    let batches: Option<Vec<usize>> =
        arg(&args, "--batches").map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect());
    let json = arg(&args, "--json");
    // `i8` only: the integer dot sequence (`bench_internals::int_dots`),
    // instead of the ISA's default, to compare sequences in one binary.
    let int_dot = arg(&args, "--int-dot");
    let precisions: Vec<WeightPrecision> = match arg(&args, "--precision").as_deref() {
        None => vec![WeightPrecision::F32],
        Some("all") => WeightPrecision::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| {
                WeightPrecision::from_name(n).ok_or_else(|| {
                    let names: Vec<&str> = WeightPrecision::ALL.iter().map(|p| p.name()).collect();
                    Error::InvalidArgument(format!(
                        "--precision: unknown precision {n:?} (expected {} or all)",
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?,
    };
    // The table of the default (f32 only) stays as it was.
    let show_precision = precisions != [WeightPrecision::F32];
    let precision_names: Vec<&str> = precisions.iter().map(|p| p.name()).collect();
    let plan = Plan {
        reps: arg(&args, "--reps")
            .and_then(|v| v.parse().ok())
            .unwrap_or(7),
        rep_s: arg(&args, "--rep-ms")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(20.0)
            / 1e3,
        min: arg(&args, "--stat").is_some_and(|v| v == "min"),
    };
    let mut rows = Vec::new();
    println!(
        "rnncell {} bench: 1 thread, {}, I = H; µs per time step (streams: per call of 16)",
        env!("CARGO_PKG_VERSION"),
        precision_names.join(", ")
    );
    let precision_col = |p: &str| {
        if show_precision {
            format!(" {p:<5}")
        } else {
            String::new()
        }
    };
    println!(
        "{:<5} {:<8} {:>5} {:>5} {:<7}{} {:>10}",
        "cell",
        "mode",
        "H",
        "batch",
        "isa",
        precision_col("prec"),
        "µs"
    );
    for cell_name in &cells {
        let (cell_name, cell): (&'static str, CellKind) = match cell_name.as_str() {
            "lstm" => ("lstm", CellKind::lstm()),
            "gru" => ("gru", CellKind::gru()),
            // The reset-before GRU (ONNX's default, the peers' `gru0`).
            "gru0" => ("gru0", CellKind::gru_for(Framework::Onnx)),
            "rnn" => ("rnn", CellKind::rnn_tanh()),
            other => {
                eprintln!("unknown cell {other}");
                continue;
            }
        };
        for &h in &sizes {
            let spec = ModelSpec::new(cell, h, h);
            let w = weights(&spec);
            for (&isa, &precision) in isas
                .iter()
                .flat_map(|i| precisions.iter().map(move |p| (i, p)))
            {
                let model = match (&int_dot, precision) {
                    (Some(d), WeightPrecision::Int8) => {
                        bench_internals::model_with_int_dot(spec.precision(precision), &w, isa, d)?
                    }
                    _ => Model::with_isa(spec.precision(precision), &w, isa)?,
                };
                let mut seed = 99u64;
                for mode in &modes {
                    let cases: &[usize] = match mode.as_str() {
                        "step" | "chunk" => &[1],
                        "seq" => &[1, 16],
                        "streams" => &[16],
                        _ => &[],
                    };
                    for &batch in cases {
                        if mode == "seq" && batches.as_ref().is_some_and(|b| !b.contains(&batch)) {
                            continue;
                        }
                        let us = match mode.as_str() {
                            "step" => {
                                let mut st = model.new_state();
                                let x = rng_vec(&mut seed, h, 1.0);
                                let mut y = vec![0.0; h];
                                measure(plan, 1.0, || {
                                    model.step(&mut st, black_box(&x), &mut y).unwrap()
                                })
                            }
                            "chunk" => {
                                let k = 16;
                                let mut st = model.new_state();
                                let x = rng_vec(&mut seed, k * h, 1.0);
                                let mut y = vec![0.0; k * h];
                                measure(plan, k as f64, || {
                                    model.step_chunk(&mut st, black_box(&x), &mut y).unwrap()
                                })
                            }
                            "seq" => {
                                let t = 100;
                                let x = rng_vec(&mut seed, t * batch * h, 1.0);
                                let mut y = vec![0.0; t * batch * h];
                                let seq = Sequence::new(&x, t, batch);
                                measure(plan, t as f64, || {
                                    model
                                        .run(
                                            &seq,
                                            &mut SequenceOutput {
                                                output: &mut y,
                                                h_n: None,
                                                c_n: None,
                                            },
                                        )
                                        .unwrap()
                                })
                            }
                            "streams" => {
                                let mut states: Vec<State> =
                                    (0..batch).map(|_| model.new_state()).collect();
                                let xs: Vec<Vec<f32>> =
                                    (0..batch).map(|_| rng_vec(&mut seed, h, 1.0)).collect();
                                let mut ys: Vec<Vec<f32>> = vec![vec![0.0; h]; batch];
                                measure(plan, 1.0, || {
                                    let mut st: Vec<&mut State> = states.iter_mut().collect();
                                    let x: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
                                    let mut y: Vec<&mut [f32]> =
                                        ys.iter_mut().map(|v| v.as_mut_slice()).collect();
                                    model.step_many(&mut st, &x, &mut y).unwrap()
                                })
                            }
                            _ => continue,
                        };
                        println!(
                            "{cell_name:<5} {mode:<8} {h:>5} {batch:>5} {:<7}{} {us:>10.2}",
                            isa.name(),
                            precision_col(precision.name())
                        );
                        rows.push(Row {
                            cell: cell_name,
                            mode: if mode == "step" {
                                "step"
                            } else if mode == "seq" {
                                "seq"
                            } else if mode == "chunk" {
                                "chunk"
                            } else {
                                "streams"
                            },
                            h,
                            batch,
                            isa,
                            precision,
                            us,
                        });
                    }
                }
            }
        }
    }
    if let Some(path) = json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"cell": r.cell, "mode": r.mode, "hidden": r.h, "input": r.h,
                    "batch": r.batch, "isa": r.isa.name(), "precision": r.precision.name(),
                    "us_per_step": r.us})
            })
            .collect();
        let doc = serde_json::json!({"crate": "rnncell", "version": env!("CARGO_PKG_VERSION"),
            "threads": 1, "dtype": precision_names.join(","), "results": v});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap())
            .map_err(|e| Error::Io(e.to_string()))?;
        println!("wrote {path}");
    }
    Ok(())
}
