//! Every cell variant against the independent f64 oracle
//! (`rnncell::reference::oracle_*`, DESIGN §1 written out in f64), on every
//! ISA this machine runs, with random weights uniform in ±1/√H (PyTorch's
//! initialisation) and random inputs, initial states and lengths.
//!
//! Bound tested, on every output, final h and final c:
//!
//! ```text
//!     |model − oracle| ≤ TOL · max(1, |oracle|),   TOL = 2e-6
//! ```
//!
//! i.e. 2e-6 absolute for everything bounded by 1 (every h of an LSTM
//! without projection, GRU and tanh RNN), relative beyond (LSTM c, relu
//! RNN, projections), for single steps, 40-step batches and runs of 1000
//! steps alike. (Measured: at most about 7e-7; the activations alone
//! contribute up to 2.8e-7.) The measured maxima are printed
//! (`cargo test --release --test oracle -- --nocapture`).

mod common;

use common::*;
use rnncell::reference::{RefState, oracle_run, oracle_step};
use rnncell::*;

const TOL: f64 = 2e-6;
const STEP_TOL: f64 = TOL;

/// max over i of |a_i − e_i| / max(1, |e_i|); NaN if any is NaN.
fn scaled_err(a: &[f32], e: &[f64]) -> f64 {
    assert_eq!(a.len(), e.len());
    let mut m = 0.0f64;
    for (&x, &y) in a.iter().zip(e) {
        let d = (x as f64 - y).abs() / y.abs().max(1.0);
        if d.is_nan() || d > m {
            m = d; // NaN sticks
            if d.is_nan() {
                return d;
            }
        }
    }
    m
}

struct Setup {
    spec: ModelSpec,
    steps: usize,
    batch: usize,
    batch_major: bool,
    lens: bool,
    init: bool,
}

/// Runs `s` on every ISA and through the oracle; returns the max scaled
/// error over output, h_n and c_n (every ISA).
fn check_run(s: &Setup, seed: u64) -> f64 {
    let spec = s.spec;
    let weights = random_weights(&spec, seed);
    let mut rng = DataRng::new(seed.wrapping_mul(31).wrapping_add(7));
    let x = rng.vec(s.steps * s.batch * spec.input_size, 1.5);
    let ld = spec.num_layers * spec.directions();
    let h0 = rng.vec(ld * s.batch * spec.state_size(), 1.0);
    let c0 = rng.vec(ld * s.batch * spec.hidden_size, 2.0);
    let lens: Vec<usize> = (0..s.batch)
        .map(|b| {
            if b == 0 {
                s.steps
            } else {
                rng.below(s.steps + 1)
            }
        })
        .collect();
    let seq = Sequence {
        input: &x,
        steps: s.steps,
        batch: s.batch,
        batch_major: s.batch_major,
        seq_lens: s.lens.then_some(&lens[..]),
        h0: s.init.then_some(&h0[..]),
        c0: (s.init && spec.has_cell_state()).then_some(&c0[..]),
        layout: Default::default(),
        lengths: None,
    };
    let exact = oracle_run(&spec, &weights, &seq).expect("oracle");
    let mut worst = 0.0f64;
    for isa in isas() {
        let model = Model::with_isa(spec, &weights, isa).unwrap();
        let (y, hn, cn) = run_model(&model, &seq);
        let e = scaled_err(&y, &exact.output)
            .max(scaled_err(&hn, &exact.h_n))
            .max(scaled_err(&cn, &exact.c_n));
        assert!(
            e <= TOL,
            "{isa}: scaled error {e:e} > {TOL:e} for {spec:?} (T {}, B {})",
            s.steps,
            s.batch
        );
        worst = worst.max(e);
    }
    worst
}

#[test]
fn every_variant_every_shape_matches_oracle() {
    let t0 = std::time::Instant::now();
    let configs = [
        (Direction::Forward, MergeMode::Concat, false, 1),
        (Direction::Forward, MergeMode::Concat, true, 2),
        (Direction::Reverse, MergeMode::Concat, true, 1),
        (Direction::Bidirectional, MergeMode::Concat, false, 2),
        (Direction::Bidirectional, MergeMode::Sum, true, 3),
    ];
    let mut report = String::from("max scaled |model - oracle| per variant (40 steps, batch 3):\n");
    let mut overall = 0.0f64;
    for (vi, (name, cell)) in all_variants(11).into_iter().enumerate() {
        let mut worst = 0.0f64;
        for (ci, &(dir, merge, batch_major, layers)) in configs.iter().enumerate() {
            let spec = ModelSpec::new(cell, 13, 37)
                .layers(layers)
                .direction(dir)
                .merge(merge);
            let s = Setup {
                spec,
                steps: 40,
                batch: 3,
                batch_major,
                lens: ci % 2 == 0,
                init: ci != 0,
            };
            worst = worst.max(check_run(&s, (vi * 100 + ci) as u64));
        }
        report += &format!("  {name:<40} {worst:.2e}\n");
        overall = overall.max(worst);
    }
    report += &format!(
        "  overall {overall:.2e} (bound {TOL:e}), {:.1?}",
        t0.elapsed()
    );
    println!("{report}");
}

/// `Model::run` projects the input in blocks of ~256 columns (steps ×
/// batch rows): 80 steps of 7 rows take 3 blocks, here with per-row lengths
/// (rows ending inside and at block edges), both directions and both
/// layouts.
#[test]
fn every_variant_across_run_blocks() {
    let configs = [
        (Direction::Bidirectional, MergeMode::Concat, true),
        (Direction::Reverse, MergeMode::Concat, false),
    ];
    for (vi, (_, cell)) in all_variants(5).into_iter().enumerate() {
        for (ci, &(dir, merge, batch_major)) in configs.iter().enumerate() {
            let s = Setup {
                spec: ModelSpec::new(cell, 6, 9)
                    .layers(2)
                    .direction(dir)
                    .merge(merge),
                steps: 80,
                batch: 7,
                batch_major,
                lens: true,
                init: true,
            };
            check_run(&s, 9000 + (vi * 10 + ci) as u64);
        }
    }
}

#[test]
fn every_variant_1000_steps() {
    let t0 = std::time::Instant::now();
    let mut report =
        String::from("max scaled |model - oracle| over 1000-step runs (I 16, H 33, 2 layers):\n");
    let mut overall = 0.0f64;
    for (vi, (name, cell)) in all_variants(9).into_iter().enumerate() {
        let s = Setup {
            spec: ModelSpec::new(cell, 16, 33).layers(2),
            steps: 1000,
            batch: 1,
            batch_major: false,
            lens: false,
            init: true,
        };
        let e = check_run(&s, 7000 + vi as u64);
        report += &format!("  {name:<40} {e:.2e}\n");
        overall = overall.max(e);
    }
    report += &format!(
        "  overall {overall:.2e} (bound {TOL:e}), {:.1?}",
        t0.elapsed()
    );
    println!("{report}");
}

#[test]
fn single_steps_match_oracle() {
    // One step from a random state, streaming through `Model::step`.
    let mut overall = 0.0f64;
    for (vi, (name, cell)) in all_variants(17).into_iter().enumerate() {
        for (i, h) in [(1, 1), (7, 31), (64, 65), (129, 127)] {
            let spec = ModelSpec::new(fit_proj(cell, h), i, h).layers(2);
            let weights = random_weights(&spec, 900 + vi as u64 * 7 + h as u64);
            let mut rng = DataRng::new(h as u64 * 13 + vi as u64);
            for isa in isas() {
                let model = Model::with_isa(spec, &weights, isa).unwrap();
                let mut st = model.new_state();
                let mut rs = RefState::<f64>::for_layers(&spec);
                for (l, r) in rs.iter_mut().enumerate() {
                    let hv = rng.vec(spec.state_size(), 1.0);
                    st.set_h(l, &hv).unwrap();
                    r.h = hv.iter().map(|&v| v as f64).collect();
                    if spec.has_cell_state() {
                        let cv = rng.vec(h, 2.0);
                        st.set_c(l, &cv).unwrap();
                        r.c = cv.iter().map(|&v| v as f64).collect();
                    }
                }
                let x = rng.vec(i, 1.5);
                let mut y = vec![0.0f32; spec.state_size()];
                model.step(&mut st, &x, &mut y).unwrap();
                let expect = oracle_step(&spec, &weights, &mut rs, &x).unwrap();
                // Layer 0 is exactly one step's error; the last layer adds
                // the error of its input (layer 0's output).
                let mut e = scaled_err(st.h(0), &rs[0].h);
                if let Some(c) = st.c(0) {
                    e = e.max(scaled_err(c, &rs[0].c));
                }
                e = e.max(scaled_err(&y, &expect));
                assert!(
                    e <= STEP_TOL,
                    "{isa} {name} I {i} H {h}: {e:e} > {STEP_TOL:e}"
                );
                overall = overall.max(e);
            }
        }
    }
    println!("single step: max scaled |model - oracle| = {overall:.2e} (bound {STEP_TOL:e})");
}

/// The textbook GRU of the founding article, in f64:
/// h' = z⊙n + (1 − z)⊙h, with z = σ(W_z x + R_z h + b_z) weighing the
/// candidate; n in the reset-before or linear-before-reset form. Weights in
/// canonical gate order r, z, n.
fn textbook_gru_step(lbr: bool, lw: &LayerWeights, hs: usize, x: &[f32], h: &mut [f64]) {
    let n_in = x.len();
    let dot = |m: &[f32], row: usize, v: &[f64]| -> f64 {
        let k = v.len();
        (0..k).map(|c| m[row * k + c] as f64 * v[c]).sum()
    };
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let hold = h.to_vec();
    let pre = |g: usize, j: usize| {
        let row = g * hs + j;
        dot(&lw.w, row, &xd) + dot(&lw.r, row, &hold) + (lw.b_w[row] + lw.b_r[row]) as f64
    };
    let r: Vec<f64> = (0..hs).map(|j| sig(pre(0, j))).collect();
    let rh: Vec<f64> = (0..hs).map(|j| r[j] * hold[j]).collect();
    assert_eq!(lw.w.len(), 3 * hs * n_in);
    for j in 0..hs {
        let z = sig(pre(1, j));
        let row = 2 * hs + j;
        let n = if lbr {
            dot(&lw.w, row, &xd)
                + lw.b_w[row] as f64
                + r[j] * (dot(&lw.r, row, &hold) + lw.b_r[row] as f64)
        } else {
            dot(&lw.w, row, &xd) + dot(&lw.r, row, &rh) + (lw.b_w[row] + lw.b_r[row]) as f64
        }
        .tanh();
        h[j] = z * n + (1.0 - z) * hold[j];
    }
}

#[test]
fn textbook_gru_conversion() {
    let mut overall = 0.0f64;
    for lbr in [false, true] {
        for (i, hs) in [(3, 5), (17, 33)] {
            let cell = CellKind::Gru(GruOptions {
                linear_before_reset: lbr,
                clip: None,
            });
            let spec = ModelSpec::new(cell, i, hs);
            let textbook = random_weights(&spec, 4242 + hs as u64).remove(0);
            let mut converted = textbook.clone();
            converted.gru_from_textbook(hs);
            // The conversion is an involution and changes only z rows.
            let mut back = converted.clone();
            back.gru_from_textbook(hs);
            assert_eq!(back, textbook);
            assert_ne!(converted, textbook);
            let mut rng = DataRng::new(hs as u64);
            let steps = 200;
            let x = rng.vec(steps * i, 1.5);
            for isa in isas() {
                let model = Model::with_isa(spec, std::slice::from_ref(&converted), isa).unwrap();
                let mut st = model.new_state();
                let mut h = vec![0.0f64; hs];
                let mut y = vec![0.0f32; hs];
                let mut worst = 0.0f64;
                for t in 0..steps {
                    let xt = &x[t * i..(t + 1) * i];
                    model.step(&mut st, xt, &mut y).unwrap();
                    textbook_gru_step(lbr, &textbook, hs, xt, &mut h);
                    worst = worst.max(scaled_err(&y, &h));
                }
                assert!(worst <= TOL, "{isa} lbr {lbr} H {hs}: {worst:e}");
                // And the unconverted weights really are different
                // (the conversion is needed).
                let wrong = Model::with_isa(spec, std::slice::from_ref(&textbook), isa).unwrap();
                let mut st2 = wrong.new_state();
                let mut h2 = vec![0.0f64; hs];
                let mut y2 = vec![0.0f32; hs];
                let mut diff = 0.0f64;
                for t in 0..10 {
                    let xt = &x[t * i..(t + 1) * i];
                    wrong.step(&mut st2, xt, &mut y2).unwrap();
                    textbook_gru_step(lbr, &textbook, hs, xt, &mut h2);
                    diff = diff.max(scaled_err(&y2, &h2));
                }
                assert!(diff > 1e-3, "unconverted weights should disagree");
                overall = overall.max(worst);
            }
        }
    }
    println!("textbook GRU (converted) vs textbook f64 oracle, 200 steps: {overall:.2e}");
}
