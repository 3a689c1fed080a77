//! The C ABI called from Rust: every entry point, every error path, the
//! alignment and aliasing rules, zero allocation in step, failed calls that
//! change nothing, and (with `--features test-panic`) panics caught at the
//! boundary. Results are compared bit for bit with the Rust API on random
//! weights and sizes that are not multiples of the vector widths.
//!
//! The C programs in tests/c/ check the same contract from C, under
//! AddressSanitizer, UndefinedBehaviorSanitizer and valgrind (.ci/c.sh).

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::ptr::{null, null_mut};

use rnncell::ffi::*;
use rnncell::{
    CellKind, Coupling, Direction, GruOptions, Isa, KerasTensors, LayerWeights, LstmOptions,
    MergeMode, Model, ModelSpec, OnnxTensors, RnnActivation, RnnOptions, Sequence, SequenceOutput,
};

// ---------------------------------------------------------------- allocations

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Counts allocations per thread, so tests running in parallel do not see
/// each other's.
struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a const-initialised thread-local without a destructor, so
// touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

// ---------------------------------------------------------------- helpers

use RnncellStatus as S;

/// xorshift64*: reproducible random floats in [-0.5, 0.5).
struct Rng(u64);

impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (v >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

fn t(v: &[f32]) -> RnncellTensor {
    RnncellTensor {
        data: v.as_ptr(),
        len: v.len(),
    }
}

fn tm(v: &mut [f32]) -> RnncellTensorMut {
    RnncellTensorMut {
        data: v.as_mut_ptr(),
        len: v.len(),
    }
}

/// A float buffer deliberately misaligned by one byte.
struct Unaligned {
    bytes: Vec<u8>,
    n: usize,
}

impl Unaligned {
    fn new(v: &[f32]) -> Unaligned {
        let mut bytes = vec![0u8; v.len() * 4 + 8];
        for (i, x) in v.iter().enumerate() {
            bytes[1 + 4 * i..5 + 4 * i].copy_from_slice(&x.to_ne_bytes());
        }
        let u = Unaligned { bytes, n: v.len() };
        assert!(!u.ptr().is_aligned());
        u
    }
    fn ptr(&self) -> *const f32 {
        self.bytes[1..].as_ptr().cast()
    }
    fn ptr_mut(&mut self) -> *mut f32 {
        self.bytes[1..].as_mut_ptr().cast()
    }
    fn read(&self) -> Vec<f32> {
        (0..self.n)
            .map(|i| f32::from_ne_bytes(self.bytes[1 + 4 * i..5 + 4 * i].try_into().unwrap()))
            .collect()
    }
}

/// An owned C model, freed on drop.
struct CModel(*mut RnncellModel);

impl Drop for CModel {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rnncell_model_new_* and is freed once.
        unsafe { rnncell_model_free(self.0) }
    }
}

/// An owned C state, freed on drop.
struct CState(*mut RnncellState);

impl Drop for CState {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rnncell_state_new/_copy, freed once.
        unsafe { rnncell_state_free(self.0) }
    }
}

impl CModel {
    fn info(&self) -> RnncellModelInfo {
        // struct_size set (Default), every other field written by the call.
        let mut info = RnncellModelInfo::default();
        assert_eq!(
            // SAFETY: live model; `info` is writable.
            unsafe { rnncell_model_info(self.0, &mut info) },
            S::Ok
        );
        info
    }
    fn state(&self) -> CState {
        let mut s = null_mut();
        // SAFETY: live model; `s` is writable.
        assert_eq!(unsafe { rnncell_state_new(self.0, &mut s) }, S::Ok);
        assert!(!s.is_null());
        CState(s)
    }
    fn step(&self, st: &CState, x: &[f32], y: &mut [f32]) -> RnncellStatus {
        // SAFETY: live handles; slices valid for their lengths.
        unsafe { rnncell_model_step(self.0, st.0, x.as_ptr(), x.len(), y.as_mut_ptr(), y.len()) }
    }
    fn run(&self, seq: &RnncellSequence, out: &RnncellSequenceOutput) -> RnncellStatus {
        // SAFETY: live model; the structs point to live buffers of their counts.
        unsafe { rnncell_model_run(self.0, seq, out) }
    }
}

impl CState {
    fn h(&self, layer: usize, n: usize) -> Vec<f32> {
        let mut v = vec![f32::NAN; n];
        // SAFETY: live state; `v` holds n floats.
        let st = unsafe { rnncell_state_get_h(self.0, layer, v.as_mut_ptr(), n) };
        assert_eq!(st, S::Ok);
        v
    }
    fn c(&self, layer: usize, n: usize) -> Vec<f32> {
        let mut v = vec![f32::NAN; n];
        // SAFETY: live state; `v` holds n floats.
        let st = unsafe { rnncell_state_get_c(self.0, layer, v.as_mut_ptr(), n) };
        assert_eq!(st, S::Ok);
        v
    }
    fn copy(&self) -> CState {
        let mut s = null_mut();
        // SAFETY: live state; `s` writable.
        assert_eq!(unsafe { rnncell_state_copy(self.0, &mut s) }, S::Ok);
        CState(s)
    }
}

fn spec_init(cell: RnncellCell, i: usize, h: usize) -> RnncellSpec {
    let mut s = RnncellSpec::default();
    assert_eq!(
        // SAFETY: `s` is writable.
        unsafe { rnncell_spec_init(&mut s, size_of::<RnncellSpec>(), cell as u32, i, h) },
        S::Ok
    );
    s
}

/// Builds through the C ABI from PyTorch-layout layers; returns the status,
/// the model (if any) and the message.
fn new_pytorch(
    spec: &RnncellSpec,
    layers: &[RnncellPytorchLayer],
    isa: u32,
) -> (S, Option<CModel>, String) {
    let mut m = null_mut();
    let mut msg = [0 as c_char; 256];
    // SAFETY: every pointer is valid for its count; `msg` holds 256 bytes.
    let st = unsafe {
        rnncell_model_new_pytorch(
            spec,
            layers.as_ptr(),
            layers.len(),
            isa,
            &mut m,
            msg.as_mut_ptr(),
            msg.len(),
        )
    };
    // SAFETY: the call always NUL-terminates a non-null message buffer.
    let text = unsafe { CStr::from_ptr(msg.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        st == S::Ok,
        !m.is_null(),
        "out_model must be set exactly on success"
    );
    (st, (!m.is_null()).then_some(CModel(m)), text)
}

/// Random canonical weights for every layer and direction of `spec`, and the
/// C layer structs pointing at them.
struct Weights {
    lw: Vec<LayerWeights>,
}

impl Weights {
    fn random(spec: &ModelSpec, rng: &mut Rng) -> Weights {
        let g = spec.cell.gates();
        let h = spec.hidden_size;
        let (peep, pbias) = match spec.cell {
            CellKind::Lstm(o) => (o.peephole, o.proj_bias),
            _ => (false, false),
        };
        let p = spec.proj_size();
        let lw = (0..spec.num_layers * spec.directions())
            .map(|i| {
                let input = spec.layer_input_size(i / spec.directions());
                LayerWeights {
                    w: rng.vec(g * h * input),
                    r: rng.vec(g * h * spec.state_size()),
                    b_w: rng.vec(g * h),
                    b_r: rng.vec(g * h),
                    peephole: if peep { rng.vec(3 * h) } else { vec![] },
                    proj: rng.vec(p * h),
                    proj_bias: if pbias { rng.vec(p) } else { vec![] },
                }
            })
            .collect();
        Weights { lw }
    }
    fn layers(&self) -> Vec<RnncellPytorchLayer> {
        self.lw
            .iter()
            .map(|w| RnncellPytorchLayer {
                weight_ih: t(&w.w),
                weight_hh: t(&w.r),
                bias_ih: t(&w.b_w),
                bias_hh: t(&w.b_r),
                weight_hr: if w.proj.is_empty() {
                    RnncellTensor::default()
                } else {
                    t(&w.proj)
                },
                peephole: if w.peephole.is_empty() {
                    RnncellTensor::default()
                } else {
                    t(&w.peephole)
                },
                proj_bias: if w.proj_bias.is_empty() {
                    RnncellTensor::default()
                } else {
                    t(&w.proj_bias)
                },
            })
            .collect()
    }
}

/// The Rust spec and the equivalent C spec of a few variants.
fn variants() -> Vec<(ModelSpec, RnncellSpec)> {
    let mut out = Vec::new();
    // LSTM with everything: peepholes, projection with bias and clip, cell
    // clip, ONNX clip, CIFG; 2 layers.
    let o = LstmOptions {
        peephole: true,
        proj_size: 5,
        proj_bias: true,
        proj_clip: Some(0.7),
        coupling: Coupling::InputFromForget,
        clip: Some(3.0),
        cell_clip: Some(1.5),
    };
    let mut c = spec_init(RnncellCell::Lstm, 9, 11);
    c.num_layers = 2;
    c.lstm_peephole = 1;
    c.lstm_proj_size = 5;
    c.lstm_proj_bias = 1;
    c.lstm_proj_clip = 0.7;
    c.lstm_coupling = RnncellCoupling::InputFromForget as u32;
    c.clip = 3.0;
    c.lstm_cell_clip = 1.5;
    out.push((ModelSpec::new(CellKind::Lstm(o), 9, 11).layers(2), c));
    // Plain LSTM, ONNX input_forget.
    let mut c = spec_init(RnncellCell::Lstm, 13, 17);
    c.lstm_coupling = RnncellCoupling::ForgetFromInput as u32;
    let o = LstmOptions {
        coupling: Coupling::ForgetFromInput,
        ..LstmOptions::default()
    };
    out.push((ModelSpec::new(CellKind::Lstm(o), 13, 17), c));
    // GRU reset-before, 3 layers, clip.
    let mut c = spec_init(RnncellCell::Gru, 7, 19);
    c.num_layers = 3;
    c.gru_linear_before_reset = 0;
    c.clip = 2.5;
    let o = GruOptions {
        linear_before_reset: false,
        clip: Some(2.5),
    };
    out.push((ModelSpec::new(CellKind::Gru(o), 7, 19).layers(3), c));
    // GRU linear-before-reset.
    let c = spec_init(RnncellCell::Gru, 6, 10);
    out.push((ModelSpec::new(CellKind::gru(), 6, 10), c));
    // RNN relu, 2 layers.
    let mut c = spec_init(RnncellCell::Rnn, 5, 23);
    c.num_layers = 2;
    c.rnn_activation = RnncellActivation::Relu as u32;
    let o = RnnOptions {
        activation: RnnActivation::Relu,
        clip: None,
    };
    out.push((ModelSpec::new(CellKind::Rnn(o), 5, 23).layers(2), c));
    out
}

// ---------------------------------------------------------------- tests

#[test]
fn status_str_names_every_status() {
    let mut seen = std::collections::HashSet::new();
    for v in 0..=11u32 {
        // SAFETY: rnncell_status_str returns a static C string.
        let s = unsafe { CStr::from_ptr(rnncell_status_str(v)) }
            .to_str()
            .unwrap();
        assert!(s.starts_with("RNNCELL_STATUS_"), "{s}");
        assert!(seen.insert(s), "duplicate {s}");
    }
    // SAFETY: as above.
    let ok = unsafe { CStr::from_ptr(rnncell_status_str(S::Ok as u32)) };
    assert!(ok.to_str().unwrap().starts_with("RNNCELL_STATUS_OK"));
    // SAFETY: as above.
    let panic = unsafe { CStr::from_ptr(rnncell_status_str(S::Panic as u32)) };
    assert!(panic.to_str().unwrap().starts_with("RNNCELL_STATUS_PANIC"));
    for v in [12, 99, u32::MAX] {
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(rnncell_status_str(v)) };
        assert_eq!(s.to_str().unwrap(), "unknown rnncell status");
    }
}

#[test]
fn version_and_isa_queries() {
    // SAFETY: static C string.
    let v = unsafe { CStr::from_ptr(rnncell_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let mask = rnncell_isa_available();
    assert_ne!(mask & (1 << RnncellIsa::Scalar as u32), 0);
    assert_eq!(mask & 1, 0, "AUTO is not an ISA");
    let det = rnncell_isa_detected();
    assert_ne!(mask & (1 << det as u32), 0);
    assert_ne!(det, RnncellIsa::Auto);
    for isa in Isa::ALL {
        let bit = match isa {
            Isa::Scalar => RnncellIsa::Scalar,
            Isa::Avx2 => RnncellIsa::Avx2,
            Isa::Avx512 => RnncellIsa::Avx512,
            Isa::Neon => RnncellIsa::Neon,
        } as u32;
        assert_eq!(mask & (1 << bit) != 0, isa.is_supported());
        // SAFETY: non-null static C string for a valid value.
        let name = unsafe { CStr::from_ptr(rnncell_isa_name(bit)) };
        assert_eq!(name.to_str().unwrap(), isa.name());
    }
    assert_eq!(
        // SAFETY: as above.
        unsafe { CStr::from_ptr(rnncell_isa_name(0)) }
            .to_str()
            .unwrap(),
        "auto"
    );
    assert!(rnncell_isa_name(5).is_null());
    assert!(rnncell_isa_name(u32::MAX).is_null());
}

#[test]
fn spec_init_defaults_and_errors() {
    let mut s = RnncellSpec::default();
    assert_eq!(
        // SAFETY: null is allowed and reported.
        unsafe { rnncell_spec_init(null_mut(), size_of::<RnncellSpec>(), 1, 3, 4) },
        S::NullPointer
    );
    for bad in [0, 4, 77, u32::MAX] {
        assert_eq!(
            // SAFETY: `s` writable.
            unsafe { rnncell_spec_init(&mut s, size_of::<RnncellSpec>(), bad, 3, 4) },
            S::InvalidArgument
        );
    }
    let s = spec_init(RnncellCell::Gru, 3, 4);
    assert_eq!(s.num_layers, 1);
    assert_eq!(s.direction, RnncellDirection::Forward as u32);
    assert_eq!(s.merge, RnncellMerge::Concat as u32);
    assert_eq!(s.gru_linear_before_reset, RNNCELL_FRAMEWORK_DEFAULT);
    assert_eq!(s.clip, 0.0);
    assert_eq!(s.weight_precision, 0);
    assert_eq!(
        RnncellWeightPrecision::F32 as u32,
        0,
        "spec_init writes f32 weights"
    );
    // A zeroed spec is rejected (cell 0), as are bad enum values, misplaced
    // options and invalid sizes or clips, each with a message.
    let lw = LayerWeights::zeros(3, 4, 3, 4);
    let w = Weights { lw: vec![lw] };
    let layers = w.layers();
    let mut cases: Vec<(RnncellSpec, &str)> = Vec::new();
    // SAFETY: an all-zero RnncellSpec is a valid value (integers, floats, bools).
    cases.push((unsafe { std::mem::zeroed() }, "spec.struct_size is 0"));
    // With its struct_size, a zeroed spec is cell 0.
    cases.push((
        RnncellSpec {
            struct_size: size_of::<RnncellSpec>(),
            // SAFETY: as above.
            ..unsafe { std::mem::zeroed() }
        },
        "spec.cell",
    ));
    let mut b = s;
    b.direction = 3;
    cases.push((b, "spec.direction"));
    let mut b = s;
    b.merge = 2;
    cases.push((b, "spec.merge"));
    let mut b = s;
    b.lstm_peephole = 1;
    cases.push((b, "LSTM options"));
    let mut b = s;
    b.rnn_activation = 1;
    cases.push((b, "RNN options"));
    let mut b = spec_init(RnncellCell::Lstm, 3, 4);
    b.gru_linear_before_reset = 0;
    cases.push((b, "GRU options"));
    let mut b = spec_init(RnncellCell::Lstm, 3, 4);
    b.lstm_coupling = 3;
    cases.push((b, "spec.lstm_coupling"));
    let mut b = spec_init(RnncellCell::Rnn, 3, 4);
    b.rnn_activation = 2;
    cases.push((b, "spec.rnn_activation"));
    let mut b = s;
    b.clip = -1.0;
    cases.push((b, "clip"));
    let mut b = s;
    b.clip = f32::NAN;
    cases.push((b, "clip"));
    let mut b = s;
    b.hidden_size = 0;
    cases.push((b, "hidden_size"));
    let mut b = s;
    b.input_size = 0;
    cases.push((b, "input_size"));
    let mut b = s;
    b.num_layers = 0;
    cases.push((b, "num_layers"));
    let mut b = spec_init(RnncellCell::Lstm, 3, 4);
    b.lstm_proj_bias = 1;
    cases.push((b, "proj_size"));
    // Unknown precisions, and STORED outside a safetensors loader.
    for v in [5, 254, 255, u32::MAX] {
        let mut b = s;
        b.weight_precision = v;
        cases.push((b, "spec.weight_precision"));
    }
    for (spec, want) in cases {
        let (st, m, msg) = new_pytorch(&spec, &layers, 0);
        assert_eq!(st, S::InvalidArgument, "{want}: {msg}");
        assert!(m.is_none());
        assert!(
            msg.contains(want),
            "message {msg:?} should mention {want:?}"
        );
    }
}

#[test]
fn every_variant_steps_like_the_rust_api() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (rs, cs) in variants() {
        let w = Weights::random(&rs, &mut rng);
        for &isa in &Isa::available() {
            let rust = Model::with_isa(rs, &w.lw, isa).unwrap();
            let cisa = c_isa(isa);
            let (st, m, msg) = new_pytorch(&cs, &w.layers(), cisa as u32);
            assert_eq!(st, S::Ok, "{msg}");
            assert!(msg.is_empty());
            let m = m.unwrap();
            let info = m.info();
            assert_eq!(info.isa, cisa);
            assert_eq!(info.input_size, rs.input_size);
            assert_eq!(info.state_size, rs.state_size());
            assert_eq!(info.output_size, rs.output_size());
            assert_eq!(info.num_layers, rs.num_layers);
            assert_eq!(info.num_directions, 1);
            assert_eq!(info.has_cell_state, rs.has_cell_state());
            assert_eq!(info.weight_bytes, rust.weight_bytes());
            // The spec round-trips.
            let mut back = RnncellSpec::default();
            // SAFETY: live model, writable out.
            assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
            assert_eq!(back.cell, cs.cell);
            assert_eq!(
                (back.clip, back.lstm_proj_clip, back.lstm_cell_clip),
                (cs.clip, cs.lstm_proj_clip, cs.lstm_cell_clip)
            );
            // A GRU built from rnncell_spec_init's RNNCELL_FRAMEWORK_DEFAULT
            // reports the form it was built with (PyTorch's).
            let mut want = cs;
            if cs.cell == RnncellCell::Gru as u32
                && cs.gru_linear_before_reset == RNNCELL_FRAMEWORK_DEFAULT
            {
                want.gru_linear_before_reset = 1;
            }
            assert_eq!(format!("{back:?}"), format!("{want:?}"));
            let cst = m.state();
            let mut rst = rust.new_state();
            let hr = rs.state_size();
            let (mut yc, mut yr) = (vec![0.0; hr], vec![0.0; hr]);
            for _ in 0..6 {
                let x = rng.vec(rs.input_size);
                assert_eq!(m.step(&cst, &x, &mut yc), S::Ok);
                rust.step(&mut rst, &x, &mut yr).unwrap();
                assert_eq!(bits(&yc), bits(&yr));
                assert!(yc.iter().any(|v| *v != 0.0));
            }
            for l in 0..rs.num_layers {
                assert_eq!(bits(&cst.h(l, hr)), bits(rst.h(l)));
                if let Some(c) = rst.c(l) {
                    assert_eq!(bits(&cst.c(l, rs.hidden_size)), bits(c));
                }
            }
        }
    }
}

fn c_isa(isa: Isa) -> RnncellIsa {
    match isa {
        Isa::Scalar => RnncellIsa::Scalar,
        Isa::Avx2 => RnncellIsa::Avx2,
        Isa::Avx512 => RnncellIsa::Avx512,
        Isa::Neon => RnncellIsa::Neon,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn onnx_and_keras_layouts_match_the_rust_api() {
    let mut rng = Rng(7);
    // ONNX: bidirectional LSTM with peepholes, 2 layers, run over a batch.
    let o = LstmOptions {
        peephole: true,
        ..LstmOptions::default()
    };
    let rs = ModelSpec::new(CellKind::Lstm(o), 6, 9)
        .layers(2)
        .direction(Direction::Bidirectional);
    let mut cs = spec_init(RnncellCell::Lstm, 6, 9);
    cs.num_layers = 2;
    cs.direction = RnncellDirection::Bidirectional as u32;
    cs.lstm_peephole = 1;
    let (g, h, d) = (4, 9, 2);
    type Onnx = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
    let ws: Vec<Onnx> = (0..2)
        .map(|l| {
            let input = rs.layer_input_size(l);
            (
                rng.vec(d * g * h * input),
                rng.vec(d * g * h * h),
                rng.vec(d * 2 * g * h),
                rng.vec(d * 3 * h),
            )
        })
        .collect();
    let rust_t: Vec<OnnxTensors<'_>> = ws
        .iter()
        .map(|(w, r, b, p)| OnnxTensors {
            w,
            r,
            b: Some(b),
            p: Some(p),
        })
        .collect();
    let rust = Model::from_onnx(rs, &rust_t).unwrap();
    let c_t: Vec<RnncellOnnxLayer> = ws
        .iter()
        .map(|(w, r, b, p)| RnncellOnnxLayer {
            w: t(w),
            r: t(r),
            b: t(b),
            p: t(p),
        })
        .collect();
    let mut m = null_mut();
    // SAFETY: valid pointers and counts; no message buffer.
    let st =
        unsafe { rnncell_model_new_onnx(&cs, c_t.as_ptr(), c_t.len(), 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::Ok);
    let m = CModel(m);
    compare_run(&rust, &m, &mut rng, 5, 3);
    // Wrong counts are named.
    let mut bad = c_t.clone();
    bad[1].r.len -= 1;
    let mut m2 = null_mut();
    let mut msg = [0 as c_char; 128];
    // SAFETY: as above, `msg` holds 128 bytes.
    let st = unsafe {
        rnncell_model_new_onnx(
            &cs,
            bad.as_ptr(),
            bad.len(),
            0,
            &mut m2,
            msg.as_mut_ptr(),
            128,
        )
    };
    assert_eq!(st, S::SizeMismatch);
    assert!(m2.is_null());
    // SAFETY: NUL-terminated by the call.
    let msg = unsafe { CStr::from_ptr(msg.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("layer 1 R"), "{msg}");
    // SAFETY: n_layers 1 for a 2-layer spec: a count mismatch.
    let st = unsafe { rnncell_model_new_onnx(&cs, c_t.as_ptr(), 1, 0, &mut m2, null_mut(), 0) };
    assert_eq!(st, S::SizeMismatch);

    // Keras: GRU reset_after=True ([2, 3H] bias), 2 layers, reverse.
    let rs = ModelSpec::new(CellKind::gru(), 4, 7)
        .layers(2)
        .direction(Direction::Reverse);
    let mut cs = spec_init(RnncellCell::Gru, 4, 7);
    cs.num_layers = 2;
    cs.direction = RnncellDirection::Reverse as u32;
    let ks: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..2)
        .map(|l| {
            (
                rng.vec(rs.layer_input_size(l) * 21),
                rng.vec(7 * 21),
                rng.vec(2 * 21),
            )
        })
        .collect();
    let rust_t: Vec<KerasTensors<'_>> = ks
        .iter()
        .map(|(k, r, b)| KerasTensors {
            kernel: k,
            recurrent_kernel: r,
            bias: Some(b),
        })
        .collect();
    let rust = Model::from_keras(rs, &rust_t).unwrap();
    let c_t: Vec<RnncellKerasLayer> = ks
        .iter()
        .map(|(k, r, b)| RnncellKerasLayer {
            kernel: t(k),
            recurrent_kernel: t(r),
            bias: t(b),
        })
        .collect();
    let mut m = null_mut();
    // SAFETY: valid pointers and counts.
    let st =
        unsafe { rnncell_model_new_keras(&cs, c_t.as_ptr(), c_t.len(), 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::Ok);
    let m = CModel(m);
    compare_run(&rust, &m, &mut rng, 4, 2);
    // A reverse model cannot be stepped.
    let st_h = m.state();
    let mut y = [0.0f32; 7];
    assert_eq!(m.step(&st_h, &[0.0; 4], &mut y), S::Unsupported);
}

/// Runs a random batch through the C and the Rust API (time- and
/// batch-major, with seq_lens and initial states) and checks the outputs
/// are bit-identical.
fn compare_run(rust: &Model, m: &CModel, rng: &mut Rng, steps: usize, batch: usize) {
    let s = rust.spec();
    let ld = s.num_layers * s.directions();
    let (hr, h) = (s.state_size(), s.hidden_size);
    let x = rng.vec(steps * batch * s.input_size);
    let h0 = rng.vec(ld * batch * hr);
    let c0 = s.has_cell_state().then(|| rng.vec(ld * batch * h));
    let lens: Vec<usize> = (0..batch).map(|b| steps - b % steps).collect();
    for batch_major in [false, true] {
        let n_out = steps * batch * s.output_size();
        let (mut yc, mut yr) = (vec![0.0; n_out], vec![0.0; n_out]);
        let (mut hc, mut hrs) = (vec![0.0; ld * batch * hr], vec![0.0; ld * batch * hr]);
        let (mut cc, mut crs) = (vec![0.0; ld * batch * h], vec![0.0; ld * batch * h]);
        let seq = Sequence {
            input: &x,
            steps,
            batch,
            batch_major,
            seq_lens: Some(&lens),
            h0: Some(&h0),
            c0: c0.as_deref(),
            layout: Default::default(),
            lengths: None,
        };
        rust.run(
            &seq,
            &mut SequenceOutput {
                output: &mut yr,
                h_n: Some(&mut hrs),
                c_n: c0.is_some().then_some(&mut crs[..]),
            },
        )
        .unwrap();
        let cseq = RnncellSequence {
            input: t(&x),
            steps,
            batch,
            batch_major: batch_major.into(),
            seq_lens: lens.as_ptr(),
            seq_lens_len: lens.len(),
            h0: t(&h0),
            c0: c0.as_deref().map(t).unwrap_or_default(),
            ..Default::default()
        };
        let cout = RnncellSequenceOutput {
            output: tm(&mut yc),
            h_n: tm(&mut hc),
            c_n: if c0.is_some() {
                tm(&mut cc)
            } else {
                RnncellTensorMut::default()
            },
        };
        assert_eq!(m.run(&cseq, &cout), S::Ok);
        assert_eq!(bits(&yc), bits(&yr));
        assert_eq!(bits(&hc), bits(&hrs));
        assert_eq!(bits(&cc), bits(&crs));
        assert!(yc.iter().any(|v| *v != 0.0));
    }
}

#[test]
fn misaligned_and_aliased_step_buffers_give_the_same_result() {
    let mut rng = Rng(11);
    // I == Hr so that x and y can be the same buffer.
    let rs = ModelSpec::new(CellKind::lstm(), 7, 7).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let (st, m, _) = new_pytorch(
        &{
            let mut c = spec_init(RnncellCell::Lstm, 7, 7);
            c.num_layers = 2;
            c
        },
        &w.layers(),
        0,
    );
    assert_eq!(st, S::Ok);
    let m = m.unwrap();
    let xs: Vec<Vec<f32>> = (0..5).map(|_| rng.vec(7)).collect();
    // Reference: aligned, distinct buffers.
    let s0 = m.state();
    let mut want = Vec::new();
    for x in &xs {
        let mut y = vec![0.0; 7];
        assert_eq!(m.step(&s0, x, &mut y), S::Ok);
        want.push(y);
    }
    // Misaligned x and y.
    let s1 = m.state();
    for (x, want) in xs.iter().zip(&want) {
        let xu = Unaligned::new(x);
        let mut yu = Unaligned::new(&[0.0; 7]);
        // SAFETY: both buffers hold 7 floats at the (misaligned) pointers.
        let st = unsafe { rnncell_model_step(m.0, s1.0, xu.ptr(), 7, yu.ptr_mut(), 7) };
        assert_eq!(st, S::Ok);
        assert_eq!(bits(&yu.read()), bits(want));
    }
    // In place, x == y, aligned and misaligned.
    for misaligned in [false, true] {
        let s2 = m.state();
        for (x, want) in xs.iter().zip(&want) {
            let mut buf = x.clone();
            let mut ub = Unaligned::new(x);
            let p = if misaligned {
                ub.ptr_mut()
            } else {
                buf.as_mut_ptr()
            };
            // SAFETY: `p` holds 7 floats; the ABI allows x and y to alias.
            let st = unsafe { rnncell_model_step(m.0, s2.0, p, 7, p, 7) };
            assert_eq!(st, S::Ok);
            let got = if misaligned { ub.read() } else { buf };
            assert_eq!(bits(&got), bits(want));
        }
    }
    // Partly overlapping x and y (y starts 3 floats into x).
    let s3 = m.state();
    for (x, want) in xs.iter().zip(&want) {
        let mut buf = vec![0.0f32; 10];
        buf[..7].copy_from_slice(x);
        let p = buf.as_mut_ptr();
        // SAFETY: x = p[0..7], y = p[3..10], both within `buf`.
        let st = unsafe { rnncell_model_step(m.0, s3.0, p, 7, p.add(3), 7) };
        assert_eq!(st, S::Ok);
        assert_eq!(bits(&buf[3..]), bits(want));
    }
    // Misaligned get/set of h and c round-trip.
    let hu = Unaligned::new(&rng.vec(7));
    let cu = Unaligned::new(&rng.vec(7));
    // SAFETY: 7 floats each.
    unsafe {
        assert_eq!(rnncell_state_set_h(s3.0, 1, hu.ptr(), 7), S::Ok);
        assert_eq!(rnncell_state_set_c(s3.0, 1, cu.ptr(), 7), S::Ok);
    }
    assert_eq!(bits(&s3.h(1, 7)), bits(&hu.read()));
    assert_eq!(bits(&s3.c(1, 7)), bits(&cu.read()));
    let mut out = Unaligned::new(&[0.0; 7]);
    assert_eq!(
        // SAFETY: 7 floats.
        unsafe { rnncell_state_get_h(s3.0, 1, out.ptr_mut(), 7) },
        S::Ok
    );
    assert_eq!(bits(&out.read()), bits(&hu.read()));
    assert_eq!(
        // SAFETY: 7 floats.
        unsafe { rnncell_state_get_c(s3.0, 1, out.ptr_mut(), 7) },
        S::Ok
    );
    assert_eq!(bits(&out.read()), bits(&cu.read()));
}

#[test]
fn step_allocates_nothing_on_any_path() {
    let mut rng = Rng(5);
    let rs = ModelSpec::new(CellKind::gru(), 9, 9).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Gru, 9, 9);
    cs.num_layers = 2;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let (_, other, _) = new_pytorch(&cs, &w.layers(), 0);
    let other = other.unwrap();
    let st = m.state();
    let foreign = other.state();
    let x = rng.vec(9);
    let mut y = vec![0.0; 9];
    let xu = Unaligned::new(&x);
    let mut yu = Unaligned::new(&y);
    let mut inplace = x.clone();
    let before = allocs();
    for _ in 0..50 {
        assert_eq!(m.step(&st, &x, &mut y), S::Ok);
        // SAFETY: 9 floats at each pointer.
        unsafe {
            assert_eq!(
                rnncell_model_step(m.0, st.0, xu.ptr(), 9, yu.ptr_mut(), 9),
                S::Ok
            );
            let p = inplace.as_mut_ptr();
            assert_eq!(rnncell_model_step(m.0, st.0, p, 9, p, 9), S::Ok);
        }
        // Error paths too.
        assert_eq!(m.step(&st, &x[..8], &mut y), S::SizeMismatch);
        assert_eq!(m.step(&foreign, &x, &mut y), S::StateMismatch);
        // SAFETY: null pointers are reported.
        unsafe {
            assert_eq!(
                rnncell_model_step(m.0, st.0, null(), 9, y.as_mut_ptr(), 9),
                S::NullPointer
            );
            assert_eq!(
                rnncell_model_step(m.0, st.0, x.as_ptr(), usize::MAX, y.as_mut_ptr(), 9),
                S::SizeOverflow
            );
        }
    }
    assert_eq!(allocs() - before, 0, "rnncell_model_step allocated");
}

#[test]
fn failed_calls_leave_the_state_unchanged() {
    let mut rng = Rng(99);
    let rs = ModelSpec::new(CellKind::lstm(), 5, 6);
    let w = Weights::random(&rs, &mut rng);
    let cs = spec_init(RnncellCell::Lstm, 5, 6);
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let (_, m2, _) = new_pytorch(&cs, &w.layers(), 0);
    let m2 = m2.unwrap();
    let st = m.state();
    let mut y = vec![0.0; 6];
    for _ in 0..3 {
        assert_eq!(m.step(&st, &rng.vec(5), &mut y), S::Ok);
    }
    let (h, c) = (st.h(0, 6), st.c(0, 6));
    let y_before = y.clone();
    let x = rng.vec(5);
    let check = |what: &str, y: &[f32]| {
        assert_eq!(bits(&st.h(0, 6)), bits(&h), "{what}: h changed");
        assert_eq!(bits(&st.c(0, 6)), bits(&c), "{what}: c changed");
        assert_eq!(bits(y), bits(&y_before), "{what}: y written");
    };
    assert_eq!(m.step(&st, &x[..4], &mut y), S::SizeMismatch);
    check("short x", &y);
    assert_eq!(m.step(&st, &x, &mut y[..5]), S::SizeMismatch);
    check("short y", &y);
    assert_eq!(m2.step(&st, &x, &mut y), S::StateMismatch);
    check("other model", &y);
    // SAFETY: null arguments are reported before anything is touched.
    unsafe {
        assert_eq!(
            rnncell_model_step(null(), st.0, x.as_ptr(), 5, y.as_mut_ptr(), 6),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step(m.0, null_mut(), x.as_ptr(), 5, y.as_mut_ptr(), 6),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step(m.0, st.0, x.as_ptr(), 5, null_mut(), 6),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step(m.0, st.0, x.as_ptr(), 5, y.as_mut_ptr(), usize::MAX / 2),
            S::SizeOverflow
        );
    }
    check("nulls", &y);
    // Bad set_h / set_c.
    let v = rng.vec(7);
    // SAFETY: `v` holds 7 floats; counts are checked.
    unsafe {
        assert_eq!(rnncell_state_set_h(st.0, 0, v.as_ptr(), 7), S::SizeMismatch);
        assert_eq!(
            rnncell_state_set_h(st.0, 1, v.as_ptr(), 6),
            S::InvalidArgument
        );
        assert_eq!(rnncell_state_set_c(st.0, 0, v.as_ptr(), 5), S::SizeMismatch);
        assert_eq!(rnncell_state_set_c(st.0, 0, null(), 6), S::NullPointer);
        assert_eq!(
            rnncell_state_set_h(st.0, 0, v.as_ptr(), usize::MAX),
            S::SizeOverflow
        );
    }
    check("bad set", &y);
    // Bad run: nothing written.
    let xs = rng.vec(3 * 5);
    let mut out = vec![1.5f32; 3 * 6];
    let mut hn = vec![2.5f32; 6];
    let seq = RnncellSequence {
        input: t(&xs),
        steps: 3,
        batch: 1,
        ..RnncellSequence::default()
    };
    let bad_out = RnncellSequenceOutput {
        output: tm(&mut out),
        h_n: RnncellTensorMut {
            data: hn.as_mut_ptr(),
            len: 5,
        },
        ..Default::default()
    };
    assert_eq!(m.run(&seq, &bad_out), S::SizeMismatch);
    assert!(out.iter().all(|v| *v == 1.5) && hn.iter().all(|v| *v == 2.5));
}

#[test]
fn null_pointers_and_overflowing_counts_everywhere() {
    let mut rng = Rng(3);
    let rs = ModelSpec::new(CellKind::lstm(), 3, 4);
    let w = Weights::random(&rs, &mut rng);
    let layers = w.layers();
    let cs = spec_init(RnncellCell::Lstm, 3, 4);
    let mut m = null_mut();
    // SAFETY: every call passes nulls or valid pointers; the ABI checks nulls.
    unsafe {
        assert_eq!(
            rnncell_model_new_pytorch(null(), layers.as_ptr(), 1, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        assert!(m.is_null());
        assert_eq!(
            rnncell_model_new_pytorch(&cs, null(), 1, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_new_pytorch(&cs, layers.as_ptr(), 1, 0, null_mut(), null_mut(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_new_pytorch(&cs, layers.as_ptr(), usize::MAX, 0, &mut m, null_mut(), 0),
            S::SizeOverflow
        );
        assert_eq!(
            rnncell_model_new_onnx(null(), null(), 0, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_new_keras(null(), null(), 0, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        // A required tensor with NULL data.
        let mut l = layers.clone();
        l[0].weight_hh.data = null();
        assert_eq!(
            rnncell_model_new_pytorch(&cs, l.as_ptr(), 1, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        l[0].weight_hh = RnncellTensor::default();
        assert_eq!(
            rnncell_model_new_pytorch(&cs, l.as_ptr(), 1, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        // An optional tensor with NULL data but a count.
        let mut l = layers.clone();
        l[0].bias_ih = RnncellTensor {
            data: null(),
            len: 16,
        };
        assert_eq!(
            rnncell_model_new_pytorch(&cs, l.as_ptr(), 1, 0, &mut m, null_mut(), 0),
            S::NullPointer
        );
        // A count whose byte size overflows.
        let mut l = layers.clone();
        l[0].weight_ih.len = usize::MAX / 2;
        assert_eq!(
            rnncell_model_new_pytorch(&cs, l.as_ptr(), 1, 0, &mut m, null_mut(), 0),
            S::SizeOverflow
        );
        // Invalid and unavailable ISAs.
        assert_eq!(
            rnncell_model_new_pytorch(&cs, layers.as_ptr(), 1, 99, &mut m, null_mut(), 0),
            S::InvalidArgument
        );
        let mask = rnncell_isa_available();
        for isa in 1..=4u32 {
            let st = rnncell_model_new_pytorch(&cs, layers.as_ptr(), 1, isa, &mut m, null_mut(), 0);
            if mask & (1 << isa) == 0 {
                assert_eq!(st, S::IsaUnavailable);
                assert!(m.is_null());
            } else {
                assert_eq!(st, S::Ok);
                rnncell_model_free(m);
            }
        }
        // Queries and state calls.
        let mut info = RnncellModelInfo::default();
        assert_eq!(rnncell_model_info(null(), &mut info), S::NullPointer);
        let (_, model, _) = new_pytorch(&cs, &layers, 0);
        let model = model.unwrap();
        assert_eq!(rnncell_model_info(model.0, null_mut()), S::NullPointer);
        assert_eq!(rnncell_model_spec(model.0, null_mut()), S::NullPointer);
        assert_eq!(
            rnncell_model_spec(null(), &mut RnncellSpec::default()),
            S::NullPointer
        );
        let mut s = null_mut();
        assert_eq!(rnncell_state_new(null(), &mut s), S::NullPointer);
        assert!(s.is_null());
        assert_eq!(rnncell_state_new(model.0, null_mut()), S::NullPointer);
        assert_eq!(rnncell_state_copy(null(), &mut s), S::NullPointer);
        let st = model.state();
        assert_eq!(rnncell_state_copy(st.0, null_mut()), S::NullPointer);
        assert_eq!(rnncell_state_reset(null_mut()), S::NullPointer);
        let mut v = [0.0f32; 4];
        assert_eq!(
            rnncell_state_get_h(null(), 0, v.as_mut_ptr(), 4),
            S::NullPointer
        );
        assert_eq!(rnncell_state_get_h(st.0, 0, null_mut(), 4), S::NullPointer);
        assert_eq!(rnncell_state_get_c(st.0, 0, null_mut(), 4), S::NullPointer);
        assert_eq!(
            rnncell_state_get_c(null(), 0, v.as_mut_ptr(), 4),
            S::NullPointer
        );
        assert_eq!(
            rnncell_state_set_h(null_mut(), 0, v.as_ptr(), 4),
            S::NullPointer
        );
        assert_eq!(
            rnncell_state_set_c(null_mut(), 0, v.as_ptr(), 4),
            S::NullPointer
        );
        assert_eq!(
            rnncell_state_get_h(st.0, 0, v.as_mut_ptr(), usize::MAX),
            S::SizeOverflow
        );
        assert_eq!(
            rnncell_state_get_h(st.0, 3, v.as_mut_ptr(), 4),
            S::InvalidArgument
        );
        assert_eq!(
            rnncell_state_get_h(st.0, 0, v.as_mut_ptr(), 3),
            S::SizeMismatch
        );
        // Run.
        let x = [0.5f32; 6];
        let mut y = [0.0f32; 8];
        let seq = RnncellSequence {
            input: t(&x),
            steps: 2,
            batch: 1,
            ..Default::default()
        };
        let out = RnncellSequenceOutput {
            output: tm(&mut y),
            ..Default::default()
        };
        assert_eq!(rnncell_model_run(null(), &seq, &out), S::NullPointer);
        assert_eq!(rnncell_model_run(model.0, null(), &out), S::NullPointer);
        assert_eq!(rnncell_model_run(model.0, &seq, null()), S::NullPointer);
        let mut s2 = seq;
        s2.input.data = null();
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::NullPointer);
        let mut s2 = seq;
        s2.seq_lens_len = 1;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::NullPointer);
        let mut s2 = seq;
        s2.h0 = RnncellTensor {
            data: null(),
            len: 4,
        };
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::NullPointer);
        let mut o2 = out;
        o2.output.data = null_mut();
        assert_eq!(rnncell_model_run(model.0, &seq, &o2), S::NullPointer);
        let mut o2 = out;
        o2.h_n = RnncellTensorMut {
            data: null_mut(),
            len: 4,
        };
        assert_eq!(rnncell_model_run(model.0, &seq, &o2), S::NullPointer);
        // Zero sizes and overflowing products.
        let mut s2 = seq;
        s2.steps = 0;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::InvalidArgument);
        let mut s2 = seq;
        s2.batch = 0;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::InvalidArgument);
        let mut s2 = seq;
        s2.batch = usize::MAX / 2;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::SizeOverflow);
        let mut s2 = seq;
        s2.steps = usize::MAX / 16;
        s2.batch = 3;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::SizeOverflow);
        // seq_lens: wrong count, entry > T.
        let lens = [3usize];
        let mut s2 = seq;
        s2.seq_lens = lens.as_ptr();
        s2.seq_lens_len = 1;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::InvalidArgument);
        let lens = [2usize, 2];
        s2.seq_lens = lens.as_ptr();
        s2.seq_lens_len = 2;
        assert_eq!(rnncell_model_run(model.0, &s2, &out), S::SizeMismatch);
        // The well-formed call succeeds.
        assert_eq!(rnncell_model_run(model.0, &seq, &out), S::Ok);
        // Frees of NULL are no-ops.
        rnncell_model_free(null_mut());
        rnncell_state_free(null_mut());
    }
}

#[test]
fn run_matches_stepping_and_handles_aliasing() {
    let mut rng = Rng(21);
    let rs = ModelSpec::new(CellKind::lstm(), 5, 5).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 5, 5);
    cs.num_layers = 2;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let (steps, batch) = (4, 3);
    let x = rng.vec(steps * batch * 5);
    let h0 = rng.vec(2 * batch * 5);
    let c0 = rng.vec(2 * batch * 5);
    // Step each stream alone from h0/c0.
    let mut want_y = vec![0.0; steps * batch * 5];
    let mut want_h = vec![0.0; 2 * batch * 5];
    let mut want_c = vec![0.0; 2 * batch * 5];
    for b in 0..batch {
        let st = m.state();
        for l in 0..2 {
            let off = (l * batch + b) * 5;
            // SAFETY: 5 floats each.
            unsafe {
                assert_eq!(rnncell_state_set_h(st.0, l, h0[off..].as_ptr(), 5), S::Ok);
                assert_eq!(rnncell_state_set_c(st.0, l, c0[off..].as_ptr(), 5), S::Ok);
            }
        }
        for tt in 0..steps {
            let i = (tt * batch + b) * 5;
            assert_eq!(m.step(&st, &x[i..i + 5], &mut want_y[i..i + 5]), S::Ok);
        }
        for l in 0..2 {
            let off = (l * batch + b) * 5;
            want_h[off..off + 5].copy_from_slice(&st.h(l, 5));
            want_c[off..off + 5].copy_from_slice(&st.c(l, 5));
        }
    }
    // Plain run.
    let mut y = vec![0.0; steps * batch * 5];
    let mut hn = vec![0.0; 2 * batch * 5];
    let mut cn = vec![0.0; 2 * batch * 5];
    let seq = RnncellSequence {
        input: t(&x),
        steps,
        batch,
        h0: t(&h0),
        c0: t(&c0),
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut y),
        h_n: tm(&mut hn),
        c_n: tm(&mut cn),
    };
    assert_eq!(m.run(&seq, &out), S::Ok);
    assert_eq!(bits(&y), bits(&want_y));
    assert_eq!(bits(&hn), bits(&want_h));
    assert_eq!(bits(&cn), bits(&want_c));
    // In place: h_n == h0, c_n == c0, output == input (I == out).
    let mut xio = x.clone();
    let mut hio = h0.clone();
    let mut cio = c0.clone();
    let seq = RnncellSequence {
        input: t(&xio),
        steps,
        batch,
        h0: t(&hio),
        c0: t(&cio),
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut xio),
        h_n: tm(&mut hio),
        c_n: tm(&mut cio),
    };
    assert_eq!(m.run(&seq, &out), S::Ok);
    assert_eq!(bits(&xio), bits(&want_y));
    assert_eq!(bits(&hio), bits(&want_h));
    assert_eq!(bits(&cio), bits(&want_c));
    // Misaligned everything.
    let xu = Unaligned::new(&x);
    let h0u = Unaligned::new(&h0);
    let c0u = Unaligned::new(&c0);
    let mut yu = Unaligned::new(&vec![0.0; y.len()]);
    let mut hnu = Unaligned::new(&vec![0.0; hn.len()]);
    let mut cnu = Unaligned::new(&vec![0.0; cn.len()]);
    let lens_bytes: Vec<u8> = [steps, steps, steps]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let mut lens_buf = vec![0u8; lens_bytes.len() + 1];
    lens_buf[1..].copy_from_slice(&lens_bytes);
    let seq = RnncellSequence {
        input: RnncellTensor {
            data: xu.ptr(),
            len: x.len(),
        },
        steps,
        batch,
        batch_major: 0,
        seq_lens: lens_buf[1..].as_ptr().cast(),
        seq_lens_len: 3,
        h0: RnncellTensor {
            data: h0u.ptr(),
            len: h0.len(),
        },
        c0: RnncellTensor {
            data: c0u.ptr(),
            len: c0.len(),
        },
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: RnncellTensorMut {
            data: yu.ptr_mut(),
            len: y.len(),
        },
        h_n: RnncellTensorMut {
            data: hnu.ptr_mut(),
            len: hn.len(),
        },
        c_n: RnncellTensorMut {
            data: cnu.ptr_mut(),
            len: cn.len(),
        },
    };
    assert_eq!(m.run(&seq, &out), S::Ok);
    assert_eq!(bits(&yu.read()), bits(&want_y));
    assert_eq!(bits(&hnu.read()), bits(&want_h));
    assert_eq!(bits(&cnu.read()), bits(&want_c));
    // Overlapping outputs are rejected and nothing is written.
    let mut shared = vec![9.0f32; y.len() + hn.len()];
    let p = shared.as_mut_ptr();
    let seq = RnncellSequence {
        input: t(&x),
        steps,
        batch,
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: RnncellTensorMut {
            data: p,
            len: y.len(),
        },
        h_n: RnncellTensorMut {
            // SAFETY: the offset stays inside `shared`.
            data: unsafe { p.add(y.len() - 1) },
            len: hn.len(),
        },
        ..Default::default()
    };
    assert_eq!(m.run(&seq, &out), S::InvalidArgument);
    assert!(shared.iter().all(|v| *v == 9.0));
}

#[test]
fn state_lifecycle_fork_reset_and_mismatch() {
    let mut rng = Rng(8);
    let rs = ModelSpec::new(CellKind::gru(), 3, 6);
    let w = Weights::random(&rs, &mut rng);
    let cs = spec_init(RnncellCell::Gru, 3, 6);
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let a = m.state();
    let mut y = vec![0.0; 6];
    assert_eq!(m.step(&a, &rng.vec(3), &mut y), S::Ok);
    let b = a.copy();
    assert_eq!(bits(&a.h(0, 6)), bits(&b.h(0, 6)));
    let x = rng.vec(3);
    let (mut ya, mut yb) = (vec![0.0; 6], vec![0.0; 6]);
    assert_eq!(m.step(&a, &x, &mut ya), S::Ok);
    assert_eq!(m.step(&b, &x, &mut yb), S::Ok);
    assert_eq!(bits(&ya), bits(&yb), "a fork continues identically");
    // Diverge b; a is unaffected.
    assert_eq!(m.step(&b, &rng.vec(3), &mut yb), S::Ok);
    assert_eq!(bits(&a.h(0, 6)), bits(&ya));
    // SAFETY: live state.
    assert_eq!(unsafe { rnncell_state_reset(a.0) }, S::Ok);
    assert!(a.h(0, 6).iter().all(|v| *v == 0.0));
    // GRU has no c.
    let mut c = [0.0f32; 6];
    // SAFETY: 6 floats.
    unsafe {
        assert_eq!(
            rnncell_state_get_c(a.0, 0, c.as_mut_ptr(), 6),
            S::InvalidArgument
        );
        assert_eq!(
            rnncell_state_set_c(a.0, 0, c.as_ptr(), 6),
            S::InvalidArgument
        );
    }
    // A state of another model (same spec) is refused; a state outlives its
    // model and can still be freed.
    let (_, m2, _) = new_pytorch(&cs, &w.layers(), 0);
    let m2 = m2.unwrap();
    assert_eq!(m2.step(&a, &x, &mut y), S::StateMismatch);
    let orphan = m2.state();
    let fork = orphan.copy();
    drop(m2);
    drop(orphan);
    assert_eq!(fork.h(0, 6), vec![0.0; 6]);
}

#[test]
fn nan_and_infinity_propagate() {
    let mut rng = Rng(4);
    let rs = ModelSpec::new(CellKind::lstm(), 4, 5);
    let mut w = Weights::random(&rs, &mut rng);
    let cs = spec_init(RnncellCell::Lstm, 4, 5);
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let st = m.state();
    let mut y = vec![0.0; 5];
    assert_eq!(m.step(&st, &[f32::NAN, 0.1, 0.2, 0.3], &mut y), S::Ok);
    assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    // Infinite weights are accepted; the result is defined by IEEE arithmetic.
    w.lw[0].b_w[0] = f32::INFINITY;
    let (st2, m2, _) = new_pytorch(&cs, &w.layers(), 0);
    assert_eq!(st2, S::Ok);
    let m2 = m2.unwrap();
    let s2 = m2.state();
    assert_eq!(m2.step(&s2, &[0.1, 0.1, 0.1, 0.1], &mut y), S::Ok);
}

#[test]
fn message_buffer_is_truncated_and_terminated() {
    let cs = spec_init(RnncellCell::Lstm, 3, 4);
    let w = vec![0.0f32; 4 * 4 * 3];
    let r = vec![0.0f32; 4 * 4 * 4 - 1];
    let layer = RnncellPytorchLayer {
        weight_ih: t(&w),
        weight_hh: t(&r),
        ..Default::default()
    };
    let mut m = null_mut();
    let mut msg = [0x55 as c_char; 12];
    // SAFETY: `msg` holds 12 bytes; we pass 8.
    let st = unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, msg.as_mut_ptr(), 8) };
    assert_eq!(st, S::SizeMismatch);
    assert_eq!(msg[7], 0, "NUL at the end of the given length");
    assert_eq!(msg[8], 0x55, "nothing written past the given length");
    // SAFETY: NUL-terminated.
    let full = unsafe {
        let mut big = [0 as c_char; 200];
        rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, big.as_mut_ptr(), 200);
        CStr::from_ptr(big.as_ptr()).to_str().unwrap().to_owned()
    };
    assert!(
        full.contains("layer 0 weight_hh") && full.contains("expected 64"),
        "{full}"
    );
    // A message length of 0 writes nothing.
    let mut one = [0x55 as c_char; 1];
    // SAFETY: length 0: nothing is written.
    unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, one.as_mut_ptr(), 0) };
    assert_eq!(one[0], 0x55);
}

#[test]
fn models_and_states_are_shared_across_threads() {
    let mut rng = Rng(1234);
    let rs = ModelSpec::new(CellKind::lstm(), 11, 13).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 11, 13);
    cs.num_layers = 2;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let inputs: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(20 * 11)).collect();
    let run_one = |x: &[f32]| -> Vec<f32> {
        let st = m.state();
        let mut y = vec![0.0; 13];
        let mut all = Vec::new();
        for t in 0..20 {
            assert_eq!(m.step(&st, &x[t * 11..(t + 1) * 11], &mut y), S::Ok);
            all.extend_from_slice(&y);
        }
        all
    };
    let sequential: Vec<Vec<f32>> = inputs.iter().map(|x| run_one(x)).collect();
    // RnncellModel is Sync: share &CModel's pointer via a wrapper.
    struct Shared(*mut RnncellModel);
    // SAFETY: the model is immutable and documented as shareable.
    unsafe impl Sync for Shared {}
    let shared = Shared(m.0);
    let parallel: Vec<Vec<f32>> = std::thread::scope(|s| {
        let hs: Vec<_> = inputs
            .iter()
            .map(|x| {
                let shared = &shared;
                s.spawn(move || {
                    let mut st = null_mut();
                    // SAFETY: live shared model; each thread owns its state.
                    assert_eq!(unsafe { rnncell_state_new(shared.0, &mut st) }, S::Ok);
                    let st = CState(st);
                    let mut y = vec![0.0; 13];
                    let mut all = Vec::new();
                    for t in 0..20 {
                        // SAFETY: live handles, 11 and 13 floats.
                        let r = unsafe {
                            rnncell_model_step(
                                shared.0,
                                st.0,
                                x[t * 11..].as_ptr(),
                                11,
                                y.as_mut_ptr(),
                                13,
                            )
                        };
                        assert_eq!(r, S::Ok);
                        all.extend_from_slice(&y);
                    }
                    all
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in sequential.iter().zip(&parallel) {
        assert_eq!(bits(a), bits(b));
    }
}

#[test]
fn bidirectional_sum_and_layout_variants_run() {
    // Merge sum and a projection in a bidirectional stack, through the C spec.
    let mut rng = Rng(77);
    let o = LstmOptions {
        proj_size: 3,
        ..LstmOptions::default()
    };
    let rs = ModelSpec::new(CellKind::Lstm(o), 4, 6)
        .layers(2)
        .direction(Direction::Bidirectional)
        .merge(MergeMode::Sum);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 4, 6);
    cs.num_layers = 2;
    cs.direction = RnncellDirection::Bidirectional as u32;
    cs.merge = RnncellMerge::Sum as u32;
    cs.lstm_proj_size = 3;
    let (st, m, msg) = new_pytorch(&cs, &w.layers(), 0);
    assert_eq!(st, S::Ok, "{msg}");
    let m = m.unwrap();
    assert_eq!(m.info().output_size, 3);
    assert_eq!(m.info().num_directions, 2);
    let rust = Model::new(rs, &w.lw).unwrap();
    compare_run(&rust, &m, &mut rng, 6, 2);
    // A bidirectional model cannot be stepped; the state stays zero.
    let s = m.state();
    let mut y = vec![0.0; 3];
    assert_eq!(m.step(&s, &[0.1; 4], &mut y), S::Unsupported);
    assert_eq!(s.h(0, 3), vec![0.0; 3]);
    // Too few layer structs for L*D.
    let (st, _, msg) = new_pytorch(&cs, &w.layers()[..3], 0);
    assert_eq!(st, S::SizeMismatch);
    assert!(msg.contains("expected 4"), "{msg}");
    // Reverse-direction weights named in messages.
    let mut l = w.layers();
    l[3].weight_hh.len -= 1;
    let (st, _, msg) = new_pytorch(&cs, &l, 0);
    assert_eq!(st, S::SizeMismatch);
    assert!(msg.contains("direction 1"), "{msg}");
}

#[cfg(feature = "test-panic")]
#[test]
fn panics_become_a_status_not_an_unwind() {
    assert_eq!(rnncell_test_panic(0), S::Panic);
    assert_eq!(rnncell_test_panic(1), S::Panic);
    assert_eq!(rnncell_test_panic(2), S::Ok);
    assert!(rnncell_test_panic_str().is_null());
    // The library still works after a caught panic.
    let cs = spec_init(RnncellCell::Rnn, 2, 2);
    let w = vec![0.25f32; 4];
    let r = vec![0.5f32; 4];
    let layer = RnncellPytorchLayer {
        weight_ih: t(&w),
        weight_hh: t(&r),
        ..Default::default()
    };
    let (st, m, _) = new_pytorch(&cs, &[layer], 0);
    assert_eq!(st, S::Ok);
    let m = m.unwrap();
    let s = m.state();
    let mut y = [0.0f32; 2];
    assert_eq!(m.step(&s, &[1.0, -0.5], &mut y), S::Ok);
    // h = tanh(0.25 * 1 + 0.25 * -0.5) for both units.
    for v in y {
        assert!((v - 0.125f32.tanh()).abs() < 1e-6, "{y:?}");
    }
}

#[test]
fn step_many_matches_single_steps_without_allocating() {
    let mut rng = Rng(31);
    // I == Hr so that xs and ys can share memory.
    let rs = ModelSpec::new(CellKind::lstm(), 6, 6).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 6, 6);
    cs.num_layers = 2;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    for n in [1usize, 5, 16, 21] {
        let singles: Vec<CState> = (0..n).map(|_| m.state()).collect();
        let many: Vec<CState> = (0..n).map(|_| m.state()).collect();
        let unal: Vec<CState> = (0..n).map(|_| m.state()).collect();
        let inpl: Vec<CState> = (0..n).map(|_| m.state()).collect();
        let ptrs = |v: &[CState]| v.iter().map(|s| s.0).collect::<Vec<_>>();
        let (pm, pu, pi) = (ptrs(&many), ptrs(&unal), ptrs(&inpl));
        for _ in 0..4 {
            let xs = rng.vec(n * 6);
            let mut want = vec![0.0; n * 6];
            for (i, st) in singles.iter().enumerate() {
                assert_eq!(
                    m.step(st, &xs[i * 6..(i + 1) * 6], &mut want[i * 6..(i + 1) * 6]),
                    S::Ok
                );
            }
            let mut ys = vec![0.0; n * 6];
            let xu = Unaligned::new(&xs);
            let mut yu = Unaligned::new(&ys);
            let mut io = xs.clone();
            let before = allocs();
            // SAFETY: N state pointers, N*6 floats in each buffer.
            unsafe {
                assert_eq!(
                    rnncell_model_step_many(
                        m.0,
                        pm.as_ptr(),
                        n,
                        xs.as_ptr(),
                        n * 6,
                        ys.as_mut_ptr(),
                        n * 6
                    ),
                    S::Ok
                );
                assert_eq!(
                    rnncell_model_step_many(
                        m.0,
                        pu.as_ptr(),
                        n,
                        xu.ptr(),
                        n * 6,
                        yu.ptr_mut(),
                        n * 6
                    ),
                    S::Ok
                );
                let p = io.as_mut_ptr();
                assert_eq!(
                    rnncell_model_step_many(m.0, pi.as_ptr(), n, p, n * 6, p, n * 6),
                    S::Ok
                );
            }
            assert_eq!(allocs() - before, 0, "step_many allocated (n = {n})");
            assert_eq!(bits(&ys), bits(&want));
            assert_eq!(bits(&yu.read()), bits(&want));
            assert_eq!(bits(&io), bits(&want));
        }
    }
    // Errors change nothing.
    let a = m.state();
    let b = m.state();
    let mut y = vec![0.0; 6];
    assert_eq!(m.step(&a, &rng.vec(6), &mut y), S::Ok);
    let h_before = a.h(1, 6);
    let (_, other, _) = new_pytorch(&cs, &w.layers(), 0);
    let other = other.unwrap();
    let foreign = other.state();
    let xs = rng.vec(3 * 6);
    let mut ys = vec![7.0f32; 3 * 6];
    let cases: Vec<(Vec<*mut RnncellState>, usize, usize, S)> = vec![
        (vec![a.0, b.0, a.0], 18, 18, S::InvalidArgument),
        (vec![a.0, b.0, b.0], 18, 18, S::InvalidArgument),
        (vec![a.0, null_mut(), b.0], 18, 18, S::NullPointer),
        (vec![a.0, foreign.0, b.0], 18, 18, S::StateMismatch),
        (vec![a.0, b.0], 18, 12, S::SizeMismatch),
        (vec![a.0, b.0], 12, 18, S::SizeMismatch),
        (vec![a.0, b.0], usize::MAX, 12, S::SizeOverflow),
    ];
    for (states, xl, yl, want) in cases {
        // SAFETY: the arrays hold states.len() pointers; lengths beyond the
        // buffers are rejected before any read.
        let st = unsafe {
            rnncell_model_step_many(
                m.0,
                states.as_ptr(),
                states.len(),
                xs.as_ptr(),
                xl,
                ys.as_mut_ptr(),
                yl,
            )
        };
        assert_eq!(st, want);
        assert_eq!(bits(&a.h(1, 6)), bits(&h_before));
        assert_eq!(b.h(1, 6), vec![0.0; 6]);
        assert!(ys.iter().all(|v| *v == 7.0));
    }
    // A state used twice is still usable afterwards (the marks were cleared).
    let pair = [a.0, b.0];
    // SAFETY: two distinct states, 12 floats each way.
    let st = unsafe {
        rnncell_model_step_many(m.0, pair.as_ptr(), 2, xs.as_ptr(), 12, ys.as_mut_ptr(), 12)
    };
    assert_eq!(st, S::Ok);
    // N = 0 is a no-op; NULL arrays are errors.
    // SAFETY: zero-length arrays; null pointers are checked.
    unsafe {
        assert_eq!(
            rnncell_model_step_many(m.0, pair.as_ptr(), 0, xs.as_ptr(), 0, ys.as_mut_ptr(), 0),
            S::Ok
        );
        assert_eq!(
            rnncell_model_step_many(m.0, null(), 0, xs.as_ptr(), 0, ys.as_mut_ptr(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step_many(
                null(),
                pair.as_ptr(),
                2,
                xs.as_ptr(),
                12,
                ys.as_mut_ptr(),
                12
            ),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step_many(m.0, pair.as_ptr(), 2, null(), 12, ys.as_mut_ptr(), 12),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step_many(m.0, pair.as_ptr(), 2, xs.as_ptr(), 12, null_mut(), 12),
            S::NullPointer
        );
    }
}

#[test]
fn step_chunk_matches_single_steps() {
    let mut rng = Rng(41);
    let rs = ModelSpec::new(CellKind::gru_reset_before(), 7, 9).layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Gru, 7, 9);
    cs.num_layers = 2;
    cs.gru_linear_before_reset = 0;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    let single = m.state();
    let chunked = m.state();
    let unal = m.state();
    for k in [1usize, 3, 17] {
        let xs = rng.vec(k * 7);
        let mut want = vec![0.0; k * 9];
        for t in 0..k {
            assert_eq!(
                m.step(
                    &single,
                    &xs[t * 7..(t + 1) * 7],
                    &mut want[t * 9..(t + 1) * 9]
                ),
                S::Ok
            );
        }
        let mut ys = vec![0.0; k * 9];
        let xu = Unaligned::new(&xs);
        let mut yu = Unaligned::new(&ys);
        // SAFETY: k*7 and k*9 floats.
        unsafe {
            assert_eq!(
                rnncell_model_step_chunk(
                    m.0,
                    chunked.0,
                    xs.as_ptr(),
                    k * 7,
                    ys.as_mut_ptr(),
                    k * 9
                ),
                S::Ok
            );
            assert_eq!(
                rnncell_model_step_chunk(m.0, unal.0, xu.ptr(), k * 7, yu.ptr_mut(), k * 9),
                S::Ok
            );
        }
        assert_eq!(bits(&ys), bits(&want));
        assert_eq!(bits(&yu.read()), bits(&want));
    }
    // Overlapping xs and ys: ys starts inside xs.
    let xs = rng.vec(2 * 7);
    let mut want = vec![0.0; 2 * 9];
    let s1 = m.state();
    let s2 = m.state();
    for t in 0..2 {
        assert_eq!(
            m.step(&s1, &xs[t * 7..(t + 1) * 7], &mut want[t * 9..(t + 1) * 9]),
            S::Ok
        );
    }
    let mut buf = vec![0.0f32; 2 * 7 + 2 * 9];
    buf[..14].copy_from_slice(&xs);
    let p = buf.as_mut_ptr();
    assert_eq!(
        // SAFETY: xs = p[0..14], ys = p[5..23], inside `buf`.
        unsafe { rnncell_model_step_chunk(m.0, s2.0, p, 14, p.add(5), 18) },
        S::Ok
    );
    assert_eq!(bits(&buf[5..23]), bits(&want));
    // Errors change nothing.
    let h = single.h(1, 9);
    let mut ys = vec![3.0f32; 18];
    let (_, other, _) = new_pytorch(&cs, &w.layers(), 0);
    let other = other.unwrap();
    // SAFETY: lengths within the buffers or rejected first.
    unsafe {
        assert_eq!(
            rnncell_model_step_chunk(m.0, single.0, xs.as_ptr(), 13, ys.as_mut_ptr(), 18),
            S::InvalidArgument
        );
        assert_eq!(
            rnncell_model_step_chunk(m.0, single.0, xs.as_ptr(), 0, ys.as_mut_ptr(), 0),
            S::InvalidArgument
        );
        assert_eq!(
            rnncell_model_step_chunk(m.0, single.0, xs.as_ptr(), 14, ys.as_mut_ptr(), 17),
            S::SizeMismatch
        );
        assert_eq!(
            rnncell_model_step_chunk(other.0, single.0, xs.as_ptr(), 14, ys.as_mut_ptr(), 18),
            S::StateMismatch
        );
        assert_eq!(
            rnncell_model_step_chunk(m.0, single.0, null(), 14, ys.as_mut_ptr(), 18),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step_chunk(m.0, null_mut(), xs.as_ptr(), 14, ys.as_mut_ptr(), 18),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_step_chunk(m.0, single.0, xs.as_ptr(), usize::MAX, ys.as_mut_ptr(), 18),
            S::SizeOverflow
        );
    }
    assert_eq!(bits(&single.h(1, 9)), bits(&h));
    assert!(ys.iter().all(|v| *v == 3.0));
}

/// A safetensors file of nn.GRU(input_size=3, hidden_size=4) under `prefix`.
fn gru_safetensors(prefix: &str, rng: &mut Rng) -> (Vec<u8>, Vec<Vec<f32>>) {
    gru_safetensors_sized(prefix, 3, 4, rng)
}

/// A safetensors file of nn.GRU(input_size=i, hidden_size=h) under
/// `prefix`, f32, and its tensors (weight_ih, weight_hh, bias_ih, bias_hh).
fn gru_safetensors_sized(
    prefix: &str,
    i: usize,
    h: usize,
    rng: &mut Rng,
) -> (Vec<u8>, Vec<Vec<f32>>) {
    let shapes = [
        ("weight_ih_l0", 3 * h, i),
        ("weight_hh_l0", 3 * h, h),
        ("bias_ih_l0", 3 * h, 0),
        ("bias_hh_l0", 3 * h, 0),
    ];
    let mut header = String::from("{");
    let mut data = Vec::new();
    let mut tensors = Vec::new();
    for (i, (name, rows, cols)) in shapes.iter().enumerate() {
        let n = rows * cols.max(&1);
        let v = rng.vec(n);
        let start = data.len();
        for x in &v {
            data.extend_from_slice(&x.to_le_bytes());
        }
        let shape = if *cols == 0 {
            format!("[{rows}]")
        } else {
            format!("[{rows},{cols}]")
        };
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{prefix}{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
        tensors.push(v);
    }
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    (file, tensors)
}

#[test]
fn safetensors_from_bytes_and_file() {
    let mut rng = Rng(55);
    let (file, t4) = gru_safetensors("enc.rnn.", &mut rng);
    let cs = spec_init(RnncellCell::Gru, 0, 0);
    let prefix = c"enc.rnn.";
    let opts = RnncellSafetensorsOptions {
        prefix: prefix.as_ptr(),
        ..Default::default()
    };
    let mut m = null_mut();
    let mut msg = [0 as c_char; 256];
    // SAFETY: `file` holds file.len() bytes; valid structs and buffers.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(
            file.as_ptr(),
            file.len(),
            &cs,
            &opts,
            0,
            &mut m,
            msg.as_mut_ptr(),
            256,
        )
    };
    // SAFETY: NUL-terminated.
    assert_eq!(st, S::Ok, "{:?}", unsafe { CStr::from_ptr(msg.as_ptr()) });
    let m = CModel(m);
    let info = m.info();
    assert_eq!(
        (info.input_size, info.hidden_size, info.num_layers),
        (3, 4, 1)
    );
    // Same numbers as building from the arrays.
    let layer = RnncellPytorchLayer {
        weight_ih: t(&t4[0]),
        weight_hh: t(&t4[1]),
        bias_ih: t(&t4[2]),
        bias_hh: t(&t4[3]),
        ..Default::default()
    };
    let (_, m2, _) = new_pytorch(&spec_init(RnncellCell::Gru, 3, 4), &[layer], 0);
    let m2 = m2.unwrap();
    let (a, b) = (m.state(), m2.state());
    let (mut ya, mut yb) = (vec![0.0; 4], vec![0.0; 4]);
    for _ in 0..3 {
        let x = rng.vec(3);
        assert_eq!(m.step(&a, &x, &mut ya), S::Ok);
        assert_eq!(m2.step(&b, &x, &mut yb), S::Ok);
        assert_eq!(bits(&ya), bits(&yb));
    }
    // From a file, with the bytes at an odd address too.
    let dir = std::env::temp_dir().join(format!("rnncell-ffi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gru.safetensors");
    std::fs::write(&path, &file).unwrap();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut m3 = null_mut();
    // SAFETY: NUL-terminated path, valid structs.
    let st = unsafe {
        rnncell_model_load_safetensors(cpath.as_ptr(), &cs, &opts, 0, &mut m3, null_mut(), 0)
    };
    assert_eq!(st, S::Ok);
    drop(CModel(m3));
    let mut odd = vec![0u8; file.len() + 1];
    odd[1..].copy_from_slice(&file);
    // SAFETY: `odd[1..]` holds file.len() bytes.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(
            odd[1..].as_ptr(),
            file.len(),
            &cs,
            &opts,
            0,
            &mut m3,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::Ok);
    drop(CModel(m3));
    // Errors: missing file (IO), truncated bytes (FORMAT), wrong prefix
    // (FORMAT), bad format value, non-UTF-8 prefix, NULL keras layer list.
    let missing = std::ffi::CString::new(dir.join("nope.safetensors").to_str().unwrap()).unwrap();
    let load = |p: *const c_char,
                bytes: Option<&[u8]>,
                o: &RnncellSafetensorsOptions|
     -> (S, String) {
        let mut m = null_mut();
        let mut msg = [0 as c_char; 256];
        // SAFETY: valid pointers for their counts; `msg` holds 256 bytes.
        let st = unsafe {
            match bytes {
                Some(b) => rnncell_model_load_safetensors_bytes(
                    b.as_ptr(),
                    b.len(),
                    &cs,
                    o,
                    0,
                    &mut m,
                    msg.as_mut_ptr(),
                    256,
                ),
                None => rnncell_model_load_safetensors(p, &cs, o, 0, &mut m, msg.as_mut_ptr(), 256),
            }
        };
        assert!(m.is_null());
        // SAFETY: NUL-terminated.
        (
            st,
            unsafe { CStr::from_ptr(msg.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    let (st, msg) = load(missing.as_ptr(), None, &opts);
    assert_eq!(st, S::Io, "{msg}");
    assert!(msg.contains("nope.safetensors"), "{msg}");
    let (st, msg) = load(null(), Some(&file[..file.len() - 3]), &opts);
    assert_eq!(st, S::Format, "{msg}");
    assert!(msg.contains("bias_hh_l0"), "{msg}");
    let other = RnncellSafetensorsOptions {
        prefix: c"decoder.".as_ptr(),
        ..Default::default()
    };
    let (st, msg) = load(null(), Some(&file), &other);
    assert_eq!(st, S::Format, "{msg}");
    let (st, _) = load(
        null(),
        Some(&file),
        &RnncellSafetensorsOptions { format: 2, ..opts },
    );
    assert_eq!(st, S::InvalidArgument);
    let bad_utf8 = [0xffu8, 0xfe, 0];
    let (st, msg) = load(
        null(),
        Some(&file),
        &RnncellSafetensorsOptions {
            prefix: bad_utf8.as_ptr().cast(),
            ..opts
        },
    );
    assert_eq!(st, S::InvalidArgument);
    assert!(msg.contains("UTF-8"), "{msg}");
    let (st, _) = load(
        null(),
        Some(&file),
        &RnncellSafetensorsOptions {
            format: 1,
            keras_layers_len: 2,
            ..opts
        },
    );
    assert_eq!(st, S::NullPointer);
    let (st, _) = load(null(), None, &opts);
    assert_eq!(st, S::NullPointer);
    // SAFETY: NULL bytes are reported.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(null(), 10, &cs, &opts, 0, &mut m3, null_mut(), 0)
    };
    assert_eq!(st, S::NullPointer);
    // Peepholes cannot come from such a file.
    let mut peep = spec_init(RnncellCell::Lstm, 0, 0);
    peep.lstm_peephole = 1;
    // SAFETY: valid pointers.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(
            file.as_ptr(),
            file.len(),
            &peep,
            &opts,
            0,
            &mut m3,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::InvalidArgument);
    // NULL options: PyTorch, whole file (works for a file without prefix).
    let (plain, _) = gru_safetensors("", &mut rng);
    // SAFETY: valid pointers.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(
            plain.as_ptr(),
            plain.len(),
            &cs,
            null(),
            0,
            &mut m3,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::Ok);
    drop(CModel(m3));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every precision value of the C enum, with the Rust precision it names.
fn precisions() -> [(u32, rnncell::WeightPrecision); 5] {
    use rnncell::WeightPrecision as P;
    [
        (RnncellWeightPrecision::F32 as u32, P::F32),
        (RnncellWeightPrecision::F16 as u32, P::F16),
        (RnncellWeightPrecision::Bf16 as u32, P::Bf16),
        (RnncellWeightPrecision::I8w as u32, P::Int8Weights),
        (RnncellWeightPrecision::I8 as u32, P::Int8),
    ]
}

#[test]
fn precision_table_names_every_rust_precision_in_c_order() {
    let table = precisions();
    assert_eq!(table.map(|(_, p)| p), rnncell::WeightPrecision::ALL);
    for (i, (v, _)) in table.iter().enumerate() {
        assert_eq!(*v as usize, i);
    }
    assert_eq!(RNNCELL_MAX_INT8_K, rnncell::MAX_INT8_K);
}

/// The message of a failed build (the model pointer must be NULL).
fn failed(st: S, m: *mut RnncellModel, msg: &[c_char]) -> (S, String) {
    assert!(m.is_null());
    // SAFETY: the builders NUL-terminate a non-null message buffer.
    let text = unsafe { CStr::from_ptr(msg.as_ptr()) };
    (st, text.to_string_lossy().into_owned())
}

#[test]
fn weight_precision_reaches_every_builder_and_model_info() {
    assert_eq!(RnncellWeightPrecision::Stored as u32, 255);
    let mut rng = Rng(12);
    // PyTorch layout: every precision builds and reports itself, in
    // rnncell_model_info and rnncell_model_spec; the spec read back builds
    // a model of the same precision.
    let cs0 = spec_init(RnncellCell::Lstm, 5, 6);
    let w = Weights::random(&ModelSpec::new(CellKind::lstm(), 5, 6), &mut rng);
    let layers = w.layers();
    for (v, p) in precisions() {
        let mut cs = cs0;
        cs.weight_precision = v;
        let (st, m, msg) = new_pytorch(&cs, &layers, 0);
        assert_eq!(st, S::Ok, "{p}: {msg}");
        let m = m.unwrap();
        let info = m.info();
        assert_eq!(info.weight_precision, v, "{p}");
        assert!(info.weight_bytes > 0);
        let mut back = RnncellSpec::default();
        // SAFETY: live model; `back` writable.
        assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
        assert_eq!(back, cs, "{p}");
        let (st, again, _) = new_pytorch(&back, &layers, 0);
        assert_eq!(st, S::Ok);
        assert_eq!(again.unwrap().info().weight_precision, v);
    }
    // Bad values and STORED are INVALID_ARGUMENT naming the field, in every
    // array builder.
    let mut onnx_cs = spec_init(RnncellCell::Gru, 4, 3);
    let (ow, or) = (rng.vec(3 * 3 * 4), rng.vec(3 * 3 * 3));
    let onnx = [RnncellOnnxLayer {
        w: t(&ow),
        r: t(&or),
        ..Default::default()
    }];
    let keras = [RnncellKerasLayer {
        kernel: t(&ow),
        recurrent_kernel: t(&or),
        ..Default::default()
    }];
    let build = |kind: usize, cs: &RnncellSpec| -> (S, Option<CModel>, String) {
        let mut m = null_mut();
        let mut msg = [0 as c_char; 256];
        // SAFETY: every pointer is valid for its count; `msg` holds 256 bytes.
        let st = unsafe {
            match kind {
                0 => rnncell_model_new_onnx(cs, onnx.as_ptr(), 1, 0, &mut m, msg.as_mut_ptr(), 256),
                _ => {
                    rnncell_model_new_keras(cs, keras.as_ptr(), 1, 0, &mut m, msg.as_mut_ptr(), 256)
                }
            }
        };
        if st == S::Ok {
            return (st, Some(CModel(m)), String::new());
        }
        let (st, text) = failed(st, m, &msg);
        (st, None, text)
    };
    for kind in [0, 1] {
        for (v, p) in precisions() {
            onnx_cs.weight_precision = v;
            let (st, m, msg) = build(kind, &onnx_cs);
            assert_eq!(st, S::Ok, "{kind} {p}: {msg}");
            assert_eq!(m.unwrap().info().weight_precision, v);
        }
        for v in [5, 254, 255] {
            onnx_cs.weight_precision = v;
            let (st, m, msg) = build(kind, &onnx_cs);
            assert_eq!(st, S::InvalidArgument, "{kind} {v}");
            assert!(m.is_none());
            assert!(msg.contains("weight_precision"), "{msg}");
            if v == 255 {
                assert!(msg.contains("STORED"), "{msg}");
            }
        }
    }
    for v in [5, 254, 255] {
        let mut cs = cs0;
        cs.weight_precision = v;
        let (st, m, msg) = new_pytorch(&cs, &layers, 0);
        assert_eq!((st, m.is_none()), (S::InvalidArgument, true), "{v}");
        assert!(msg.contains("spec.weight_precision"), "{msg}");
    }

    // The safetensors loaders: every precision, STORED (the file's dtype:
    // f32 for this file, f16 and bf16 for the committed ones), bad values.
    let (file, _) = gru_safetensors("", &mut rng);
    let load = |bytes: &[u8], cs: &RnncellSpec, opts: &RnncellSafetensorsOptions| {
        let mut m = null_mut();
        let mut msg = [0 as c_char; 256];
        // SAFETY: `bytes` holds bytes.len() bytes; valid structs and buffers.
        let st = unsafe {
            rnncell_model_load_safetensors_bytes(
                bytes.as_ptr(),
                bytes.len(),
                cs,
                opts,
                0,
                &mut m,
                msg.as_mut_ptr(),
                256,
            )
        };
        if st == S::Ok {
            return Ok(CModel(m));
        }
        Err(failed(st, m, &msg))
    };
    let pt = RnncellSafetensorsOptions::default();
    let mut gru = spec_init(RnncellCell::Gru, 0, 0);
    for (v, p) in precisions() {
        gru.weight_precision = v;
        let m = load(&file, &gru, &pt).unwrap_or_else(|e| panic!("{p}: {e:?}"));
        assert_eq!(m.info().weight_precision, v);
    }
    gru.weight_precision = RnncellWeightPrecision::Stored as u32;
    let m = load(&file, &gru, &pt).unwrap();
    assert_eq!(
        m.info().weight_precision,
        RnncellWeightPrecision::F32 as u32
    );
    for v in [5, 254] {
        gru.weight_precision = v;
        let (st, msg) = load(&file, &gru, &pt).err().unwrap();
        assert_eq!(st, S::InvalidArgument);
        assert!(msg.contains("spec.weight_precision"), "{msg}");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safetensors");
    let keras = RnncellSafetensorsOptions {
        format: RnncellWeightFormat::Keras as u32,
        prefix: c"sequential/".as_ptr(),
        ..Default::default()
    };
    for (name, cell, opts, stored) in [
        (
            "torch_lstm_2l_f16",
            RnncellCell::Lstm,
            pt,
            RnncellWeightPrecision::F16,
        ),
        (
            "torch_gru_1l_bf16",
            RnncellCell::Gru,
            pt,
            RnncellWeightPrecision::Bf16,
        ),
        (
            "keras_gru_bi_bf16",
            RnncellCell::Gru,
            keras,
            RnncellWeightPrecision::Bf16,
        ),
    ] {
        let path = dir.join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap();
        let mut cs = spec_init(cell, 0, 0);
        // spec_init: f32, as in 0.1.
        let m = load(&bytes, &cs, &opts).unwrap();
        assert_eq!(m.info().weight_precision, 0, "{name}");
        cs.weight_precision = RnncellWeightPrecision::Stored as u32;
        let m = load(&bytes, &cs, &opts).unwrap();
        assert_eq!(m.info().weight_precision, stored as u32, "{name}");
        // The spec read back names the precision, not STORED.
        let mut back = RnncellSpec::default();
        // SAFETY: live model; `back` writable.
        assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
        assert_eq!(back.weight_precision, stored as u32);
        // The path loader too.
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let mut m = null_mut();
        // SAFETY: NUL-terminated path, valid structs.
        let st = unsafe {
            rnncell_model_load_safetensors(cpath.as_ptr(), &cs, &opts, 0, &mut m, null_mut(), 0)
        };
        assert_eq!(st, S::Ok, "{name}");
        assert_eq!(CModel(m).info().weight_precision, stored as u32);
    }
}

// ---------------------------------------------------------------- i8

/// The largest |a - b| over two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn i8_models_match_the_rust_api_bit_for_bit() {
    use rnncell::WeightPrecision as P;
    assert_eq!(RnncellWeightPrecision::I8 as u32, 4);
    let mut rng = Rng(0x18_18);
    // Every variant (LSTM with peepholes, projection, clips and CIFG in 2
    // layers; LSTM with ONNX input_forget; GRU reset-before in 3 layers with
    // a clip; GRU linear-before-reset; RNN relu in 2 layers) on every ISA:
    // steps, states, rnncell_model_run and rnncell_model_info as the Rust
    // model built with WeightPrecision::Int8 on the same weights.
    for (rs, mut cs) in variants() {
        let rs = rs.precision(P::Int8);
        cs.weight_precision = RnncellWeightPrecision::I8 as u32;
        let w = Weights::random(&rs, &mut rng);
        let exact = Model::new(rs.precision(P::F32), &w.lw).unwrap();
        for &isa in &Isa::available() {
            let rust = Model::with_isa(rs, &w.lw, isa).unwrap();
            assert_eq!(rust.precision(), P::Int8);
            let (st, m, msg) = new_pytorch(&cs, &w.layers(), c_isa(isa) as u32);
            assert_eq!(st, S::Ok, "{isa:?}: {msg}");
            let m = m.unwrap();
            let info = m.info();
            assert_eq!(info.weight_precision, 4);
            assert_eq!(info.weight_bytes, rust.weight_bytes());
            assert!(info.weight_bytes < exact.weight_bytes());
            assert_eq!(info.isa, c_isa(isa));
            let mut back = RnncellSpec::default();
            // SAFETY: live model, writable out.
            assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
            assert_eq!(back.weight_precision, 4);
            let (cst, mut rst, mut est) = (m.state(), rust.new_state(), exact.new_state());
            let hr = rs.state_size();
            let (mut yc, mut yr, mut ye) = (vec![0.0; hr], vec![0.0; hr], vec![0.0; hr]);
            let mut worst = 0.0f32;
            for _ in 0..6 {
                let x = rng.vec(rs.input_size);
                let before = allocs();
                assert_eq!(m.step(&cst, &x, &mut yc), S::Ok);
                assert_eq!(allocs() - before, 0, "an i8 rnncell_model_step allocated");
                rust.step(&mut rst, &x, &mut yr).unwrap();
                exact.step(&mut est, &x, &mut ye).unwrap();
                assert_eq!(bits(&yc), bits(&yr));
                assert!(yc.iter().any(|v| *v != 0.0));
                worst = worst.max(max_abs_diff(&yc, &ye));
            }
            // The precision reached the kernels: i8 is close to f32 but
            // not equal to it.
            assert!(worst > 0.0, "{isa:?}: the i8 model computed f32");
            assert!(worst < 0.1, "{isa:?}: |i8 - f32| = {worst}");
            for l in 0..rs.num_layers {
                assert_eq!(bits(&cst.h(l, hr)), bits(rst.h(l)));
                if let Some(c) = rst.c(l) {
                    assert_eq!(bits(&cst.c(l, rs.hidden_size)), bits(c));
                }
            }
            compare_run(&rust, &m, &mut rng, 5, 3);
        }
    }
    // A bidirectional stack (concat, so layer 1 reads 2 Hr floats), run only.
    let rs = ModelSpec::new(CellKind::gru(), 5, 7)
        .layers(2)
        .direction(Direction::Bidirectional)
        .precision(P::Int8);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Gru, 5, 7);
    cs.num_layers = 2;
    cs.direction = RnncellDirection::Bidirectional as u32;
    cs.weight_precision = RnncellWeightPrecision::I8 as u32;
    let (st, m, msg) = new_pytorch(&cs, &w.layers(), 0);
    assert_eq!(st, S::Ok, "{msg}");
    let m = m.unwrap();
    let rust = Model::new(rs, &w.lw).unwrap();
    assert_eq!(m.info().weight_bytes, rust.weight_bytes());
    compare_run(&rust, &m, &mut rng, 6, 2);
}

#[test]
fn i8_step_many_and_step_chunk_match_single_steps() {
    use rnncell::WeightPrecision as P;
    let mut rng = Rng(0x5eed);
    let rs = ModelSpec::new(CellKind::lstm(), 6, 6)
        .layers(2)
        .precision(P::Int8);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 6, 6);
    cs.num_layers = 2;
    cs.weight_precision = RnncellWeightPrecision::I8 as u32;
    let (_, m, _) = new_pytorch(&cs, &w.layers(), 0);
    let m = m.unwrap();
    // step_many over 5 streams == each stream stepped alone.
    let n = 5;
    let singles: Vec<CState> = (0..n).map(|_| m.state()).collect();
    let many: Vec<CState> = (0..n).map(|_| m.state()).collect();
    let pm: Vec<_> = many.iter().map(|s| s.0).collect();
    for _ in 0..3 {
        let xs = rng.vec(n * 6);
        let mut want = vec![0.0; n * 6];
        for (i, st) in singles.iter().enumerate() {
            let r = i * 6..(i + 1) * 6;
            assert_eq!(m.step(st, &xs[r.clone()], &mut want[r]), S::Ok);
        }
        let mut ys = vec![0.0; n * 6];
        let before = allocs();
        // SAFETY: n state pointers, n*6 floats in each buffer.
        let st = unsafe {
            rnncell_model_step_many(
                m.0,
                pm.as_ptr(),
                n,
                xs.as_ptr(),
                n * 6,
                ys.as_mut_ptr(),
                n * 6,
            )
        };
        assert_eq!(st, S::Ok);
        assert_eq!(allocs() - before, 0, "an i8 step_many allocated");
        assert_eq!(bits(&ys), bits(&want));
    }
    // step_chunk over 7 steps == 7 single steps.
    let (single, chunked) = (m.state(), m.state());
    let k = 7;
    let xs = rng.vec(k * 6);
    let mut want = vec![0.0; k * 6];
    for t in 0..k {
        let r = t * 6..(t + 1) * 6;
        assert_eq!(m.step(&single, &xs[r.clone()], &mut want[r]), S::Ok);
    }
    let mut ys = vec![0.0; k * 6];
    // SAFETY: k*6 floats each way.
    let st = unsafe {
        rnncell_model_step_chunk(m.0, chunked.0, xs.as_ptr(), k * 6, ys.as_mut_ptr(), k * 6)
    };
    assert_eq!(st, S::Ok);
    assert_eq!(bits(&ys), bits(&want));
    assert_eq!(bits(&chunked.h(1, 6)), bits(&single.h(1, 6)));
    assert_eq!(bits(&chunked.c(1, 6)), bits(&single.c(1, 6)));
}

/// Loads `file` with the PyTorch layout, cell `cell`, load precision `v`.
fn load_bytes(file: &[u8], cell: RnncellCell, v: u32) -> Result<CModel, (S, String)> {
    let mut cs = spec_init(cell, 0, 0);
    cs.weight_precision = v;
    let mut m = null_mut();
    let mut msg = [0 as c_char; 256];
    // SAFETY: `file` holds file.len() bytes; NULL options mean PyTorch,
    // whole file; `msg` holds 256 bytes.
    let st = unsafe {
        rnncell_model_load_safetensors_bytes(
            file.as_ptr(),
            file.len(),
            &cs,
            null(),
            0,
            &mut m,
            msg.as_mut_ptr(),
            msg.len(),
        )
    };
    if st == S::Ok {
        return Ok(CModel(m));
    }
    Err(failed(st, m, &msg))
}

#[test]
fn i8_safetensors_load_matches_the_rust_api() {
    use rnncell::WeightPrecision as P;
    let mut rng = Rng(0x5afe);
    let (file, t4) = gru_safetensors_sized("", 11, 9, &mut rng);
    let m = load_bytes(&file, RnncellCell::Gru, RnncellWeightPrecision::I8 as u32).unwrap();
    let lw = LayerWeights {
        w: t4[0].clone(),
        r: t4[1].clone(),
        b_w: t4[2].clone(),
        b_r: t4[3].clone(),
        peephole: vec![],
        proj: vec![],
        proj_bias: vec![],
    };
    let rs = ModelSpec::new(CellKind::gru(), 11, 9).precision(P::Int8);
    let rust = Model::new(rs, &[lw]).unwrap();
    let info = m.info();
    assert_eq!((info.input_size, info.hidden_size), (11, 9));
    assert_eq!(info.weight_precision, 4);
    assert_eq!(info.weight_bytes, rust.weight_bytes());
    let (cst, mut rst) = (m.state(), rust.new_state());
    let (mut yc, mut yr) = (vec![0.0; 9], vec![0.0; 9]);
    for _ in 0..5 {
        let x = rng.vec(11);
        assert_eq!(m.step(&cst, &x, &mut yc), S::Ok);
        rust.step(&mut rst, &x, &mut yr).unwrap();
        assert_eq!(bits(&yc), bits(&yr));
    }
    compare_run(&rust, &m, &mut rng, 4, 3);
}

#[test]
fn i8_rejects_a_k_above_the_int32_limit_that_f32_accepts() {
    use rnncell::WeightPrecision as P;
    let k = RNNCELL_MAX_INT8_K + 1;
    assert_eq!(k, 133_144);
    let i8v = RnncellWeightPrecision::I8 as u32;
    let mut rng = Rng(133);
    // input_size = k, hidden_size 1 (2 MB of f32 weights for the LSTM): i8
    // is INVALID_ARGUMENT naming the size from every array builder; f32
    // builds from the same arrays and steps like the Rust model; the
    // largest K (k - 1) builds in i8 and steps like the Rust model.
    for (kind, cell) in [
        (CellKind::lstm(), RnncellCell::Lstm),
        (CellKind::gru(), RnncellCell::Gru),
    ] {
        let rs = ModelSpec::new(kind, k, 1);
        let w = Weights::random(&rs, &mut rng);
        let (lw, layers) = (&w.lw[0], w.layers());
        let onnx = [RnncellOnnxLayer {
            w: t(&lw.w),
            r: t(&lw.r),
            ..Default::default()
        }];
        let keras = [RnncellKerasLayer {
            kernel: t(&lw.w),
            recurrent_kernel: t(&lw.r),
            ..Default::default()
        }];
        let build = |builder: usize, cs: &RnncellSpec| -> (S, Option<CModel>, String) {
            if builder == 0 {
                return new_pytorch(cs, &layers, 0);
            }
            let mut m = null_mut();
            let mut msg = [0 as c_char; 256];
            // SAFETY: every pointer is valid for its count; `msg` holds 256
            // bytes.
            let st = unsafe {
                if builder == 1 {
                    rnncell_model_new_onnx(cs, onnx.as_ptr(), 1, 0, &mut m, msg.as_mut_ptr(), 256)
                } else {
                    rnncell_model_new_keras(cs, keras.as_ptr(), 1, 0, &mut m, msg.as_mut_ptr(), 256)
                }
            };
            if st == S::Ok {
                return (st, Some(CModel(m)), String::new());
            }
            let (st, text) = failed(st, m, &msg);
            (st, None, text)
        };
        let mut cs = spec_init(cell, k, 1);
        for builder in 0..3 {
            cs.weight_precision = i8v;
            let (st, m, msg) = build(builder, &cs);
            assert_eq!(st, S::InvalidArgument, "{builder}: {msg}");
            assert!(m.is_none());
            assert!(
                msg.contains("input_size 133144 exceeds 133143") && msg.contains("i8"),
                "{builder}: {msg}"
            );
            cs.weight_precision = RnncellWeightPrecision::F32 as u32;
            let (st, m, msg) = build(builder, &cs);
            assert_eq!(st, S::Ok, "{builder}: {msg}");
            assert_eq!(m.unwrap().info().input_size, k);
        }
        let (_, m, _) = build(0, &cs);
        let m = m.unwrap();
        let rust = Model::new(rs, &w.lw).unwrap();
        let x = rng.vec(k);
        let (cst, mut rst) = (m.state(), rust.new_state());
        let (mut yc, mut yr) = (vec![0.0; 1], vec![0.0; 1]);
        assert_eq!(m.step(&cst, &x, &mut yc), S::Ok);
        rust.step(&mut rst, &x, &mut yr).unwrap();
        assert_eq!(bits(&yc), bits(&yr));
        // The largest K: the same weights without their last column.
        let edge = ModelSpec::new(kind, k - 1, 1).precision(P::Int8);
        let g = kind.gates();
        let mut ew = w.lw[0].clone();
        ew.w =
            ew.w.chunks(k)
                .flat_map(|row| &row[..k - 1])
                .copied()
                .collect();
        assert_eq!(ew.w.len(), g * (k - 1));
        let mut ecs = spec_init(cell, k - 1, 1);
        ecs.weight_precision = i8v;
        let (st, m, msg) = new_pytorch(
            &ecs,
            &Weights {
                lw: vec![ew.clone()],
            }
            .layers(),
            0,
        );
        assert_eq!(st, S::Ok, "{msg}");
        let m = m.unwrap();
        assert_eq!(m.info().weight_precision, i8v);
        let rust = Model::new(edge, &[ew]).unwrap();
        let (cst, mut rst) = (m.state(), rust.new_state());
        assert_eq!(m.step(&cst, &x[..k - 1], &mut yc), S::Ok);
        rust.step(&mut rst, &x[..k - 1], &mut yr).unwrap();
        assert_eq!(bits(&yc), bits(&yr));
    }
    // hidden_size = k, and a layer-1 input of 2 x 66572 = k (a
    // bidirectional GRU stack): validation only, since these models are
    // large in any precision. The spec is checked before any weight is
    // read, so no layers are needed to see the error.
    let mut cs = spec_init(RnncellCell::Gru, 3, k);
    cs.weight_precision = i8v;
    let (st, m, msg) = new_pytorch(&cs, &[], 0);
    assert_eq!((st, m.is_none()), (S::InvalidArgument, true), "{msg}");
    assert!(msg.contains("hidden_size 133144 exceeds 133143"), "{msg}");
    let mut cs = spec_init(RnncellCell::Gru, 3, k / 2);
    cs.num_layers = 2;
    cs.direction = RnncellDirection::Bidirectional as u32;
    cs.weight_precision = i8v;
    let (st, m, msg) = new_pytorch(&cs, &[], 0);
    assert_eq!((st, m.is_none()), (S::InvalidArgument, true), "{msg}");
    assert!(msg.contains("layer 1") && msg.contains("133144"), "{msg}");
    // One layer of that width is within the limit (then the missing layers
    // are the error).
    cs.num_layers = 1;
    let (st, _, msg) = new_pytorch(&cs, &[], 0);
    assert_eq!(st, S::SizeMismatch, "{msg}");
    // The safetensors loader: the same limit on the size read from the
    // file (nn.GRU(133144, 1), 1.6 MB), f32 loads it.
    let (file, _) = gru_safetensors_sized("", k, 1, &mut rng);
    let (st, msg) = load_bytes(&file, RnncellCell::Gru, i8v).err().unwrap();
    assert_eq!(st, S::InvalidArgument, "{msg}");
    assert!(msg.contains("input_size 133144 exceeds 133143"), "{msg}");
    let m = load_bytes(&file, RnncellCell::Gru, RnncellWeightPrecision::F32 as u32).unwrap();
    assert_eq!(m.info().input_size, k);
    assert_eq!(m.info().weight_precision, 0);
}

// ------------------------------------------------- PyTorch cell modules (issue 13)

/// A committed tests/safetensors case: its JSON and file bytes.
fn safetensors_case(name: &str) -> (serde_json::Value, Vec<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safetensors");
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
    (serde_json::from_str(&json).unwrap(), bytes)
}

fn json_floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn pytorch_cell_modules_load_from_c() {
    // nn.GRUCell under "decoder.rnn." (from a path) and nn.LSTMCell, nn.RNNCell
    // (from memory, NULL options): stepped from C, they give torch's outputs
    // within 1e-5 and the Rust loader's bits.
    for (name, cell, prefix) in [
        (
            "torch_grucell_prefixed",
            RnncellCell::Gru,
            Some(c"decoder.rnn."),
        ),
        ("torch_lstmcell", RnncellCell::Lstm, None),
        ("torch_rnncell_relu_nobias", RnncellCell::Rnn, None),
    ] {
        let (c, bytes) = safetensors_case(name);
        let mut cs = spec_init(cell, 0, 0);
        if name.contains("relu") {
            cs.rnn_activation = RnncellActivation::Relu as u32;
        }
        let opts = RnncellSafetensorsOptions {
            prefix: prefix.map_or(null(), |p| p.as_ptr()),
            ..Default::default()
        };
        let mut m = null_mut();
        let mut msg = [0 as c_char; 256];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safetensors");
        let path =
            std::ffi::CString::new(dir.join(format!("{name}.safetensors")).to_str().unwrap())
                .unwrap();
        // SAFETY: NUL-terminated path and prefix, valid structs, `msg`
        // holds 256 bytes; `bytes` holds bytes.len() bytes.
        let st = unsafe {
            if prefix.is_some() {
                rnncell_model_load_safetensors(
                    path.as_ptr(),
                    &cs,
                    &opts,
                    0,
                    &mut m,
                    msg.as_mut_ptr(),
                    256,
                )
            } else {
                rnncell_model_load_safetensors_bytes(
                    bytes.as_ptr(),
                    bytes.len(),
                    &cs,
                    null(),
                    0,
                    &mut m,
                    msg.as_mut_ptr(),
                    256,
                )
            }
        };
        // SAFETY: NUL-terminated.
        assert_eq!(st, S::Ok, "{name}: {:?}", unsafe {
            CStr::from_ptr(msg.as_ptr())
        });
        let m = CModel(m);
        let info = m.info();
        let sp = &c["spec"];
        let n = |k: &str| sp[k].as_u64().unwrap() as usize;
        assert_eq!(
            (
                info.input_size,
                info.hidden_size,
                info.num_layers,
                info.num_directions
            ),
            (n("input_size"), n("hidden_size"), 1, 1),
            "{name}"
        );
        let rust_cell = match cell {
            RnncellCell::Lstm => CellKind::lstm(),
            RnncellCell::Gru => CellKind::gru(),
            RnncellCell::Rnn => CellKind::rnn_relu(),
        };
        let ropts = rnncell::SafetensorsOptions::pytorch(rust_cell)
            .prefix(prefix.map_or("", |p| p.to_str().unwrap()));
        let rust = rnncell::load_safetensors_bytes(&bytes, &ropts).unwrap();
        let (x, want) = (json_floats(&c["input"]), json_floats(&c["output"]));
        let (t, b, i, h) = (6, 2, info.input_size, info.hidden_size);
        for s in 0..b {
            let (st, mut rst) = (m.state(), rust.new_state());
            let (mut y, mut yr) = (vec![0.0; h], vec![0.0; h]);
            for step in 0..t {
                let xt = &x[(step * b + s) * i..][..i];
                assert_eq!(m.step(&st, xt, &mut y), S::Ok);
                rust.step(&mut rst, xt, &mut yr).unwrap();
                assert_eq!(bits(&y), bits(&yr), "{name}");
                let d = max_abs_diff(&y, &want[(step * b + s) * h..][..h]);
                assert!(d <= 1e-5, "{name}: stream {s} step {step}: {d:e}");
            }
        }
    }
    // Mixed namings: RNNCELL_STATUS_FORMAT naming a tensor of each.
    let (_, bytes) = safetensors_case("torch_lstmcell");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let mixed = header.replacen("\"weight_hh\"", "\"weight_hh_l0\"", 1);
    assert_ne!(mixed, header);
    let mut file = (mixed.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(mixed.as_bytes());
    file.extend_from_slice(&bytes[8 + n..]);
    let (st, msg) = load_bytes(&file, RnncellCell::Lstm, 0).err().unwrap();
    assert_eq!(st, S::Format, "{msg}");
    assert!(
        msg.contains("weight_hh_l0") && msg.contains("bias_hh") && msg.contains("mix"),
        "{msg}"
    );
}

// ------------------------------------------- framework defaults (issue 13, item 4)

type SpecInit = unsafe extern "C" fn(*mut RnncellSpec, usize, u32, usize, usize) -> RnncellStatus;

fn spec_init_with(init: SpecInit, cell: RnncellCell, i: usize, h: usize) -> RnncellSpec {
    let mut s = RnncellSpec::default();
    assert_eq!(
        // SAFETY: `s` is writable.
        unsafe { init(&mut s, size_of::<RnncellSpec>(), cell as u32, i, h) },
        S::Ok
    );
    s
}

#[test]
fn each_framework_init_writes_its_defaults() {
    let inits: [(&str, SpecInit, Option<u32>); 4] = [
        ("plain", rnncell_spec_init, None),
        ("pytorch", rnncell_spec_init_pytorch, Some(1)),
        ("onnx", rnncell_spec_init_onnx, Some(0)),
        ("keras", rnncell_spec_init_keras, Some(1)),
    ];
    for (name, init, gru_lbr) in inits {
        for cell in [RnncellCell::Lstm, RnncellCell::Gru, RnncellCell::Rnn] {
            let s = spec_init_with(init, cell, 3, 4);
            let plain = spec_init(cell, 3, 4);
            // Only the GRU form differs, and only for a GRU.
            let want = match (cell, gru_lbr) {
                (RnncellCell::Gru, Some(v)) => v,
                _ => RNNCELL_FRAMEWORK_DEFAULT,
            };
            assert_eq!(s.gru_linear_before_reset, want, "{name} {cell:?}");
            assert_eq!(
                RnncellSpec {
                    gru_linear_before_reset: plain.gru_linear_before_reset,
                    ..s
                },
                plain,
                "{name} {cell:?}"
            );
            // Every init's spec builds (the misplaced-option guard accepts
            // it).
            let lw = LayerWeights::zeros(
                match cell {
                    RnncellCell::Lstm => 4,
                    RnncellCell::Gru => 3,
                    RnncellCell::Rnn => 1,
                },
                4,
                3,
                4,
            );
            let w = Weights { lw: vec![lw] };
            let (st, _, msg) = new_pytorch(&s, &w.layers(), 0);
            assert_eq!(st, S::Ok, "{name} {cell:?}: {msg}");
        }
        // NULL and bad cells, as rnncell_spec_init.
        assert_eq!(
            // SAFETY: null is reported.
            unsafe { init(null_mut(), size_of::<RnncellSpec>(), 2, 3, 4) },
            S::NullPointer
        );
        let mut s = RnncellSpec::default();
        assert_eq!(
            // SAFETY: `s` writable.
            unsafe { init(&mut s, size_of::<RnncellSpec>(), 9, 3, 4) },
            S::InvalidArgument
        );
    }
    // The sentinel on a GRU is read per builder; on another cell it is the
    // only accepted value (0 or 1 there is a misplaced GRU option).
    let mut b = spec_init_with(rnncell_spec_init_onnx, RnncellCell::Lstm, 3, 4);
    b.gru_linear_before_reset = 0;
    let w = Weights {
        lw: vec![LayerWeights::zeros(4, 4, 3, 4)],
    };
    let (st, _, msg) = new_pytorch(&b, &w.layers(), 0);
    assert_eq!(st, S::InvalidArgument, "{msg}");
    assert!(msg.contains("GRU options"), "{msg}");
    let mut b = spec_init(RnncellCell::Gru, 3, 4);
    b.gru_linear_before_reset = 2;
    let w = Weights {
        lw: vec![LayerWeights::zeros(3, 4, 3, 4)],
    };
    let (st, _, msg) = new_pytorch(&b, &w.layers(), 0);
    assert_eq!(st, S::InvalidArgument, "{msg}");
    assert!(msg.contains("RNNCELL_FRAMEWORK_DEFAULT"), "{msg}");
}

/// An ONNX Runtime vector of tests/vectors: the JSON and its named tensors.
fn onnx_vector(
    name: &str,
) -> (
    serde_json::Value,
    std::collections::HashMap<String, Vec<f32>>,
) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{name}.json"));
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let tensors = c["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json_floats(&v["data"])))
        .collect();
    (c, tensors)
}

/// Builds `spec` from the vector's W/R/B through rnncell_model_new_onnx, runs
/// its input and returns the largest difference from ONNX Runtime's Y and Y_h
/// (one forward direction: ONNX Y [T, 1, B, H] is our [T, B, H]).
fn onnx_gru_diff(spec: &RnncellSpec, name: &str) -> (f32, u32) {
    let (c, t) = onnx_vector(name);
    let node = RnncellOnnxLayer {
        w: self::t(&t["W"]),
        r: self::t(&t["R"]),
        b: self::t(&t["B"]),
        ..Default::default()
    };
    let mut m = null_mut();
    let mut msg = [0 as c_char; 256];
    // SAFETY: valid spec, one node of live tensors, `msg` holds 256 bytes.
    let st = unsafe { rnncell_model_new_onnx(spec, &node, 1, 0, &mut m, msg.as_mut_ptr(), 256) };
    assert_eq!(st, S::Ok, "{}", failed(S::Ok, null_mut(), &msg).1);
    let m = CModel(m);
    let mut back = RnncellSpec::default();
    // SAFETY: live model, writable out.
    assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
    let (steps, batch) = (
        c["steps"].as_u64().unwrap() as usize,
        c["batch"].as_u64().unwrap() as usize,
    );
    let x = json_floats(&c["input"]["data"]);
    let h0 = if c["h0"].is_null() {
        Vec::new()
    } else {
        json_floats(&c["h0"]["data"])
    };
    assert!(c["seq_lens"].is_null());
    let h = m.info().hidden_size;
    let mut y = vec![f32::NAN; steps * batch * h];
    let mut hn = vec![f32::NAN; batch * h];
    let seq = RnncellSequence {
        input: self::t(&x),
        steps,
        batch,
        h0: if h0.is_empty() {
            RnncellTensor::default()
        } else {
            self::t(&h0)
        },
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut y),
        h_n: tm(&mut hn),
        ..Default::default()
    };
    assert_eq!(m.run(&seq, &out), S::Ok);
    let d = max_abs_diff(&y, &json_floats(&c["output"]["data"]))
        .max(max_abs_diff(&hn, &json_floats(&c["h_n"]["data"])));
    (d, back.gru_linear_before_reset)
}

#[test]
fn plain_spec_init_with_new_onnx_is_an_onnx_gru() {
    // The trap of issue 13: rnncell_spec_init then rnncell_model_new_onnx
    // used to build PyTorch's GRU (0.12 off ONNX Runtime, status OK). Now
    // it is ONNX's default, reset-before, and matches ONNX Runtime.
    let (c, _) = onnx_vector("onnx_gru_lbr0");
    assert_eq!(c["linear_before_reset"].as_u64(), Some(0));
    let (i, h) = (5, 7);
    for init in [rnncell_spec_init as SpecInit, rnncell_spec_init_onnx] {
        let s = spec_init_with(init, RnncellCell::Gru, i, h);
        let (d, lbr) = onnx_gru_diff(&s, "onnx_gru_lbr0");
        assert!(d <= 1e-5, "max |diff| {d:e} from ONNX Runtime");
        assert_eq!(lbr, 0, "rnncell_model_spec reports the form built");
    }
    // linear_before_reset = 1 nodes: set it, and the other vector matches.
    let mut s = spec_init_with(rnncell_spec_init_onnx, RnncellCell::Gru, i, h);
    s.gru_linear_before_reset = 1;
    let (d, lbr) = onnx_gru_diff(&s, "onnx_gru_lbr1");
    assert!(d <= 1e-5, "lbr1: max |diff| {d:e}");
    assert_eq!(lbr, 1);
    // A PyTorch spec given to the ONNX builder is PyTorch's form, as asked:
    // the lbr0 vector then differs (this is what the trap computed).
    let s = spec_init_with(rnncell_spec_init_pytorch, RnncellCell::Gru, i, h);
    let (d, _) = onnx_gru_diff(&s, "onnx_gru_lbr0");
    assert!(d > 1e-2, "the two forms should differ: {d:e}");
}

#[test]
fn plain_spec_init_is_each_builders_framework() {
    // The same sentinel spec through the PyTorch and Keras builders is
    // linear-before-reset (their frameworks' default), bit for bit the Rust
    // CellKind::gru(); through the ONNX builder, CellKind::gru_for(Onnx).
    let (i, h) = (3, 5);
    let cs = spec_init(RnncellCell::Gru, i, h);
    let mut rng = Rng(0xfd);
    let x: Vec<f32> = rng.vec(i * 4);
    let run_rust = |cell: CellKind, lw: &[LayerWeights]| {
        let m = Model::new(ModelSpec::new(cell, i, h), lw).unwrap();
        let mut st = m.new_state();
        let mut y = vec![0.0; 4 * h];
        for (k, xt) in x.chunks(i).enumerate() {
            m.step(&mut st, xt, &mut y[k * h..][..h]).unwrap();
        }
        y
    };
    let run_c = |m: &CModel| {
        let st = m.state();
        let mut y = vec![0.0; 4 * h];
        for (k, xt) in x.chunks(i).enumerate() {
            assert_eq!(m.step(&st, xt, &mut y[k * h..][..h]), S::Ok);
        }
        y
    };
    let w = Weights::random(&ModelSpec::new(CellKind::gru(), i, h), &mut rng);
    let (st, m, msg) = new_pytorch(&cs, &w.layers(), 0);
    assert_eq!(st, S::Ok, "{msg}");
    let lbr = run_rust(CellKind::gru(), &w.lw);
    assert_eq!(bits(&run_c(&m.unwrap())), bits(&lbr));
    // Keras: the same weights in Keras' layout (z, r, h; transposed).
    let gh = 3 * h;
    let lw = &w.lw[0];
    let to_keras = |m: &[f32], cols: usize| {
        let perm = [1, 0, 2]; // keras gate k is canonical gate perm[k]
        let mut out = vec![0.0; m.len()];
        for (kg, &cg) in perm.iter().enumerate() {
            for u in 0..h {
                for k in 0..cols {
                    out[k * gh + kg * h + u] = m[(cg * h + u) * cols + k];
                }
            }
        }
        out
    };
    let vperm = |v: &[f32]| -> Vec<f32> {
        [1, 0, 2]
            .iter()
            .flat_map(|&cg| v[cg * h..(cg + 1) * h].to_vec())
            .collect()
    };
    let (k, rk) = (to_keras(&lw.w, i), to_keras(&lw.r, h));
    let bias: Vec<f32> = vperm(&lw.b_w).into_iter().chain(vperm(&lw.b_r)).collect();
    let layer = RnncellKerasLayer {
        kernel: t(&k),
        recurrent_kernel: t(&rk),
        bias: t(&bias),
    };
    let mut m = null_mut();
    // SAFETY: valid spec and one layer of live tensors.
    let st = unsafe { rnncell_model_new_keras(&cs, &layer, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::Ok);
    assert_eq!(bits(&run_c(&CModel(m))), bits(&lbr));
    // A Keras GRU without bias: nothing in the tensors says the form, so the
    // sentinel is Keras' reset_after=True.
    let layer = RnncellKerasLayer {
        bias: RnncellTensor::default(),
        ..layer
    };
    let mut m = null_mut();
    // SAFETY: as above.
    let st = unsafe { rnncell_model_new_keras(&cs, &layer, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::Ok);
    let m = CModel(m);
    let mut back = RnncellSpec::default();
    // SAFETY: live model, writable out.
    assert_eq!(unsafe { rnncell_model_spec(m.0, &mut back) }, S::Ok);
    assert_eq!(back.gru_linear_before_reset, 1);
    // Rust: CellKind::gru_for names the same defaults.
    assert_eq!(
        CellKind::gru_for(rnncell::Framework::Onnx),
        CellKind::Gru(GruOptions {
            linear_before_reset: false,
            clip: None
        })
    );
    for f in rnncell::Framework::ALL {
        let s = spec_init_with(
            match f {
                rnncell::Framework::PyTorch => rnncell_spec_init_pytorch,
                rnncell::Framework::Onnx => rnncell_spec_init_onnx,
                _ => rnncell_spec_init_keras,
            },
            RnncellCell::Gru,
            i,
            h,
        );
        assert_eq!(
            s.gru_linear_before_reset,
            u32::from(f.gru_linear_before_reset()),
            "{}",
            f.name()
        );
    }
}

/// This thread's `rnncell_last_error` text.
fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, owned by this thread.
    unsafe { CStr::from_ptr(rnncell_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_failing_call_says_what_is_wrong() {
    let mut rng = Rng(77);
    // A 2-layer LSTM with a projection: I = 5, H = 4, Hr = 3.
    let rs = ModelSpec::new(
        CellKind::Lstm(LstmOptions {
            proj_size: 3,
            ..LstmOptions::default()
        }),
        5,
        4,
    )
    .layers(2);
    let w = Weights::random(&rs, &mut rng);
    let mut cs = spec_init(RnncellCell::Lstm, 5, 4);
    cs.num_layers = 2;
    cs.lstm_proj_size = 3;
    let (st, m, _) = new_pytorch(&cs, &w.layers(), 0);
    assert_eq!(st, S::Ok);
    let m = m.unwrap();
    let state = m.state();
    let x = [0.5f32; 6];
    let mut y = [0.0f32; 4];

    // Step: each buffer by name, the count given, the count wanted and why.
    assert_eq!(m.step(&state, &x[..4], &mut y[..3]), S::SizeMismatch);
    assert_eq!(
        last_error(),
        "rnncell_model_step: x_len is 4, the model needs 5 (input_size (I))"
    );
    assert_eq!(m.step(&state, &x[..5], &mut y[..4]), S::SizeMismatch);
    assert_eq!(
        last_error(),
        "rnncell_model_step: y_len is 4, the model needs 3 (the state size Hr = lstm_proj_size)"
    );
    // A successful call leaves the detail alone; the next failure replaces it.
    assert_eq!(m.step(&state, &x[..5], &mut y[..3]), S::Ok);
    assert!(last_error().starts_with("rnncell_model_step: y_len is 4"));
    // SAFETY: null handles are checked.
    let st = unsafe { rnncell_model_step(null(), state.0, x.as_ptr(), 5, y.as_mut_ptr(), 3) };
    assert_eq!(st, S::NullPointer);
    assert_eq!(last_error(), "rnncell_model_step: model is NULL");
    // SAFETY: as above; `y` is NULL.
    let st = unsafe { rnncell_model_step(m.0, state.0, x.as_ptr(), 5, null_mut(), 3) };
    assert_eq!(st, S::NullPointer);
    assert_eq!(last_error(), "rnncell_model_step: y is NULL");
    // A handle of the wrong kind is not a live handle.
    // SAFETY: a model pointer where a state is expected: only its magic
    // word is read, which does not match.
    let st = unsafe { rnncell_model_step(m.0, m.0.cast(), x.as_ptr(), 5, y.as_mut_ptr(), 3) };
    assert_eq!(st, S::InvalidArgument);
    assert!(last_error().starts_with("rnncell_model_step: state is not a live handle"));

    // A state of another model.
    let (_, other, _) = new_pytorch(&cs, &w.layers(), 0);
    let other = other.unwrap();
    assert_eq!(other.step(&state, &x[..5], &mut y[..3]), S::StateMismatch);
    assert!(last_error().contains("state was made by rnncell_state_new for a different model"));

    // State access: the layer, and the size of its h and c.
    let mut h = [0.0f32; 4];
    // SAFETY: `h` holds 4 floats.
    let st = unsafe { rnncell_state_get_h(state.0, 2, h.as_mut_ptr(), 3) };
    assert_eq!(st, S::InvalidArgument);
    assert_eq!(
        last_error(),
        "rnncell_state_get_h: layer is 2, the state has 2 (layers x directions, 0 to 1)"
    );
    // SAFETY: as above.
    let st = unsafe { rnncell_state_set_c(state.0, 1, h.as_ptr(), 3) };
    assert_eq!(st, S::SizeMismatch);
    assert_eq!(
        last_error(),
        "rnncell_state_set_c: c_len is 3, the layer's c has 4 floats"
    );

    // Run: the buffer, its shape and where each dimension comes from.
    let input = vec![0.1f32; 2 * 3 * 5];
    let h0 = vec![0.0f32; 2 * 3 * 3];
    let mut out = vec![0.0f32; 2 * 3 * 3];
    let seq = RnncellSequence {
        input: t(&input),
        steps: 2,
        batch: 3,
        h0: t(&h0[..17]),
        ..RnncellSequence::default()
    };
    let so = RnncellSequenceOutput {
        output: tm(&mut out),
        ..RnncellSequenceOutput::default()
    };
    assert_eq!(m.run(&seq, &so), S::SizeMismatch);
    assert_eq!(
        last_error(),
        "rnncell_model_run: seq.h0.len is 17, the model needs 18 ([L*D=2, B=3, Hr=3]: \
         L*D = num_layers x directions, the state size Hr = lstm_proj_size)"
    );
    let seq = RnncellSequence {
        h0: t(&h0),
        steps: 0,
        ..seq
    };
    assert_eq!(m.run(&seq, &so), S::InvalidArgument);
    assert!(last_error().starts_with("rnncell_model_run: seq.steps is 0"));
    let seq = RnncellSequence { steps: 2, ..seq };
    let so2 = RnncellSequenceOutput {
        output: tm(&mut out[..17]),
        ..so
    };
    assert_eq!(m.run(&seq, &so2), S::SizeMismatch);
    assert!(
        last_error().starts_with("rnncell_model_run: out.output.len is 17, the model needs 18"),
        "{}",
        last_error()
    );

    // step_many: which entry of states, and the row counts.
    let s2 = m.state();
    let ptrs = [state.0, s2.0, state.0];
    let xs = [0.0f32; 3 * 5];
    let mut ys = vec![0.0f32; 3 * 3];
    // SAFETY: every pointer is valid for its count.
    let st = unsafe {
        rnncell_model_step_many(m.0, ptrs.as_ptr(), 3, xs.as_ptr(), 15, ys.as_mut_ptr(), 9)
    };
    assert_eq!(st, S::InvalidArgument);
    assert_eq!(
        last_error(),
        "rnncell_model_step_many: states[2] appears earlier in states too (each stream once)"
    );
    // SAFETY: as above.
    let st = unsafe {
        rnncell_model_step_many(m.0, ptrs.as_ptr(), 3, xs.as_ptr(), 15, ys.as_mut_ptr(), 8)
    };
    assert_eq!(st, S::SizeMismatch);
    assert_eq!(
        last_error(),
        "rnncell_model_step_many: ys_len is 8, the model needs 9 ([N=3, Hr=3] = n_states x \
         the state size Hr = lstm_proj_size)"
    );
    let foreign = other.state();
    let ptrs = [state.0, foreign.0];
    // SAFETY: as above.
    let st = unsafe {
        rnncell_model_step_many(m.0, ptrs.as_ptr(), 2, xs.as_ptr(), 10, ys.as_mut_ptr(), 6)
    };
    assert_eq!(st, S::StateMismatch);
    assert!(last_error().starts_with("rnncell_model_step_many: states[1] was made"));

    // step_chunk: the multiple of I, then the output rows.
    // SAFETY: as above.
    let st = unsafe { rnncell_model_step_chunk(m.0, state.0, xs.as_ptr(), 7, ys.as_mut_ptr(), 3) };
    assert_eq!(st, S::InvalidArgument);
    assert!(last_error().contains("xs_len is 7: it must be a positive multiple of input_size 5"));
    // SAFETY: as above.
    let st = unsafe { rnncell_model_step_chunk(m.0, state.0, xs.as_ptr(), 15, ys.as_mut_ptr(), 6) };
    assert_eq!(st, S::SizeMismatch);
    assert!(last_error().starts_with("rnncell_model_step_chunk: ys_len is 6, the model needs 9"));

    // A bidirectional model does not stream.
    let mut bi = cs;
    bi.direction = RnncellDirection::Bidirectional as u32;
    let wb = Weights::random(&rs.direction(Direction::Bidirectional), &mut rng);
    let (_, mb, _) = new_pytorch(&bi, &wb.layers(), 0);
    let mb = mb.unwrap();
    let sb = mb.state();
    assert_eq!(mb.step(&sb, &x[..5], &mut y[..3]), S::Unsupported);
    assert!(last_error().contains("only forward models stream one step at a time"));

    // The builders leave their message (also written to err_msg) too.
    let mut bad = cs;
    bad.lstm_proj_size = 0;
    let (st, _, msg) = new_pytorch(&bad, &w.layers(), 0);
    assert_ne!(st, S::Ok);
    assert_eq!(last_error(), format!("rnncell_model_new_pytorch: {msg}"));
    // Failures without a more precise message describe the status.
    let mut spec = RnncellSpec::default();
    // SAFETY: `spec` is writable.
    let st = unsafe { rnncell_spec_init(&mut spec, size_of::<RnncellSpec>(), 9, 1, 1) };
    assert_eq!(st, S::InvalidArgument);
    assert_eq!(
        last_error(),
        "rnncell_spec_init: cell: 9 is not an RnncellCell (1 LSTM, 2 GRU, 3 RNN)"
    );
    // SAFETY: null is checked.
    assert_eq!(unsafe { rnncell_state_reset(null_mut()) }, S::NullPointer);
    assert_eq!(last_error(), "rnncell_state_reset: state is NULL");
    // The detail is per thread.
    let other_thread = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other_thread, "");
}
