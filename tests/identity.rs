//! Bit identity (DESIGN §2): on random models and inputs, every ISA in
//! `Isa::available()`, and the portable 16-lane emulation of the AVX-512
//! geometry (`common::Kern::Wide16`), returns `to_bits`-identical outputs and states to the
//! plain f32 reference (`rnncell::reference::plain_*`, the kernels'
//! operations written as plain loops) and therefore to `Isa::Scalar`, for
//! `Model::step` over several steps and for `Model::run`; and a stream run
//! in a batch by `run` is bit-identical to the same stream stepped alone
//! through `step`, to `step_many` over several streams and to `step_chunk`.
//!
//! "Identical" means equal bits, except that any NaN matches any NaN: NaN
//! payloads are not part of the guarantee (when two NaNs meet, x86 and a
//! software `fmaf` may propagate different operands' payloads). NaN-ness
//! itself must match exactly.
//!
//! proptest drives the shapes (every cell variant and option, 1–3 layers,
//! every direction and merge mode, sizes that are 1, primes, lane widths
//! ± 1 and occasionally up to 1024, inputs with NaN/±inf/huge/denormal
//! values sprinkled in). `PROPTEST_CASES` sets the number of cases.

mod common;

use common::*;
use proptest::prelude::*;
use rnncell::reference::{RefState, plain_run, plain_step};
use rnncell::*;

#[derive(Clone, Debug)]
struct Case {
    spec: ModelSpec,
    steps: usize,
    batch: usize,
    batch_major: bool,
    lens: bool,
    init: bool,
    specials: bool,
    input_scale: f32,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        spec_strategy(),
        1usize..=5,
        1usize..=3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::bool::weighted(0.2),
        prop_oneof![3 => Just(1.0f32), 1 => Just(8.0f32)],
        any::<u64>(),
    )
        .prop_map(
            |(spec, steps, batch, batch_major, lens, init, specials, input_scale, seed)| {
                let (steps, batch) = if is_large(&spec) {
                    (steps.min(2), 1)
                } else {
                    (steps, batch)
                };
                Case {
                    spec,
                    steps,
                    batch,
                    batch_major,
                    lens,
                    init,
                    specials,
                    input_scale,
                    seed,
                }
            },
        )
}

fn check(case: &Case) -> std::result::Result<(), String> {
    let spec = case.spec;
    let (t_len, b_len) = (case.steps, case.batch);
    let (n_in, hs, hr) = (spec.input_size, spec.hidden_size, spec.state_size());
    let lstm = spec.has_cell_state();
    let ld = spec.num_layers * spec.directions();
    let weights = random_weights(&spec, case.seed);
    let mut rng = DataRng::new(case.seed ^ 0x00ab_cdef_1234_5678);
    let mut x = rng.vec(t_len * b_len * n_in, case.input_scale);
    let mut h0 = rng.vec(ld * b_len * hr, 1.0);
    let c0 = rng.vec(ld * b_len * hs, 2.0);
    if case.specials {
        sprinkle_specials(&mut rng, &mut x, 7);
        sprinkle_specials(&mut rng, &mut h0, 13);
    }
    let lens: Vec<usize> = (0..b_len).map(|_| rng.below(t_len + 1)).collect();
    let len_of = |b: usize| if case.lens { lens[b] } else { t_len };
    let seq = Sequence {
        input: &x,
        steps: t_len,
        batch: b_len,
        batch_major: case.batch_major,
        seq_lens: case.lens.then_some(&lens[..]),
        h0: case.init.then_some(&h0[..]),
        c0: (case.init && lstm).then_some(&c0[..]),
        ..Sequence::new(&x, t_len, b_len)
    };
    let reference = plain_run(&spec, &weights, &seq).map_err(|e| e.to_string())?;
    let kerns = kernel_sets();
    let models: Vec<Model> = kerns
        .iter()
        .map(|k| k.model(spec, &weights).map_err(|e| e.to_string()))
        .collect::<std::result::Result<_, _>>()?;

    // Model::run on every ISA == the plain reference run.
    for (k, m) in kerns.iter().zip(&models) {
        let (y, hn, cn) = run_model(m, &seq);
        cmp_bits(&format!("{k} run output"), &y, &reference.output)?;
        cmp_bits(&format!("{k} run h_n"), &hn, &reference.h_n)?;
        cmp_bits(&format!("{k} run c_n"), &cn, &reference.c_n)?;
    }

    let out_sz = spec.output_size();
    let at = |t: usize, b: usize| {
        if case.batch_major {
            b * t_len + t
        } else {
            t * b_len + b
        }
    };
    if spec.direction != Direction::Forward {
        for m in &models {
            let mut st = m.new_state();
            let mut y = vec![0.0; hr];
            match m.step(&mut st, &x[..n_in], &mut y) {
                Err(Error::Unsupported(_)) => {}
                other => return Err(format!("step on {:?}: {other:?}", spec.direction)),
            }
        }
        return Ok(());
    }
    // Forward: each stream stepped alone through Model::step == its row of
    // the batched run == plain_step, at every step, on every ISA.
    for (isa, m) in kerns.iter().zip(&models) {
        for b in 0..b_len {
            let mut st = m.new_state();
            let mut rs = RefState::<f32>::for_layers(&spec);
            if case.init {
                for (l, r) in rs.iter_mut().enumerate() {
                    let hv = &h0[(l * b_len + b) * hr..][..hr];
                    st.set_h(l, hv).map_err(|e| e.to_string())?;
                    r.h = hv.to_vec();
                    if lstm {
                        let cv = &c0[(l * b_len + b) * hs..][..hs];
                        st.set_c(l, cv).map_err(|e| e.to_string())?;
                        r.c = cv.to_vec();
                    }
                }
            }
            let mut y = vec![0.0f32; hr];
            for t in 0..len_of(b) {
                let xt = &x[at(t, b) * n_in..][..n_in];
                m.step(&mut st, xt, &mut y).map_err(|e| e.to_string())?;
                let ry = plain_step(&spec, &weights, &mut rs, xt).map_err(|e| e.to_string())?;
                let what = |s: &str| format!("{isa} stream {b} step {t}: {s}");
                cmp_bits(&what("step y vs plain_step"), &y, &ry)?;
                cmp_bits(
                    &what("step y vs run output"),
                    &y,
                    &reference.output[at(t, b) * out_sz..][..out_sz],
                )?;
                for (l, r) in rs.iter().enumerate() {
                    cmp_bits(&what(&format!("h of layer {l}")), st.h(l), &r.h)?;
                    if lstm {
                        cmp_bits(&what(&format!("c of layer {l}")), st.c(l).unwrap(), &r.c)?;
                    }
                }
            }
            for t in len_of(b)..t_len {
                let row = &reference.output[at(t, b) * out_sz..][..out_sz];
                if row.iter().any(|v| v.to_bits() != 0) {
                    return Err(format!("output past the end of stream {b} is not +0"));
                }
            }
            for l in 0..spec.num_layers {
                cmp_bits(
                    &format!("{isa} stream {b}: stepped final h of layer {l} vs run h_n"),
                    st.h(l),
                    &reference.h_n[(l * b_len + b) * hr..][..hr],
                )?;
                if lstm {
                    cmp_bits(
                        &format!("{isa} stream {b}: stepped final c of layer {l} vs run c_n"),
                        st.c(l).unwrap(),
                        &reference.c_n[(l * b_len + b) * hs..][..hs],
                    )?;
                }
            }
        }
    }
    // The throughput calls give the same bits: `step_many` over all the
    // streams still inside their length at each step, and `step_chunk` of
    // each stream in chunks of growing size.
    let init = |st: &mut State, b: usize| -> std::result::Result<(), String> {
        if case.init {
            for l in 0..spec.num_layers {
                st.set_h(l, &h0[(l * b_len + b) * hr..][..hr])
                    .map_err(|e| e.to_string())?;
                if lstm {
                    st.set_c(l, &c0[(l * b_len + b) * hs..][..hs])
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    };
    let check_final = |what: &str, st: &State, b: usize| -> std::result::Result<(), String> {
        for l in 0..spec.num_layers {
            cmp_bits(
                &format!("{what} stream {b}: final h of layer {l}"),
                st.h(l),
                &reference.h_n[(l * b_len + b) * hr..][..hr],
            )?;
            if lstm {
                cmp_bits(
                    &format!("{what} stream {b}: final c of layer {l}"),
                    st.c(l).unwrap(),
                    &reference.c_n[(l * b_len + b) * hs..][..hs],
                )?;
            }
        }
        Ok(())
    };
    for (isa, m) in kerns.iter().zip(&models) {
        let mut states: Vec<State> = (0..b_len).map(|_| m.new_state()).collect();
        for (b, st) in states.iter_mut().enumerate() {
            init(st, b)?;
        }
        let mut ys = vec![vec![0.0f32; hr]; b_len];
        for t in 0..t_len {
            let on = |b: &usize| t < len_of(*b);
            let active: Vec<usize> = (0..b_len).filter(on).collect();
            if active.is_empty() {
                continue;
            }
            let mut sts: Vec<&mut State> = states
                .iter_mut()
                .enumerate()
                .filter(|(b, _)| on(b))
                .map(|(_, s)| s)
                .collect();
            let xs: Vec<&[f32]> = active
                .iter()
                .map(|&b| &x[at(t, b) * n_in..][..n_in])
                .collect();
            let mut yv: Vec<&mut [f32]> = ys
                .iter_mut()
                .enumerate()
                .filter(|(b, _)| on(b))
                .map(|(_, y)| y.as_mut_slice())
                .collect();
            m.step_many(&mut sts, &xs, &mut yv)
                .map_err(|e| e.to_string())?;
            for &b in &active {
                cmp_bits(
                    &format!("{isa} step_many stream {b} step {t}"),
                    &ys[b],
                    &reference.output[at(t, b) * out_sz..][..out_sz],
                )?;
            }
        }
        for (b, st) in states.iter().enumerate() {
            check_final(&format!("{isa} step_many"), st, b)?;
        }
        for b in 0..b_len {
            let n = len_of(b);
            let mut st = m.new_state();
            init(&mut st, b)?;
            let (mut t0, mut k) = (0, 1 + b % 3);
            while t0 < n {
                let t1 = (t0 + k).min(n);
                let xs: Vec<f32> = (t0..t1)
                    .flat_map(|t| x[at(t, b) * n_in..][..n_in].iter().copied())
                    .collect();
                let mut yc = vec![0.0f32; (t1 - t0) * hr];
                m.step_chunk(&mut st, &xs, &mut yc)
                    .map_err(|e| e.to_string())?;
                for t in t0..t1 {
                    cmp_bits(
                        &format!("{isa} step_chunk stream {b} step {t}"),
                        &yc[(t - t0) * hr..][..hr],
                        &reference.output[at(t, b) * out_sz..][..out_sz],
                    )?;
                }
                t0 = t1;
                k += 1;
            }
            check_final(&format!("{isa} step_chunk"), &st, b)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(96, "proptest-regressions/identity.txt"))]

    #[test]
    fn every_isa_bit_identical(case in case_strategy()) {
        let r = check(&case);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Not left to chance: every variant at every size of the list (and a few
/// large ones up to 1024), stepped on every ISA against the plain
/// reference.
#[test]
fn every_variant_every_size_bit_identical() {
    let t0 = std::time::Instant::now();
    let isas = kernel_sets();
    println!("kernel sets: {isas:?}");
    let mut sizes: Vec<usize> = SIZES.to_vec();
    sizes.extend([255, 256, 257, 511, 1023, 1024]);
    let mut checked = 0;
    for (si, &h) in sizes.iter().enumerate() {
        // A varying input size and projection size from the list too.
        let i = SIZES[(si * 7 + 3) % SIZES.len()];
        let p = SIZES[(si * 11 + 5) % SIZES.len()];
        let i = if h == 1024 { 1024 } else { i };
        for (vi, (name, cell)) in all_variants(p).into_iter().enumerate() {
            let spec = ModelSpec::new(fit_proj(cell, h), i, h);
            let weights = random_weights(&spec, (si * 100 + vi) as u64);
            let mut rng = DataRng::new((si * 1000 + vi) as u64);
            let steps: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(i, 1.5)).collect();
            let mut expect = RefState::<f32>::for_layers(&spec);
            let expect_y: Vec<Vec<f32>> = steps
                .iter()
                .map(|x| plain_step(&spec, &weights, &mut expect, x).unwrap())
                .collect();
            for &isa in &isas {
                let m = isa.model(spec, &weights).unwrap();
                let mut st = m.new_state();
                let mut y = vec![0.0f32; spec.state_size()];
                for (t, x) in steps.iter().enumerate() {
                    m.step(&mut st, x, &mut y).unwrap();
                    if let Err(e) = cmp_bits("y", &y, &expect_y[t]) {
                        panic!("{isa} {name} I {i} H {h} P {p} step {t}: {e}");
                    }
                }
                cmp_bits("h", st.h(0), &expect[0].h).unwrap();
                if let Some(c) = st.c(0) {
                    cmp_bits("c", c, &expect[0].c).unwrap();
                }
                checked += 1;
            }
        }
    }
    println!(
        "{checked} (variant, size, ISA) combinations bit-identical ({:.1?})",
        t0.elapsed()
    );
}

/// NaN in means NaN out, on every ISA alike, and the state after it
/// matches the reference (NaN-ness included).
#[test]
fn nan_propagates_identically() {
    for (vi, (name, cell)) in all_variants(5).into_iter().enumerate() {
        let spec = ModelSpec::new(cell, 9, 17);
        let weights = random_weights(&spec, 77 + vi as u64);
        let mut x = DataRng::new(vi as u64).vec(9, 1.0);
        x[4] = f32::NAN;
        let mut rs = RefState::<f32>::for_layers(&spec);
        let ry = plain_step(&spec, &weights, &mut rs, &x).unwrap();
        // Every weight is non-zero, so the NaN reaches every unit, through
        // clamps, relu and projection alike.
        assert!(ry.iter().all(|v| v.is_nan()), "{name}: NaN input vanished");
        for isa in kernel_sets() {
            let m = isa.model(spec, &weights).unwrap();
            let mut st = m.new_state();
            let mut y = vec![0.0; spec.state_size()];
            m.step(&mut st, &x, &mut y).unwrap();
            cmp_bits(&format!("{isa} {name}"), &y, &ry).unwrap();
            assert!(y.iter().all(|v| v.is_nan()), "{isa} {name}: {y:?}");
        }
    }
}

/// The denormal rule (README, "Denormals"): whether a value is flushed
/// must not depend on the ISA, so subnormal weights, biases, peepholes,
/// projections, inputs and initial states give the same bits everywhere,
/// and the same as the plain reference (which applies the rule too).
#[test]
fn subnormal_weights_inputs_and_states_bit_identical() {
    const TINY: [f32; 6] = [1e-40, -1e-40, 1e-45, -1.1e-38, 5.9e-39, -0.0];
    let sub = |rng: &mut DataRng, v: &mut [f32]| {
        for x in v.iter_mut() {
            if rng.below(3) == 0 {
                *x = TINY[rng.below(TINY.len())];
            }
        }
    };
    for (vi, (name, cell)) in all_variants(6).into_iter().enumerate() {
        for layers in [1, 2] {
            let spec = ModelSpec::new(cell, 11, 19).layers(layers);
            let (hs, hr) = (spec.hidden_size, spec.state_size());
            let mut rng = DataRng::new(500 + vi as u64);
            let mut weights = random_weights(&spec, 900 + vi as u64);
            for lw in &mut weights {
                for t in [
                    &mut lw.w,
                    &mut lw.r,
                    &mut lw.b_w,
                    &mut lw.b_r,
                    &mut lw.peephole,
                    &mut lw.proj,
                    &mut lw.proj_bias,
                ] {
                    sub(&mut rng, t);
                }
            }
            let xs: Vec<Vec<f32>> = (0..4)
                .map(|_| {
                    let mut x = rng.vec(11, 1.0);
                    sub(&mut rng, &mut x);
                    x
                })
                .collect();
            let mut h0 = rng.vec(layers * hr, 1e-36);
            let mut c0 = rng.vec(layers * hs, 1e-36);
            sub(&mut rng, &mut h0);
            sub(&mut rng, &mut c0);
            let lstm = spec.has_cell_state();
            // step: every kernel set against plain_step from the same
            // (subnormal) initial state.
            let mut rs = RefState::<f32>::for_layers(&spec);
            for (l, r) in rs.iter_mut().enumerate() {
                r.h = h0[l * hr..][..hr].to_vec();
                if lstm {
                    r.c = c0[l * hs..][..hs].to_vec();
                }
            }
            let ry: Vec<Vec<f32>> = xs
                .iter()
                .map(|x| plain_step(&spec, &weights, &mut rs, x).unwrap())
                .collect();
            for k in kernel_sets() {
                let m = k.model(spec, &weights).unwrap();
                let mut st = m.new_state();
                for l in 0..layers {
                    st.set_h(l, &h0[l * hr..][..hr]).unwrap();
                    if lstm {
                        st.set_c(l, &c0[l * hs..][..hs]).unwrap();
                    }
                }
                let mut y = vec![0.0f32; hr];
                for (t, x) in xs.iter().enumerate() {
                    m.step(&mut st, x, &mut y).unwrap();
                    let what = format!("{k} {name} L{layers} step {t}");
                    cmp_bits(&what, &y, &ry[t]).unwrap();
                    for l in 0..layers {
                        assert_no_subnormal(&what, st.h(l));
                        assert_no_subnormal(&what, st.c(l).unwrap_or(&[]));
                    }
                }
                for (l, r) in rs.iter().enumerate() {
                    cmp_bits(&format!("{k} {name} h{l}"), st.h(l), &r.h).unwrap();
                    if lstm {
                        cmp_bits(&format!("{k} {name} c{l}"), st.c(l).unwrap(), &r.c).unwrap();
                    }
                }
            }
            // run: the same sequence, h0/c0 given, against plain_run.
            let x: Vec<f32> = xs.concat();
            let seq = Sequence {
                h0: Some(&h0),
                c0: lstm.then_some(&c0[..]),
                ..Sequence::new(&x, xs.len(), 1)
            };
            let r = plain_run(&spec, &weights, &seq).unwrap();
            for k in kernel_sets() {
                let m = k.model(spec, &weights).unwrap();
                let (y, hn, cn) = run_model(&m, &seq);
                let what = format!("{k} {name} L{layers} run");
                cmp_bits(&what, &y, &r.output).unwrap();
                cmp_bits(&what, &hn, &r.h_n).unwrap();
                cmp_bits(&what, &cn, &r.c_n).unwrap();
                assert_no_subnormal(&what, &y);
                assert_no_subnormal(&what, &hn);
                assert_no_subnormal(&what, &cn);
            }
        }
    }
}

/// Every value is a zero or a normal number (or inf/NaN): never subnormal.
fn assert_no_subnormal(what: &str, v: &[f32]) {
    if let Some(i) = v.iter().position(|x| x.is_subnormal()) {
        panic!("{what}: element {i} is subnormal: {:e}", v[i]);
    }
}

/// A state decaying toward zero (zero input, zero biases, contracting
/// weights) passes through the range where IEEE arithmetic produces
/// subnormals; with the denormal rule every h and c after every step is a
/// zero or a normal number, on every ISA, bit for bit as the reference,
/// and the state reaches exact zeros.
#[test]
fn decaying_state_never_holds_subnormals() {
    for (vi, (name, cell)) in all_variants(7).into_iter().enumerate() {
        let spec = ModelSpec::new(cell, 5, 23).layers(2);
        let (hs, hr) = (spec.hidden_size, spec.state_size());
        let mut weights = random_weights_scaled(&spec, 300 + vi as u64, 0.5 / (hs as f32).sqrt());
        for lw in &mut weights {
            lw.b_w.fill(0.0);
            lw.b_r.fill(0.0);
            lw.proj_bias.fill(0.0);
        }
        let lstm = spec.has_cell_state();
        let x = vec![0.0f32; 5];
        let h0 = DataRng::new(vi as u64).vec(hr, 1e-30);
        let c0 = DataRng::new(vi as u64 + 1).vec(hs, 1e-30);
        let mut rs = RefState::<f32>::for_layers(&spec);
        for r in &mut rs {
            r.h = h0.clone();
            if lstm {
                r.c = c0.clone();
            }
        }
        let steps = 300;
        let mut expect = Vec::with_capacity(steps);
        let mut tiny_seen = false;
        for _ in 0..steps {
            expect.push(plain_step(&spec, &weights, &mut rs, &x).unwrap());
            let all = rs.iter().flat_map(|r| r.h.iter().chain(&r.c));
            tiny_seen |= all.clone().any(|v| *v != 0.0 && v.abs() < 1e-36);
            assert_no_subnormal(&format!("reference {name}"), &rs[0].h);
        }
        assert!(
            tiny_seen,
            "{name}: the state never got near the subnormal range"
        );
        for r in &rs {
            assert!(
                r.h.iter().chain(&r.c).all(|v| *v == 0.0),
                "{name}: not decayed to zero after {steps} steps: {:?}",
                r.h
            );
        }
        for k in kernel_sets() {
            let m = k.model(spec, &weights).unwrap();
            let mut st = m.new_state();
            for l in 0..spec.num_layers {
                st.set_h(l, &h0).unwrap();
                if lstm {
                    st.set_c(l, &c0).unwrap();
                }
            }
            let mut y = vec![0.0f32; hr];
            for (t, e) in expect.iter().enumerate() {
                m.step(&mut st, &x, &mut y).unwrap();
                let what = format!("{k} {name} step {t}");
                cmp_bits(&what, &y, e).unwrap();
                for l in 0..spec.num_layers {
                    assert_no_subnormal(&what, st.h(l));
                    assert_no_subnormal(&what, st.c(l).unwrap_or(&[]));
                }
            }
        }
    }
}

/// `set_h`/`set_c` store subnormals as zeros of the same sign (and leave
/// every other value, NaN payloads included, as given); `run` loads
/// `h0`/`c0` the same way (visible in `h_n`/`c_n` of a zero-length
/// sequence).
#[test]
fn subnormal_states_are_stored_as_signed_zeros() {
    let vals = [
        1e-40f32,
        -1e-40,
        f32::from_bits(1),
        f32::from_bits(0x807f_ffff),
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        0.0,
        -0.0,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        0.25,
    ];
    let want: Vec<u32> = vec![
        0,
        0x8000_0000,
        0,
        0x8000_0000,
        f32::MIN_POSITIVE.to_bits(),
        (-f32::MIN_POSITIVE).to_bits(),
        0,
        0x8000_0000,
        0x7fc0_1234,
        f32::INFINITY.to_bits(),
        0.25f32.to_bits(),
    ];
    let spec = ModelSpec::new(CellKind::lstm(), 3, vals.len());
    let w = random_weights(&spec, 1);
    for k in kernel_sets() {
        let m = k.model(spec, &w).unwrap();
        let mut st = m.new_state();
        st.set_h(0, &vals).unwrap();
        st.set_c(0, &vals).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(st.h(0)), want, "{k} set_h");
        assert_eq!(bits(st.c(0).unwrap()), want, "{k} set_c");
        let x = [0.5f32; 3];
        let (mut hn, mut cn) = (vec![1.0f32; vals.len()], vec![1.0f32; vals.len()]);
        let seq = Sequence {
            h0: Some(&vals),
            c0: Some(&vals),
            seq_lens: Some(&[0]),
            ..Sequence::new(&x, 1, 1)
        };
        let mut out = vec![1.0f32; vals.len()];
        m.run(
            &seq,
            &mut SequenceOutput {
                output: &mut out,
                h_n: Some(&mut hn),
                c_n: Some(&mut cn),
            },
        )
        .unwrap();
        assert_eq!(bits(&hn), want, "{k} run h0 -> h_n");
        assert_eq!(bits(&cn), want, "{k} run c0 -> c_n");
    }
}
