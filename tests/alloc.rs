//! `Model::step` (and `step_many`, and `step_chunk` once its workspace has
//! grown) performs zero heap allocations after warm-up, on every ISA,
//! shown with a counting global allocator; `run` and `step_chunk` scratch
//! stays within its documented bound (peak live bytes); `weight_bytes`
//! counts every packed buffer. The counts are per thread, so tests running
//! in parallel do not disturb each other.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use rnncell::*;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated and not yet freed by this thread (freeing another
    /// thread's block can make it negative).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The largest `LIVE` since the last `reset_peak`.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: during thread teardown the slot may be gone; then the
    // allocation is simply not counted (no test is measuring by then).
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

/// Starts a peak measurement: returns the bytes live now.
fn reset_peak() -> isize {
    let live = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(live));
    live
}

/// The most bytes live since `reset_peak` returned `base`, above `base`.
fn peak_since(base: isize) -> usize {
    (PEAK.with(|p| p.get()) - base).max(0) as usize
}

fn allocations() -> usize {
    ALLOCS.with(|c| c.get())
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a
// const-initialised thread-local `Cell` without a destructor, which never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator,
        // i.e. from `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn specs() -> Vec<(&'static str, ModelSpec)> {
    vec![
        (
            "lstm proj+bias+clips, 3 layers",
            ModelSpec::new(
                CellKind::Lstm(LstmOptions {
                    peephole: true,
                    proj_size: 13,
                    proj_bias: true,
                    proj_clip: Some(0.5),
                    clip: Some(2.0),
                    cell_clip: Some(3.0),
                    ..LstmOptions::default()
                }),
                17,
                33,
            )
            .layers(3),
        ),
        (
            "lstm, 2 layers",
            ModelSpec::new(CellKind::lstm(), 64, 129).layers(2),
        ),
        (
            "gru lbr, 2 layers",
            ModelSpec::new(CellKind::gru(), 9, 65).layers(2),
        ),
        (
            "gru reset-before, 2 layers",
            ModelSpec::new(CellKind::gru_reset_before(), 31, 17).layers(2),
        ),
        (
            "rnn tanh, 3 layers",
            ModelSpec::new(CellKind::rnn_tanh(), 5, 127).layers(3),
        ),
        (
            "rnn relu, 2 layers",
            ModelSpec::new(CellKind::rnn_relu(), 3, 7).layers(2),
        ),
    ]
}

#[test]
fn step_allocates_nothing() {
    for (name, spec) in specs() {
        let weights = random_weights(&spec, 11);
        let mut rng = DataRng::new(3);
        let xs: Vec<Vec<f32>> = (0..100).map(|_| rng.vec(spec.input_size, 1.0)).collect();
        for isa in isas() {
            let model = Model::with_isa(spec, &weights, isa).unwrap();
            let mut st = model.new_state();
            let mut y = vec![0.0f32; spec.state_size()];
            // Warm-up (first-touch effects, lazily initialised statics).
            for x in &xs[..3] {
                model.step(&mut st, x, &mut y).unwrap();
            }
            let before = allocations();
            for x in &xs {
                model.step(&mut st, x, &mut y).unwrap();
            }
            let n = allocations() - before;
            assert_eq!(n, 0, "{isa} {name}: {n} allocations in 100 steps");
            assert!(y.iter().all(|v| v.is_finite()) && y.iter().any(|&v| v != 0.0));
        }
    }
}

#[test]
fn step_many_and_step_chunk_allocate_nothing_after_warm_up() {
    for (name, spec) in specs() {
        let weights = random_weights(&spec, 12);
        let mut rng = DataRng::new(4);
        let hr = spec.state_size();
        for isa in isas() {
            let model = Model::with_isa(spec, &weights, isa).unwrap();
            // step_many over 1, 5 and 19 streams (one group, several
            // groups of at most 16).
            for n in [1usize, 5, 19] {
                let mut states: Vec<State> = (0..n).map(|_| model.new_state()).collect();
                let xs: Vec<Vec<f32>> = (0..n).map(|_| rng.vec(spec.input_size, 1.0)).collect();
                let mut ys: Vec<Vec<f32>> = vec![vec![0.0; hr]; n];
                let go = |states: &mut Vec<State>, ys: &mut Vec<Vec<f32>>| {
                    let mut s: Vec<&mut State> = states.iter_mut().collect();
                    let x: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
                    let mut y: Vec<&mut [f32]> = ys.iter_mut().map(|v| v.as_mut_slice()).collect();
                    // Only the call itself is measured, not the Vecs of
                    // references built around it.
                    let before = allocations();
                    model.step_many(&mut s, &x, &mut y).unwrap();
                    allocations() - before
                };
                go(&mut states, &mut ys);
                for _ in 0..10 {
                    let a = go(&mut states, &mut ys);
                    assert_eq!(a, 0, "{isa} {name}: step_many over {n} streams allocated");
                }
            }
            // step_chunk: the workspace grows on the first call of a given
            // K, then never again for K or smaller.
            let mut st = model.new_state();
            let k = 10;
            let xs = rng.vec(k * spec.input_size, 1.0);
            let mut ys = vec![0.0f32; k * hr];
            model.step_chunk(&mut st, &xs, &mut ys).unwrap();
            let before = allocations();
            for _ in 0..5 {
                model.step_chunk(&mut st, &xs, &mut ys).unwrap();
                model
                    .step_chunk(&mut st, &xs[..3 * spec.input_size], &mut ys[..3 * hr])
                    .unwrap();
            }
            let n = allocations() - before;
            assert_eq!(
                n, 0,
                "{isa} {name}: step_chunk allocated {n} times after warm-up"
            );
        }
    }
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(vec![1, 2, 3]);
    assert!(allocations() > before);
    drop(v);
}

fn lstm_p1(h: usize, isa: Isa) -> Model {
    let o = LstmOptions {
        proj_size: 1,
        ..LstmOptions::default()
    };
    let spec = ModelSpec::new(CellKind::Lstm(o), 1, h);
    let mut lw = LayerWeights::zeros(4, h, 1, 1);
    lw.proj = vec![0.01; h];
    Model::with_isa(spec, &[lw], isa).unwrap()
}

/// Issue 11: a GRU with I = H = 1 run over B = 2^20 rows (8 MiB of input
/// and output) peaked at 2.6 GB of scratch (a state per row and a
/// pre-activation block of B columns); now batch rows are taken in
/// blocks of 256 and the scratch is under 2 MiB.
#[test]
fn run_scratch_is_bounded_for_large_batches() {
    let b = 1 << 20;
    let spec = ModelSpec::new(CellKind::gru(), 1, 1);
    let x = vec![0.5f32; b];
    let mut y = vec![0.0f32; b];
    let buffers = 8 * b;
    for isa in isas() {
        let m = Model::with_isa(spec, &[LayerWeights::zeros(3, 1, 1, 1)], isa).unwrap();
        let base = reset_peak();
        m.run(
            &Sequence::new(&x, 1, b),
            &mut SequenceOutput {
                output: &mut y,
                h_n: None,
                c_n: None,
            },
        )
        .unwrap();
        let peak = peak_since(base);
        assert!(
            peak < 2 << 20,
            "{isa}: run of B = 2^20 peaked at {peak} bytes of scratch ({buffers} bytes of buffers)"
        );
    }
}

/// Issue 11: run of an LSTM with H = 2^20 (P = 1) asked for 256 columns of
/// 4H pre-activations (4 GiB) at T = 300; a block is now at most 16 MiB
/// of pre-activations, or one column (here one column: 16 MiB).
#[test]
fn run_scratch_is_bounded_for_huge_layers() {
    let m = lstm_p1(1 << 20, Isa::detect());
    let t = 3;
    let x = vec![0.5f32; t];
    let mut y = vec![0.0f32; t];
    let base = reset_peak();
    m.run(
        &Sequence::new(&x, t, 1),
        &mut SequenceOutput {
            output: &mut y,
            h_n: None,
            c_n: None,
        },
    )
    .unwrap();
    let peak = peak_since(base);
    // One column of 4H pre-activations + one state (c and the projection
    // input, H each) + small change.
    let bound = (4 + 2) * 4 * (1 << 20) + (1 << 20);
    assert!(peak <= bound, "run peaked at {peak} bytes (bound {bound})");
}

/// Issue 11: step_chunk held a workspace of K·(4H + 2Hr) floats (2.5 GB
/// for H = 2^14, P = 1, K = 10 000; 157 MB for K = 600); now at most
/// 16 MiB + 512·Hr floats.
#[test]
fn step_chunk_workspace_is_bounded() {
    let h = 1 << 14;
    let m = lstm_p1(h, Isa::detect());
    let mut st = m.new_state();
    let k = 600;
    let xs = vec![0.5f32; k];
    let mut ys = vec![0.0f32; k];
    let base = reset_peak();
    m.step_chunk(&mut st, &xs, &mut ys).unwrap();
    let peak = peak_since(base);
    let bound = (16 << 20) + 512 * 4 + 4096;
    assert!(
        peak <= bound,
        "step_chunk peaked at {peak} bytes (bound {bound})"
    );
    // And it is kept: the next call allocates nothing.
    let before = allocations();
    m.step_chunk(&mut st, &xs, &mut ys).unwrap();
    assert_eq!(allocations(), before);
}

/// `weight_bytes` counts every packed buffer: input and recurrent panels,
/// biases, peepholes, projection and projection bias (issue 11: the
/// peepholes and the projection bias were left out).
#[test]
fn weight_bytes_counts_every_buffer() {
    let (i, h, p) = (5, 37, 11);
    let spec = ModelSpec::new(
        CellKind::Lstm(LstmOptions {
            peephole: true,
            proj_size: p,
            proj_bias: true,
            ..LstmOptions::default()
        }),
        i,
        h,
    )
    .layers(2);
    let w = random_weights(&spec, 5);
    let up = |n: usize, m: usize| n.div_ceil(m) * m;
    for isa in isas() {
        let lanes = match isa {
            Isa::Scalar => 1,
            Isa::Neon => 4,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        };
        let (u, u1) = (2 * lanes, 8 * lanes);
        let layer = |input: usize| {
            let units = up(h, u);
            4 * units * input   // W, 4 gates, rows padded to panels of u
                + 4 * units * p // R (Hr = P)
                + 4 * units     // summed biases
                + 3 * up(h, 128) // peepholes, each padded to 128
                + up(p, u1) * h // projection [P, H] in panels of u1 rows
                + up(p, 128) // projection bias
        };
        let want = 4 * (layer(i) + layer(p));
        let m = Model::with_isa(spec, &w, isa).unwrap();
        assert_eq!(m.weight_bytes(), want, "{isa}");
    }
}
