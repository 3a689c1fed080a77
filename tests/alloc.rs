//! `Model::step` (and `step_many`, and `step_chunk` once its workspace has
//! grown) performs zero heap allocations after warm-up, on every ISA,
//! shown with a counting global allocator. The count is per thread, so
//! tests running in parallel do not disturb each other.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use rnncell::*;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: during thread teardown the slot may be gone; then the
    // allocation is simply not counted (no test is measuring by then).
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
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
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator,
        // i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
