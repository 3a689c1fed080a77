//! Bit-identity of the throughput calls: `step_many` vs stepping each
//! stream alone, `step_chunk` vs `step`, and `run` over a batch vs `step`
//! per sequence, for every ISA and cell variant.

use rnncell::*;

mod common;

use common::{DataRng, bits};

fn cells() -> Vec<CellKind> {
    vec![
        CellKind::lstm(),
        CellKind::Lstm(LstmOptions {
            peephole: true,
            clip: Some(0.8),
            ..Default::default()
        }),
        CellKind::Lstm(LstmOptions {
            proj_size: 5,
            proj_bias: true,
            proj_clip: Some(0.3),
            cell_clip: Some(1.5),
            coupling: Coupling::InputFromForget,
            ..Default::default()
        }),
        CellKind::Lstm(LstmOptions {
            coupling: Coupling::ForgetFromInput,
            ..Default::default()
        }),
        CellKind::gru(),
        CellKind::gru_reset_before(),
        CellKind::Gru(GruOptions {
            linear_before_reset: false,
            clip: Some(0.6),
        }),
        CellKind::rnn_tanh(),
        CellKind::rnn_relu(),
    ]
}

#[test]
fn many_chunk_and_batch_match_step() {
    let mut rng = DataRng::new(0x9e3779b97f4a7c15);
    for isa in common::kernel_sets() {
        for cell in cells() {
            // n streams: 19, or 27 so that calls of more than MAX_COLS = 24
            // streams are split (27, 26, 25 → two calls; fewer as streams
            // leave).
            for &(i, h, layers, n) in &[
                (3, 5, 2, 19),
                (17, 33, 1, 19),
                (8, 16, 1, 27),
                (40, 67, 2, 19),
                (300, 20, 1, 19),
            ] {
                let spec = ModelSpec::new(cell, i, h).layers(layers);
                let w =
                    common::random_weights_scaled(&spec, rng.next_u64(), 1.5 / (h as f32).sqrt());
                let model = isa.model(spec, &w).unwrap();
                let hr = spec.state_size();
                let t_len = 7;
                let xs: Vec<Vec<f32>> = (0..n).map(|_| rng.vec(t_len * i, 1.0)).collect();
                // Reference: each stream alone with step.
                let mut want: Vec<Vec<f32>> = Vec::new();
                for x in &xs {
                    let mut st = model.new_state();
                    let mut y = vec![0.0; hr];
                    let mut all = Vec::new();
                    for t in 0..t_len {
                        model.step(&mut st, &x[t * i..(t + 1) * i], &mut y).unwrap();
                        all.extend_from_slice(&y);
                    }
                    want.push(all);
                }
                // step_many, with streams leaving: stream s runs only while t < len(s).
                let lens: Vec<usize> = (0..n)
                    .map(|s| if s % 3 == 0 { t_len } else { 1 + s % t_len })
                    .collect();
                let mut states: Vec<State> = (0..n).map(|_| model.new_state()).collect();
                let mut got: Vec<Vec<f32>> = vec![Vec::new(); n];
                for t in 0..t_len {
                    let active: Vec<usize> = (0..n).filter(|&s| t < lens[s]).collect();
                    let mut ys: Vec<Vec<f32>> = vec![vec![0.0; hr]; active.len()];
                    let x_refs: Vec<&[f32]> =
                        active.iter().map(|&s| &xs[s][t * i..(t + 1) * i]).collect();
                    let mut st_refs: Vec<&mut State> = states
                        .iter_mut()
                        .enumerate()
                        .filter(|(s, _)| t < lens[*s])
                        .map(|(_, st)| st)
                        .collect();
                    let mut y_refs: Vec<&mut [f32]> =
                        ys.iter_mut().map(|y| y.as_mut_slice()).collect();
                    model.step_many(&mut st_refs, &x_refs, &mut y_refs).unwrap();
                    for (k, &s) in active.iter().enumerate() {
                        got[s].extend_from_slice(&ys[k]);
                    }
                }
                for s in 0..n {
                    assert_eq!(
                        bits(&got[s]),
                        bits(&want[s][..lens[s] * hr]),
                        "step_many {isa} {cell:?} {i}x{h} stream {s}"
                    );
                }
                // step_chunk with uneven chunks.
                let mut st = model.new_state();
                let mut out = Vec::new();
                let mut t = 0;
                for k in [3, 1, 2, 1] {
                    let k = k.min(t_len - t);
                    let mut ys = vec![0.0; k * hr];
                    model
                        .step_chunk(&mut st, &xs[0][t * i..(t + k) * i], &mut ys)
                        .unwrap();
                    out.extend_from_slice(&ys);
                    t += k;
                }
                assert_eq!(
                    bits(&out),
                    bits(&want[0][..t * hr]),
                    "step_chunk {isa} {cell:?}"
                );
                // run over a batch (time-major) with seq_lens.
                let b_len = n;
                let mut input = vec![0.0; t_len * b_len * i];
                for b in 0..b_len {
                    for t in 0..t_len {
                        input[(t * b_len + b) * i..][..i]
                            .copy_from_slice(&xs[b][t * i..(t + 1) * i]);
                    }
                }
                let mut seq = Sequence::new(&input, t_len, b_len);
                seq.seq_lens = Some(&lens);
                let mut y = vec![0.0; t_len * b_len * hr];
                model
                    .run(
                        &seq,
                        &mut SequenceOutput {
                            output: &mut y,
                            h_n: None,
                            c_n: None,
                        },
                    )
                    .unwrap();
                for b in 0..b_len {
                    for t in 0..t_len {
                        let row = &y[(t * b_len + b) * hr..][..hr];
                        if t < lens[b] {
                            assert_eq!(
                                bits(row),
                                bits(&want[b][t * hr..(t + 1) * hr]),
                                "run {isa} {cell:?} b {b} t {t}"
                            );
                        } else {
                            assert!(row.iter().all(|&v| v == 0.0));
                        }
                    }
                }
            }
        }
    }
}

/// `run` of one batch over every layer and direction, with `seq_lens`.
fn run_batch(
    model: &Model,
    input: &[f32],
    t_len: usize,
    b_len: usize,
    batch_major: bool,
    lens: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let sp = model.spec();
    let mut seq = Sequence::new(input, t_len, b_len);
    seq.batch_major = batch_major;
    seq.seq_lens = Some(lens);
    let mut y = vec![f32::NAN; t_len * b_len * sp.output_size()];
    let mut hn = vec![f32::NAN; sp.num_layers * sp.directions() * b_len * sp.state_size()];
    model
        .run(
            &seq,
            &mut SequenceOutput {
                output: &mut y,
                h_n: Some(&mut hn),
                c_n: None,
            },
        )
        .unwrap();
    (y, hn)
}

/// Long chunks and large batches are processed in blocks (at most 256
/// columns, fewer for a large layer: H = 8192 gives 4H = 32768 floats a
/// column and 128 columns a block); results do not depend on it: a chunk
/// of K frames spanning several blocks equals K steps, and a run over B
/// rows spanning several batch blocks equals B runs of one row (every
/// direction, three layers, sequence lengths including 0), bit for bit.
#[test]
fn chunks_and_batches_spanning_blocks_match() {
    let mut rng = DataRng::new(0x5eed_b10c);
    let proj = |p| {
        CellKind::Lstm(LstmOptions {
            proj_size: p,
            ..Default::default()
        })
    };
    // (cell, I, H, layers, K = B)
    let cases = [
        (CellKind::lstm(), 3, 5, 2, 520),
        (CellKind::gru_reset_before(), 4, 9, 3, 530),
        (proj(2), 3, 8192, 2, 130),
    ];
    for isa in common::kernel_sets() {
        for &(cell, i, h, layers, k) in &cases {
            // The large layer is slow on the emulated geometry; the block
            // logic is the same for every kernel set.
            if h > 1000 && isa == common::Kern::Wide16 {
                continue;
            }
            let spec = ModelSpec::new(cell, i, h).layers(layers);
            let w = common::random_weights_scaled(&spec, rng.next_u64(), 1.5 / (h as f32).sqrt());
            let model = isa.model(spec, &w).unwrap();
            let hr = spec.state_size();
            let xs = rng.vec(k * i, 1.0);
            let mut st = model.new_state();
            let mut want = Vec::new();
            let mut y = vec![0.0; hr];
            for t in 0..k {
                model
                    .step(&mut st, &xs[t * i..(t + 1) * i], &mut y)
                    .unwrap();
                want.extend_from_slice(&y);
            }
            // One chunk of K, then K − 1 and 1 more (a smaller K reuses the
            // workspace).
            let mut st = model.new_state();
            let mut got = vec![0.0; k * hr];
            model.step_chunk(&mut st, &xs, &mut got).unwrap();
            assert_eq!(
                bits(&got),
                bits(&want),
                "step_chunk K = {k} {isa} {cell:?} H {h}"
            );
            let mut st = model.new_state();
            let (a, b) = got.split_at_mut((k - 1) * hr);
            model.step_chunk(&mut st, &xs[..(k - 1) * i], a).unwrap();
            model.step_chunk(&mut st, &xs[(k - 1) * i..], b).unwrap();
            assert_eq!(
                bits(&got),
                bits(&want),
                "step_chunk K-1, 1 {isa} {cell:?} H {h}"
            );

            // run over B = K rows of 3 steps against each row alone.
            let t_len = if h > 1000 { 2 } else { 3 };
            let b_len = k;
            let dirs: &[Direction] = if h > 1000 {
                &[Direction::Forward]
            } else {
                &[Direction::Forward, Direction::Bidirectional]
            };
            for &dir in dirs {
                let spec = spec.direction(dir).layers(if h > 1000 { 2 } else { 3 });
                let w =
                    common::random_weights_scaled(&spec, rng.next_u64(), 1.0 / (h as f32).sqrt());
                let model = isa.model(spec, &w).unwrap();
                let (o, ld) = (spec.output_size(), spec.num_layers * spec.directions());
                let batch_major = dir != Direction::Forward;
                let input = rng.vec(t_len * b_len * i, 1.0);
                let lens: Vec<usize> = (0..b_len).map(|b| (b * 7 + b / 5) % (t_len + 1)).collect();
                let (y, hn) = run_batch(&model, &input, t_len, b_len, batch_major, &lens);
                // Rows of every batch block, both ends of each.
                for b in (0..b_len).filter(|b| b % 9 == 0 || b % 128 <= 1 || b % 128 == 127) {
                    let at = |t: usize| {
                        if batch_major {
                            b * t_len + t
                        } else {
                            t * b_len + b
                        }
                    };
                    let mut x1 = Vec::new();
                    for t in 0..t_len {
                        x1.extend_from_slice(&input[at(t) * i..][..i]);
                    }
                    let (y1, hn1) = run_batch(&model, &x1, t_len, 1, batch_major, &lens[b..b + 1]);
                    for t in 0..t_len {
                        assert_eq!(
                            bits(&y[at(t) * o..][..o]),
                            bits(&y1[t * o..][..o]),
                            "run {isa} {cell:?} H {h} {dir:?} b {b} t {t}"
                        );
                    }
                    for s in 0..ld {
                        assert_eq!(
                            bits(&hn[(s * b_len + b) * hr..][..hr]),
                            bits(&hn1[s * hr..][..hr]),
                            "run h_n {isa} {cell:?} H {h} {dir:?} b {b} layer·dir {s}"
                        );
                    }
                }
            }
        }
    }
}
