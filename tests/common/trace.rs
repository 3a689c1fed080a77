//! The mode-by-mode identity harness: one case is a spec, weights and a
//! batch of ragged sequences with initial states; [`model_trace`] records
//! what a model computes for it in every mode (run; for forward models each
//! stream stepped alone, `step_many`, `step_chunk`), [`ref_trace`] what the
//! plain reference computes under the same labels, and [`compare`] checks
//! them bit for bit. [`cases`] is the matrix of shapes (every cell variant,
//! 1 and 2 layers, reverse, bidirectional concat and sum, ragged streams).

use std::collections::BTreeMap;

use super::*;
use rnncell::reference::{RefState, plain_run, plain_step};

/// Everything computed for one case, by label.
pub type Trace = BTreeMap<String, Vec<f32>>;

/// One case: a spec (with its precision), weights, and a batch of
/// ragged sequences [T, B, I] with initial states.
pub struct Data {
    pub name: String,
    pub spec: ModelSpec,
    pub weights: Vec<LayerWeights>,
    pub steps: usize,
    pub streams: usize,
    pub x: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
    pub lens: Vec<usize>,
    pub specials: bool,
}

impl Data {
    pub fn with_precision(&self, p: WeightPrecision) -> Data {
        Data {
            name: self.name.clone(),
            spec: self.spec.precision(p),
            weights: self.weights.clone(),
            steps: self.steps,
            streams: self.streams,
            x: self.x.clone(),
            h0: self.h0.clone(),
            c0: self.c0.clone(),
            lens: self.lens.clone(),
            specials: self.specials,
        }
    }

    pub fn seq(&self) -> Sequence<'_> {
        Sequence {
            input: &self.x,
            steps: self.steps,
            batch: self.streams,
            batch_major: false,
            seq_lens: Some(&self.lens),
            h0: Some(&self.h0),
            c0: self.spec.has_cell_state().then_some(&self.c0[..]),
            layout: Default::default(),
            lengths: None,
        }
    }

    pub fn xt(&self, t: usize, b: usize) -> &[f32] {
        let n = self.spec.input_size;
        &self.x[(t * self.streams + b) * n..][..n]
    }

    /// h0 and c0 of layer `l`, stream `b` (forward models).
    pub fn h0_of(&self, l: usize, b: usize) -> &[f32] {
        let hr = self.spec.state_size();
        &self.h0[(l * self.streams + b) * hr..][..hr]
    }

    pub fn c0_of(&self, l: usize, b: usize) -> &[f32] {
        let hs = self.spec.hidden_size;
        &self.c0[(l * self.streams + b) * hs..][..hs]
    }

    pub fn init(&self, st: &mut State, b: usize) {
        for l in 0..self.spec.num_layers {
            st.set_h(l, self.h0_of(l, b)).expect("set_h");
            if self.spec.has_cell_state() {
                st.set_c(l, self.c0_of(l, b)).expect("set_c");
            }
        }
    }
}

pub fn record_final(tr: &mut Trace, mode: &str, b: usize, st: &State) {
    for l in 0..st.layers() {
        tr.insert(format!("{mode} stream {b} final h{l}"), st.h(l).to_vec());
        if let Some(c) = st.c(l) {
            tr.insert(format!("{mode} stream {b} final c{l}"), c.to_vec());
        }
    }
}

/// What `m` computes for `d` in every mode.
pub fn model_trace(m: &Model, d: &Data) -> Trace {
    let mut tr = Trace::new();
    let (y, hn, cn) = run_model(m, &d.seq());
    tr.insert("run output".into(), y);
    tr.insert("run h_n".into(), hn);
    tr.insert("run c_n".into(), cn);
    if d.spec.direction != Direction::Forward {
        return tr;
    }
    let hr = d.spec.state_size();
    let nb = d.streams;
    // Each stream stepped alone.
    for b in 0..nb {
        let mut st = m.new_state();
        d.init(&mut st, b);
        let mut y = vec![0.0f32; hr];
        for t in 0..d.lens[b] {
            m.step(&mut st, d.xt(t, b), &mut y).expect("step");
            tr.insert(format!("step stream {b} step {t}"), y.clone());
        }
        record_final(&mut tr, "step", b, &st);
    }
    // step_many over the streams still inside their length.
    let mut states: Vec<State> = (0..nb)
        .map(|b| {
            let mut s = m.new_state();
            d.init(&mut s, b);
            s
        })
        .collect();
    let mut ys = vec![vec![0.0f32; hr]; nb];
    for t in 0..d.steps {
        let on = |b: usize| t < d.lens[b];
        let active: Vec<usize> = (0..nb).filter(|&b| on(b)).collect();
        if active.is_empty() {
            continue;
        }
        let mut sts: Vec<&mut State> = states
            .iter_mut()
            .enumerate()
            .filter(|(b, _)| on(*b))
            .map(|(_, s)| s)
            .collect();
        let xs: Vec<&[f32]> = active.iter().map(|&b| d.xt(t, b)).collect();
        let mut yv: Vec<&mut [f32]> = ys
            .iter_mut()
            .enumerate()
            .filter(|(b, _)| on(*b))
            .map(|(_, y)| y.as_mut_slice())
            .collect();
        m.step_many(&mut sts, &xs, &mut yv).expect("step_many");
        for &b in &active {
            tr.insert(format!("step_many stream {b} step {t}"), ys[b].clone());
        }
    }
    for (b, st) in states.iter().enumerate() {
        record_final(&mut tr, "step_many", b, st);
    }
    // step_chunk in chunks of growing size.
    for b in 0..nb {
        let n = d.lens[b];
        let mut st = m.new_state();
        d.init(&mut st, b);
        let (mut t0, mut k) = (0, 1 + b % 3);
        while t0 < n {
            let t1 = (t0 + k).min(n);
            let xs: Vec<f32> = (t0..t1).flat_map(|t| d.xt(t, b).iter().copied()).collect();
            let mut yc = vec![0.0f32; (t1 - t0) * hr];
            m.step_chunk(&mut st, &xs, &mut yc).expect("step_chunk");
            for t in t0..t1 {
                tr.insert(
                    format!("step_chunk stream {b} step {t}"),
                    yc[(t - t0) * hr..][..hr].to_vec(),
                );
            }
            t0 = t1;
            k += 1;
        }
        record_final(&mut tr, "step_chunk", b, &st);
    }
    tr
}

/// What the plain reference computes for `d` (with `d.spec.precision`),
/// under the labels of [`model_trace`]: `plain_run` for the run, and each
/// stream's `plain_step` trajectory for every stepping mode.
pub fn ref_trace(d: &Data) -> Trace {
    let spec = d.spec;
    let mut tr = Trace::new();
    let r = plain_run(&spec, &d.weights, &d.seq()).expect("plain_run");
    tr.insert("run output".into(), r.output);
    tr.insert("run h_n".into(), r.h_n);
    tr.insert("run c_n".into(), r.c_n);
    if spec.direction != Direction::Forward {
        return tr;
    }
    const MODES: [&str; 3] = ["step", "step_many", "step_chunk"];
    for b in 0..d.streams {
        let mut rs = RefState::<f32>::for_layers(&spec);
        for (l, s) in rs.iter_mut().enumerate() {
            s.h = d.h0_of(l, b).to_vec();
            if spec.has_cell_state() {
                s.c = d.c0_of(l, b).to_vec();
            }
        }
        for t in 0..d.lens[b] {
            let y = plain_step(&spec, &d.weights, &mut rs, d.xt(t, b)).expect("plain_step");
            for mode in MODES {
                tr.insert(format!("{mode} stream {b} step {t}"), y.clone());
            }
        }
        for mode in MODES {
            for (l, s) in rs.iter().enumerate() {
                tr.insert(format!("{mode} stream {b} final h{l}"), s.h.clone());
                if spec.has_cell_state() {
                    tr.insert(format!("{mode} stream {b} final c{l}"), s.c.clone());
                }
            }
        }
    }
    tr
}

/// `Err` naming the first label where `a` and `b` differ.
pub fn compare(what: &str, a: &Trace, b: &Trace) -> std::result::Result<(), String> {
    let (ka, kb): (Vec<&String>, Vec<&String>) = (a.keys().collect(), b.keys().collect());
    if ka != kb {
        return Err(format!("{what}: different labels: {ka:?} vs {kb:?}"));
    }
    for (k, va) in a {
        cmp_bits(&format!("{what}: {k}"), va, &b[k])?;
    }
    Ok(())
}

/// Weights that exercise the storage rules: a zero row of W, a row of R
/// whose max is 1e-37 (a subnormal i8w scale, a zero row; zeros in f16),
/// subnormal f32 weights (flushed first), values in the f16 subnormal
/// range, and exact f16 and bf16 rounding ties.
pub fn add_weight_specials(spec: &ModelSpec, weights: &mut [LayerWeights], rng: &mut DataRng) {
    let (hs, hr) = (spec.hidden_size, spec.state_size());
    const ODD: [f32; 8] = [
        1e-40,
        -3e-39,
        3e-6,
        -1e-7,
        6e-8,
        0.5 + 1.0 / 4096.0,  // f16 tie (→ 0.5)
        0.25 + 1.0 / 1024.0, // bf16 tie (→ 0.25)
        -0.75 - 3.0 / 8192.0,
    ];
    for lw in weights.iter_mut() {
        let cols = lw.w.len() / (spec.cell.gates() * hs);
        lw.w[..cols].fill(0.0);
        let last = spec.cell.gates() * hs - 1; // the last row of R
        for v in &mut lw.r[last * hr..(last + 1) * hr] {
            *v = rng.sym(1e-37);
        }
        if lw.proj.len() > hs {
            lw.proj[hs..2 * hs].fill(-0.0);
        }
        for m in [&mut lw.w, &mut lw.r, &mut lw.proj] {
            for v in m.iter_mut() {
                if rng.below(9) == 0 {
                    *v = ODD[rng.below(ODD.len())];
                }
            }
        }
    }
}

/// The cases of the matrix: every variant of `all_variants` in four
/// configurations (forward 1 layer; forward 2 layers with weight specials;
/// reverse with input specials; bidirectional 2 layers, concat or sum),
/// odd sizes I 5..40, H 3..69, 1/5/13/25 streams for the forward ones.
pub fn cases(p: WeightPrecision) -> Vec<Data> {
    const IN: [usize; 7] = [5, 11, 23, 40, 37, 9, 17];
    const HID: [usize; 8] = [3, 9, 17, 33, 65, 69, 7, 31];
    const PROJ: [usize; 6] = [1, 3, 5, 7, 11, 2];
    const STREAMS: [usize; 4] = [1, 5, 13, 25];
    let mut out = Vec::new();
    for ci in 0..4 {
        for (vi, (name, cell)) in all_variants(PROJ[(ci * 5) % PROJ.len()])
            .into_iter()
            .enumerate()
        {
            let (i, h) = (IN[(vi + ci) % IN.len()], HID[(vi * 3 + ci) % HID.len()]);
            let (dir, layers, merge, streams) = match ci {
                0 => (Direction::Forward, 1, MergeMode::Concat, STREAMS[vi % 4]),
                1 => (
                    Direction::Forward,
                    2,
                    MergeMode::Concat,
                    STREAMS[(vi + 1) % 4],
                ),
                2 => (Direction::Reverse, 1, MergeMode::Concat, 5),
                _ => (
                    Direction::Bidirectional,
                    2,
                    if vi % 2 == 0 {
                        MergeMode::Concat
                    } else {
                        MergeMode::Sum
                    },
                    3,
                ),
            };
            let spec = ModelSpec::new(fit_proj(cell, h), i, h)
                .layers(layers)
                .direction(dir)
                .merge(merge)
                .precision(p);
            let seed = (ci * 100 + vi) as u64;
            let mut rng = DataRng::new(seed ^ 0x7e57);
            let mut weights = random_weights(&spec, seed);
            if ci == 1 {
                add_weight_specials(&spec, &mut weights, &mut rng);
            }
            let steps = 4;
            let ld = spec.num_layers * spec.directions();
            let mut x = rng.vec(steps * streams * i, 1.5);
            let mut h0 = rng.vec(ld * streams * spec.state_size(), 1.0);
            let c0 = rng.vec(ld * streams * h, 2.0);
            let specials = ci == 2;
            if specials {
                sprinkle_specials(&mut rng, &mut x, 11);
                sprinkle_specials(&mut rng, &mut h0, 13);
            }
            let lens = (0..streams)
                .map(|b| if b == 0 { steps } else { rng.below(steps + 1) })
                .collect();
            out.push(Data {
                name: format!(
                    "{name} I {i} H {h} P {} L{layers} {dir:?} {merge:?} B {streams}",
                    spec.proj_size()
                ),
                spec,
                weights,
                steps,
                streams,
                x,
                h0,
                c0,
                lens,
                specials,
            });
        }
    }
    out
}

/// Cases whose input and state are longer than the multi-column kernel's
/// k-chunk (256) and odd (k-pair panels end inside a pair): one forward
/// layer of a few variants, 13 streams (three column groups), so `run`,
/// `step_many` and `step_chunk` each sum across a chunk boundary.
pub fn cases_past_chunk(p: WeightPrecision) -> Vec<Data> {
    cases_sized(p, 261, 259)
}

/// [`cases_past_chunk`] with input size `i` and hidden size `h`.
pub fn cases_sized(p: WeightPrecision, i: usize, h: usize) -> Vec<Data> {
    let (steps, streams) = (2, 13);
    let picked = [
        "lstm",
        "lstm peephole",
        "lstm proj",
        "gru lbr",
        "gru reset-before",
        "rnn tanh",
    ];
    let mut out = Vec::new();
    for (vi, (name, cell)) in all_variants(7).into_iter().enumerate() {
        if !picked.contains(&name) {
            continue;
        }
        let spec = ModelSpec::new(fit_proj(cell, h), i, h).precision(p);
        let seed = 900 + vi as u64;
        let mut rng = DataRng::new(seed ^ 0xc4a2);
        let weights = random_weights_scaled(&spec, seed, 1.0 / (h as f32).sqrt());
        let x = rng.vec(steps * streams * i, 1.5);
        let h0 = rng.vec(streams * spec.state_size(), 1.0);
        let c0 = rng.vec(streams * h, 2.0);
        let lens = (0..streams)
            .map(|b| if b == 0 { steps } else { rng.below(steps + 1) })
            .collect();
        out.push(Data {
            name: format!("{name} I {i} H {h} P {} B {streams}", spec.proj_size()),
            spec,
            weights,
            steps,
            streams,
            x,
            h0,
            c0,
            lens,
            specials: false,
        });
    }
    assert!(out.len() >= 5, "variant names changed: {}", out.len());
    out
}

/// Runs `check` on every case, collects the failures and panics with the
/// first few (and their count), so one run shows how widespread a
/// mismatch is.
pub fn all_cases(
    label: &str,
    precisions: &[WeightPrecision],
    check: impl Fn(&Data) -> std::result::Result<(), String>,
) {
    let data: Vec<Data> = precisions.iter().flat_map(|&p| cases(p)).collect();
    check_cases(label, &data, check)
}

/// [`all_cases`] over the given cases.
pub fn check_cases(
    label: &str,
    data: &[Data],
    check: impl Fn(&Data) -> std::result::Result<(), String>,
) {
    let t0 = std::time::Instant::now();
    let (mut n, mut failures) = (0, Vec::new());
    for d in data {
        n += 1;
        if let Err(e) = check(d) {
            failures.push(format!("{} {}: {e}", d.spec.precision, d.name));
        }
    }
    println!(
        "{label}: {n} cases, {} failed ({:.1?})",
        failures.len(),
        t0.elapsed()
    );
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(6).collect();
        panic!(
            "{label}: {} of {n} cases differ; first ones:\n{}",
            failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `all_cases` over `precisions`: every kernel set of `sets` in every mode
/// == the plain reference, bit for bit.
pub fn models_equal_reference(label: &str, precisions: &[WeightPrecision], sets: &[Kern]) {
    all_cases(label, precisions, |d| equals_reference(d, sets));
}

/// Every kernel set of `sets` in every mode == the plain reference on `d`.
pub fn equals_reference(d: &Data, sets: &[Kern]) -> std::result::Result<(), String> {
    let expect = ref_trace(d);
    for k in sets {
        let m = k.model(d.spec, &d.weights).map_err(|e| e.to_string())?;
        compare(&format!("{k}"), &model_trace(&m, d), &expect)?;
    }
    Ok(())
}
