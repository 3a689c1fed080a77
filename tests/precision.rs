//! Reduced-precision weights (issue 12; design §2.1, §2.2; the contract is
//! the module docs of `rnncell::reference`, "Weight precisions"):
//!
//! * a model built with f16 or bf16 weights returns the bits of the f32
//!   model built from `round_weights(..)` (the weights rounded and widened),
//!   and of `plain_run` / `plain_step` with the precision;
//! * a model built with i8w or i8 weights returns the bits of `plain_run` /
//!   `plain_step` with the precision (per-row scales, two chains: x part,
//!   then h part; i8 also quantizes the activations and dots them exactly);
//!
//! on every kernel set of this CPU (`common::kernel_sets`, the Wide16
//! emulation included), for every cell variant (`common::all_variants`),
//! and in every mode: `run` with ragged lengths and initial states
//! (forward, reverse, bidirectional concat and sum, 1 and 2 layers), and,
//! for forward models, each stream stepped alone, `step_many` over 1, 5,
//! 13 or 25 streams, and `step_chunk` in growing chunks. Outputs and every
//! state are compared; "same bits" is `common::same_bits` (any NaN matches
//! any NaN).
//!
//! The reference path's own checks (f16/bf16 reference == f32 reference of
//! the rounded weights; the i8w reference against the f64 oracle on q·s)
//! and the errors for weights a precision cannot store are here too.

mod common;

use common::*;
use rnncell::reference::{RefState, oracle_run, plain_run, plain_step, round_weights};
use rnncell::*;

/// The harness itself, with f32 weights: every kernel set in every mode ==
/// the plain reference (what tests/identity.rs checks, in this file's
/// matrix). Passes before the reduced-precision kernels exist.
#[test]
fn f32_model_equals_reference_in_every_mode() {
    models_equal_reference(
        "f32 model == plain reference",
        &[WeightPrecision::F32],
        &kernel_sets(),
    );
}

/// Design §2.1: the f16 (bf16) model == the f32 model of the rounded and
/// widened weights, bit for bit, on every kernel set and mode.
/// Every precision past the multi-column kernel's k-chunk (input and
/// state longer than 256 and odd): every kernel set in every mode == the
/// plain reference.
#[test]
fn every_precision_equals_reference_past_a_k_chunk() {
    let data: Vec<Data> = WeightPrecision::ALL
        .into_iter()
        .flat_map(cases_past_chunk)
        .collect();
    check_cases("past a k-chunk == plain reference", &data, |d| {
        equals_reference(d, &kernel_sets())
    });
}

/// K ≥ 512 and 13 columns: where `avx512-amx` runs its tiles
/// (`kernels/amx.rs`: `MIN_QUADS`, `MIN_COLS`), two k-chunks and a tail of
/// quads, every integer dot of this CPU.
#[test]
fn i8_equals_reference_where_the_tiles_run() {
    let data = cases_sized(WeightPrecision::Int8, 517, 513);
    check_cases("K >= 512, 13 columns == plain reference", &data, |d| {
        equals_reference(d, &int8_kernel_sets())
    });
}

#[test]
fn f16_bf16_equal_f32_of_rounded_weights() {
    let ps = [WeightPrecision::F16, WeightPrecision::Bf16];
    all_cases("f16/bf16 model == f32 model of round_weights", &ps, |d| {
        let rounded = round_weights(&d.spec, &d.weights).map_err(|e| e.to_string())?;
        let spec32 = d.spec.precision(WeightPrecision::F32);
        for k in kernel_sets() {
            let m = k.model(d.spec, &d.weights).map_err(|e| e.to_string())?;
            let m32 = k.model(spec32, &rounded).map_err(|e| e.to_string())?;
            compare(&format!("{k}"), &model_trace(&m, d), &model_trace(&m32, d))?;
        }
        Ok(())
    });
}

/// The f16 (bf16) model == `plain_run` / `plain_step` with the precision.
#[test]
fn f16_bf16_equal_plain_reference() {
    let ps = [WeightPrecision::F16, WeightPrecision::Bf16];
    models_equal_reference("f16/bf16 model == plain reference", &ps, &kernel_sets());
}

/// Design §2.2: the i8w model == `plain_run` / `plain_step` with i8w (the
/// scaled two-chain rule), bit for bit, on every kernel set and mode.
#[test]
fn i8w_equals_scaled_rule_reference() {
    models_equal_reference(
        "i8w model == plain reference",
        &[WeightPrecision::Int8Weights],
        &kernel_sets(),
    );
}

/// The i8 rule: the i8 model (int8 weights and activations, exact integer
/// dots) == `plain_run` / `plain_step` with i8, bit for bit, on every
/// kernel set and mode.
#[test]
fn i8_equals_integer_rule_reference() {
    models_equal_reference(
        "i8 model == plain reference",
        &[WeightPrecision::Int8],
        &int8_kernel_sets(),
    );
}

/// The reference's own f16/bf16 rule: the plain reference with the
/// precision == the plain f32 reference of `round_weights`, in every mode;
/// and the f64 oracle likewise (bit for bit in f64).
#[test]
fn reference_f16_bf16_equal_reference_f32_of_rounded_weights() {
    let ps = [WeightPrecision::F16, WeightPrecision::Bf16];
    all_cases(
        "f16/bf16 reference == f32 reference of round_weights",
        &ps,
        |d| {
            let mut d32 = d.with_precision(WeightPrecision::F32);
            d32.weights = round_weights(&d.spec, &d.weights).map_err(|e| e.to_string())?;
            compare("plain", &ref_trace(d), &ref_trace(&d32))?;
            if d.specials {
                return Ok(()); // NaN payloads may differ
            }
            let a = oracle_run(&d.spec, &d.weights, &d.seq()).map_err(|e| e.to_string())?;
            let b = oracle_run(&d32.spec, &d32.weights, &d32.seq()).map_err(|e| e.to_string())?;
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (what, x, y) in [
                ("output", &a.output, &b.output),
                ("h_n", &a.h_n, &b.h_n),
                ("c_n", &a.c_n, &b.c_n),
            ] {
                if bits(x) != bits(y) {
                    return Err(format!("oracle {what} differs"));
                }
            }
            Ok(())
        },
    );
}

/// max |a − e| / max(1, |e|) (NaN if any is NaN).
fn scaled_err(a: &[f32], e: &[f64]) -> f64 {
    assert_eq!(a.len(), e.len());
    a.iter()
        .zip(e)
        .map(|(&x, &y)| (x as f64 - y).abs() / y.abs().max(1.0))
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// The precisions' references against the f64 oracle on the weights as
/// the precision stores them (same tolerance as tests/oracle.rs: the
/// arithmetic differs, the weights do not), and the rounding is real: the
/// reduced-precision result differs from f32 but stays close to it.
#[test]
fn reference_of_each_precision_matches_its_oracle() {
    const TOL: f64 = 2e-6;
    let ps = [
        WeightPrecision::F16,
        WeightPrecision::Bf16,
        WeightPrecision::Int8Weights,
    ];
    let worst = std::cell::Cell::new([0.0f64; 4]);
    all_cases("reference vs oracle", &ps, |d| {
        if d.specials {
            return Ok(());
        }
        let seq = d.seq();
        let plain = plain_run(&d.spec, &d.weights, &seq).map_err(|e| e.to_string())?;
        let exact = oracle_run(&d.spec, &d.weights, &seq).map_err(|e| e.to_string())?;
        let e = scaled_err(&plain.output, &exact.output)
            .max(scaled_err(&plain.h_n, &exact.h_n))
            .max(scaled_err(&plain.c_n, &exact.c_n));
        if e.is_nan() || e > TOL {
            return Err(format!("|plain − oracle| = {e:e} > {TOL:e}"));
        }
        let f32ref = plain_run(&d.spec.precision(WeightPrecision::F32), &d.weights, &seq)
            .map_err(|e| e.to_string())?;
        let exact64: Vec<f64> = f32ref.h_n.iter().map(|&v| v as f64).collect();
        let dev = scaled_err(&plain.h_n, &exact64);
        if dev.is_nan() || dev >= 0.05 {
            return Err(format!("|{} − f32| of h_n = {dev:e}", d.spec.precision));
        }
        let mut w = worst.get();
        w[0] = w[0].max(e);
        w[1] = w[1].max(dev);
        w[2] += 1.0;
        if dev > 0.0 {
            w[3] += 1.0;
        }
        worst.set(w);
        Ok(())
    });
    let [e, dev, n, changed] = worst.get();
    println!(
        "max scaled |plain − oracle| {e:e}; max |reduced − f32| of h_n {dev:e}; \
         h_n changed by the precision in {changed} of {n} cases"
    );
    // A case can hide the rounding (clips or relu saturating every unit of
    // a small model); most must show it.
    assert!(
        changed >= 0.9 * n,
        "the rounding changed h_n in only {changed} of {n} cases"
    );
}

/// A weight the precision cannot store is an `InvalidArgument` naming the
/// tensor and index, from the model as from the reference.
#[test]
fn models_reject_weights_the_precision_cannot_store() {
    let spec = ModelSpec::new(CellKind::lstm(), 9, 5);
    let cases: [(WeightPrecision, f32, &str); 5] = [
        (
            WeightPrecision::F16,
            70000.0,
            "layer 0 weight_ih[3,7]: 70000 overflows f16",
        ),
        (WeightPrecision::Bf16, f32::MAX, "layer 0 weight_ih[3,7]"),
        (
            WeightPrecision::Int8Weights,
            f32::NAN,
            "layer 0 weight_ih[3,7]",
        ),
        (
            WeightPrecision::Int8Weights,
            f32::INFINITY,
            "layer 0 weight_ih[3,7]",
        ),
        (WeightPrecision::Int8, f32::NAN, "layer 0 weight_ih[3,7]"),
    ];
    let mut failures = Vec::new();
    for (p, bad, want) in cases {
        let spec = spec.precision(p);
        let mut w = random_weights(&spec, 5);
        w[0].w[3 * 9 + 7] = bad;
        let x = [0.5f32; 9];
        match plain_run(&spec, &w, &Sequence::new(&x, 1, 1)) {
            Err(Error::InvalidArgument(m)) if m.starts_with(want) => {}
            other => panic!("reference {p} {bad}: {other:?}"),
        }
        for k in kernel_sets() {
            match k.model(spec, &w) {
                Err(Error::InvalidArgument(m)) if m.contains(want) => {}
                Err(e) => failures.push(format!("{k} {p} {bad}: wrong error {e}")),
                Ok(_) => failures.push(format!("{k} {p} {bad}: model built")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// i8 at the largest K (`MAX_INT8_K` inputs): every weight ±127 after
/// quantization and every activation ±127, so each int32 dot reaches
/// K · 127² (< 2^31) or sums terms of both signs; the model equals the
/// reference (whose i64 dot asserts it fits) bit for bit on every kernel
/// set, and one more input is rejected by name.
#[test]
fn i8_is_exact_at_the_largest_k() {
    let k = MAX_INT8_K;
    for (case, relu) in [(0, true), (1, true), (2, false)] {
        let cell = if relu {
            CellKind::rnn_relu()
        } else {
            CellKind::rnn_tanh()
        };
        let spec = ModelSpec::new(cell, k, 2).precision(WeightPrecision::Int8);
        let mut w = LayerWeights::zeros(1, 2, k, 2);
        // Row 0 all +s (dot = K · 127²), row 1 alternating signs.
        let s = 1e-3f32;
        for j in 0..k {
            w.w[j] = s;
            w.w[k + j] = if (j + case) % 2 == 0 { s } else { -s };
        }
        let x: Vec<f32> = (0..k)
            .map(|j| match case {
                0 => 1.0,
                1 => {
                    if j % 3 == 0 {
                        -1.0
                    } else {
                        1.0
                    }
                }
                _ => -1.0,
            })
            .collect();
        let want = plain_step(&spec, &[w.clone()], &mut RefState::for_layers(&spec), &x).unwrap();
        for kern in int8_kernel_sets() {
            let m = kern.model(spec, std::slice::from_ref(&w)).unwrap();
            let mut st = m.new_state();
            let mut y = vec![0.0f32; 2];
            m.step(&mut st, &x, &mut y).unwrap();
            let same = y.iter().zip(&want).all(|(&a, &b)| same_bits(a, b));
            assert!(same, "{kern} case {case}: {y:?} vs {want:?}");
        }
        if case == 0 {
            // The row of +127s: I = K · 127², rescaled by s/127 · 1/127.
            let exact = (k as f64) * 127.0 * 127.0 * (s as f64 / 127.0) / 127.0;
            assert!(
                (want[0] as f64 - exact).abs() < 1e-5 * exact,
                "{want:?} vs {exact}"
            );
        }
    }
    let e = ModelSpec::new(CellKind::rnn_relu(), k + 1, 2)
        .precision(WeightPrecision::Int8)
        .validate()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("input_size {} exceeds {k}", k + 1)),
        "{e}"
    );
    let e = ModelSpec::new(CellKind::gru(), 4, k + 1)
        .precision(WeightPrecision::Int8)
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("hidden_size"), "{e}");
    ModelSpec::new(CellKind::rnn_relu(), k + 1, 2)
        .validate()
        .unwrap();
}

/// The accuracy each precision promises (README, "Reduced precision"), as
/// bounds: random PyTorch-initialised models (U(±1/√H)), inputs in ±1,
/// 1000 steps. Each bound is about 2× the largest error measured by
/// `examples/precision_accuracy.rs` over H = 64…1024 and the two
/// torch-trained models (AMD EPYC Zen 3, 2026-12-01; results are the same
/// bits on every ISA). `vs f32`: against our f32 model on the same weights;
/// `arith`: against the f64 oracle on the weights as the precision stores
/// them, i.e. what the f32 arithmetic adds to the rounding of the weights
/// (for i8 also the rounding of the activations);
/// `drift`: the error over steps 900–1000 is at most twice the error over
/// steps 100–200 (no blow-up).
#[test]
fn reduced_precision_error_bounds() {
    // (precision, bound vs f32, bound vs the f64 model of the stored
    // weights). i8 rounds the activations too, so its second bound is that
    // rounding, not f32 arithmetic.
    let bounds = [
        (WeightPrecision::F16, 5e-4, 2e-6),
        (WeightPrecision::Bf16, 4e-3, 2e-6),
        (WeightPrecision::Int8Weights, 1e-2, 2e-6),
        (WeightPrecision::Int8, 1.5e-2, 1e-2),
    ];
    let (t, h) = (1000, 64);
    let mut failures = Vec::new();
    for cell in [CellKind::lstm(), CellKind::gru(), CellKind::rnn_tanh()] {
        let spec = ModelSpec::new(cell, h, h);
        let w = random_weights(&spec, 11);
        let mut rng = DataRng::new(12);
        let x = rng.vec(t * h, 1.0);
        let seq = Sequence::new(&x, t, 1);
        let y32 = run_model(&Model::new(spec, &w).unwrap(), &seq).0;
        for (p, bound, arith_bound) in bounds {
            let sp = spec.precision(p);
            let y = run_model(&Model::new(sp, &w).unwrap(), &seq).0;
            let y64r = oracle_run(&sp, &w, &seq).unwrap().output;
            let err = |a: usize, b: usize| {
                (a * h..b * h)
                    .map(|i| (y[i] - y32[i]).abs())
                    .fold(0f32, f32::max)
            };
            let (all, early, late) = (err(0, t), err(100, 200), err(900, 1000));
            let arith = max_abs_diff(&y, &y64r);
            let name = format!("{} {p}", cell.name());
            if all > bound || all == 0.0 {
                failures.push(format!(
                    "{name}: max |y − y_f32| = {all:e} (bound {bound:e})"
                ));
            }
            if late > 2.0 * early {
                failures.push(format!("{name}: drift {late:e} late vs {early:e} early"));
            }
            if arith > arith_bound {
                failures.push(format!(
                    "{name}: {arith:e} from the f64 rounded-weight model"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `Model::weight_bytes` (and so `rnncell_model_info`) reports the bytes
/// the panels really hold: with E packed weight elements (rows padded to
/// whole panels) and K = I = H columns per row, f32 is 4E, f16 and bf16 2E,
/// i8w E plus one f32 scale per packed row (4E/K), i8 that plus one i32
/// offset correction per packed row; biases are f32 in all; i8 pads each
/// row of its k-quad panels to a multiple of 4 columns.
#[test]
fn weight_bytes_are_the_real_bytes_of_each_precision() {
    for k in kernel_sets() {
        for cell in [CellKind::lstm(), CellKind::gru(), CellKind::rnn_tanh()] {
            let h = 40;
            let spec = ModelSpec::new(cell, h, h);
            let w = random_weights(&spec, 3);
            let bytes = |p| k.model(spec.precision(p), &w).unwrap().weight_bytes();
            let (b32, b16, bbf, b8, b8q) = (
                bytes(WeightPrecision::F32),
                bytes(WeightPrecision::F16),
                bytes(WeightPrecision::Bf16),
                bytes(WeightPrecision::Int8Weights),
                bytes(WeightPrecision::Int8),
            );
            let e = (b32 - b16) / 2;
            assert!(e >= cell.gates() * h * 2 * h, "{k} {cell:?}: {e} elements");
            assert_eq!(b16, bbf, "{k} {cell:?}");
            assert_eq!(b8, b16 - e + 4 * e / h, "{k} {cell:?}");
            // i8: i8w's bytes (K = 40 needs no k-quad padding) plus one i32
            // offset correction per packed row ...
            assert_eq!(b8q, b8 + 4 * e / h, "{k} {cell:?}");
            // ... and K = 41 pads each row to 44 columns.
            let odd = ModelSpec::new(cell, h + 1, h).precision(WeightPrecision::Int8);
            let wo = random_weights(&odd, 4);
            let bo = k.model(odd, &wo).unwrap().weight_bytes();
            let bw = k
                .model(odd.precision(WeightPrecision::Int8Weights), &wo)
                .unwrap()
                .weight_bytes();
            let rows_x = bw - b8; // i8w: one more byte per packed row of W
            assert_eq!(bo, b8q + 4 * rows_x, "{k} {cell:?}: {bo} vs {bw}");
        }
    }
}
