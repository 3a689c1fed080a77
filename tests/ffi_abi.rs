//! The growable C ABI of 0.5: the `struct_size` rule of every versioned
//! struct (too small, exact, larger with a zero or non-zero tail), the init
//! functions, per-direction activations in `RnncellSpec` (bit for bit
//! against the Rust model of the same `ModelSpec`, and back through
//! `rnncell_model_spec`), ONNX sequence layouts and int32/int64 lengths in
//! `RnncellSequence` (bit for bit against `Model::run`), and
//! `RnncellModelInfo.int_dot`.

mod common;

use std::ffi::{CStr, c_char};

use common::bits;
use common::c_abi::{last_error, t, tm};
use std::mem::size_of;
use std::ptr::{null, null_mut};

use rnncell::ffi::*;
use rnncell::{
    Activation, Activations, CellKind, Direction, Isa, LayerWeights, Model, ModelSpec, SeqLens,
    Sequence, SequenceLayout, SequenceOutput, WeightPrecision,
};

type S = RnncellStatus;

/// Owns a model handle.
struct M(*mut RnncellModel);
impl Drop for M {
    fn drop(&mut self) {
        // SAFETY: a live handle, freed once.
        unsafe { rnncell_model_free(self.0) }
    }
}

/// The C structs pointing at `lw` (PyTorch layout).
fn layers(lw: &[LayerWeights]) -> Vec<RnncellPytorchLayer> {
    let opt = |v: &Vec<f32>| {
        if v.is_empty() {
            RnncellTensor::default()
        } else {
            t(v)
        }
    };
    lw.iter()
        .map(|w| RnncellPytorchLayer {
            weight_ih: t(&w.w),
            weight_hh: t(&w.r),
            bias_ih: t(&w.b_w),
            bias_hh: t(&w.b_r),
            weight_hr: opt(&w.proj),
            peephole: opt(&w.peephole),
            proj_bias: opt(&w.proj_bias),
        })
        .collect()
}

/// Builds from a spec pointer (any struct that starts with an
/// `RnncellSpec`), returning the status, the model and the message.
fn build_raw(spec: *const RnncellSpec, lw: &[LayerWeights]) -> (S, Option<M>, String) {
    let l = layers(lw);
    let mut m = null_mut();
    let mut msg = [0 as c_char; 512];
    // SAFETY: `spec` is valid for its struct_size (callers), `l` for its
    // length, `msg` for 512 bytes.
    let st = unsafe {
        rnncell_model_new_pytorch(
            spec,
            l.as_ptr(),
            l.len(),
            RnncellIsa::Auto as u32,
            &mut m,
            msg.as_mut_ptr(),
            msg.len(),
        )
    };
    // SAFETY: always NUL-terminated.
    let text = unsafe { CStr::from_ptr(msg.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    (st, (!m.is_null()).then_some(M(m)), text)
}

fn build(spec: &RnncellSpec, lw: &[LayerWeights]) -> M {
    let (st, m, msg) = build_raw(spec, lw);
    assert_eq!(st, S::Ok, "{msg}");
    m.unwrap()
}

fn spec_init(cell: RnncellCell, i: usize, h: usize) -> RnncellSpec {
    let mut s = RnncellSpec::default();
    // SAFETY: `s` is writable for its size.
    let st = unsafe { rnncell_spec_init(&mut s, size_of::<RnncellSpec>(), cell as u32, i, h) };
    assert_eq!(st, S::Ok);
    s
}

/// A struct of a newer header: `T` and 16 more bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct Newer<T: Copy> {
    known: T,
    tail: [u8; 16],
}

fn newer<T: Copy>(known: T) -> Newer<T> {
    Newer {
        known,
        tail: [0; 16],
    }
}

#[test]
fn spec_struct_size_too_small_exact_and_larger() {
    let rs = ModelSpec::new(CellKind::gru(), 3, 4);
    let lw = common::random_weights(&rs, 1);
    let good = spec_init(RnncellCell::Gru, 3, 4);
    assert_eq!(good.struct_size, size_of::<RnncellSpec>());
    for bad in [0, 8, size_of::<RnncellSpec>() - 1, 1 << 20] {
        let s = RnncellSpec {
            struct_size: bad,
            ..good
        };
        let (st, m, msg) = build_raw(&s, &lw);
        assert_eq!(st, S::InvalidArgument, "{bad}");
        assert!(m.is_none());
        assert!(
            msg.contains(&format!("spec.struct_size is {bad}")),
            "{bad}: {msg}"
        );
        assert!(last_error().starts_with("rnncell_model_new_pytorch: spec.struct_size"));
    }
    let (st, _, msg) = build_raw(&good, &lw);
    assert_eq!(st, S::Ok, "{msg}");
    let msg0 = {
        let s = RnncellSpec {
            struct_size: 0,
            ..good
        };
        build_raw(&s, &lw).2
    };
    assert_eq!(
        msg0,
        format!(
            "spec.struct_size is 0, expected {} (sizeof(RnncellSpec); call rnncell_spec_init \
             (or _pytorch, _onnx, _keras) first, or set it)",
            size_of::<RnncellSpec>()
        )
    );
    // A newer header's struct with its new fields at 0: accepted.
    let mut n = newer(good);
    n.known.struct_size = size_of::<Newer<RnncellSpec>>();
    let (st, _, msg) = build_raw(&n.known, &lw);
    assert_eq!(st, S::Ok, "{msg}");
    // A new field set: refused, naming struct_size and the version.
    n.tail[5] = 1;
    let (st, m, msg) = build_raw(&n.known, &lw);
    assert_eq!(st, S::InvalidArgument);
    assert!(m.is_none());
    let want = format!(
        "spec.struct_size is {}, but this library (rnncell {}) knows {} bytes of RnncellSpec \
         and byte {} is not zero",
        size_of::<Newer<RnncellSpec>>(),
        env!("CARGO_PKG_VERSION"),
        size_of::<RnncellSpec>(),
        size_of::<RnncellSpec>() + 5
    );
    assert!(msg.starts_with(&want), "{msg}");
    assert!(last_error().contains(&want), "{}", last_error());
}

#[test]
fn init_functions_write_the_callers_size_and_zero_a_newer_tail() {
    // A newer struct: the known fields, zeros past them, struct_size kept.
    let mut n = Newer {
        known: RnncellSequence {
            steps: 77,
            ..Default::default()
        },
        tail: [0xAB; 16],
    };
    let sz = size_of::<Newer<RnncellSequence>>();
    // SAFETY: `n` is writable for sz bytes.
    assert_eq!(unsafe { rnncell_sequence_init(&mut n.known, sz) }, S::Ok);
    assert_eq!(n.known.struct_size, sz);
    assert_eq!(n.known.steps, 0);
    assert_eq!(n.tail, [0; 16]);
    // Too small: nothing written, the error names the size.
    let mut s = RnncellSequence {
        steps: 5,
        ..Default::default()
    };
    assert_eq!(
        // SAFETY: `s` is writable for its size (more than asked).
        unsafe { rnncell_sequence_init(&mut s, 16) },
        S::InvalidArgument
    );
    assert_eq!(s.steps, 5);
    assert!(
        last_error().contains("struct_size is 16"),
        "{}",
        last_error()
    );
    assert_eq!(
        // SAFETY: NULL is reported.
        unsafe { rnncell_sequence_init(null_mut(), size_of::<RnncellSequence>()) },
        S::NullPointer
    );
    // Every init writes what Default gives.
    let mut o = RnncellOnnxOptions {
        nodes_len: 3,
        ..Default::default()
    };
    // SAFETY: writable for its size.
    let st = unsafe { rnncell_onnx_options_init(&mut o, size_of::<RnncellOnnxOptions>()) };
    assert_eq!((st, o), (S::Ok, RnncellOnnxOptions::default()));
    let mut o = RnncellSafetensorsOptions {
        format: 1,
        ..Default::default()
    };
    // SAFETY: writable for its size.
    let st =
        unsafe { rnncell_safetensors_options_init(&mut o, size_of::<RnncellSafetensorsOptions>()) };
    assert_eq!((st, o), (S::Ok, RnncellSafetensorsOptions::default()));
    let mut i = RnncellModelInfo {
        hidden_size: 9,
        ..Default::default()
    };
    // SAFETY: writable for its size.
    let st = unsafe { rnncell_model_info_init(&mut i, size_of::<RnncellModelInfo>()) };
    assert_eq!((st, i), (S::Ok, RnncellModelInfo::default()));
    let mut i = RnncellOnnxNodeInfo {
        hidden_size: 9,
        ..Default::default()
    };
    // SAFETY: writable for its size.
    let st = unsafe { rnncell_onnx_node_info_init(&mut i, size_of::<RnncellOnnxNodeInfo>()) };
    assert_eq!((st, i), (S::Ok, RnncellOnnxNodeInfo::default()));
    // The spec inits, into a newer struct.
    let mut n = newer(RnncellSpec::default());
    n.tail = [1; 16];
    let sz = size_of::<Newer<RnncellSpec>>();
    // SAFETY: writable for sz bytes.
    let st = unsafe { rnncell_spec_init_onnx(&mut n.known, sz, RnncellCell::Lstm as u32, 3, 4) };
    assert_eq!(st, S::Ok);
    assert_eq!((n.known.struct_size, n.tail), (sz, [0; 16]));
    assert_eq!(
        RnncellSpec {
            struct_size: size_of::<RnncellSpec>(),
            ..n.known
        },
        spec_init(RnncellCell::Lstm, 3, 4)
    );
}

#[test]
fn output_structs_write_at_most_struct_size() {
    let rs = ModelSpec::new(CellKind::lstm(), 3, 4);
    let m = build(
        &spec_init(RnncellCell::Lstm, 3, 4),
        &common::random_weights(&rs, 2),
    );
    // Exact.
    let mut info = RnncellModelInfo::default();
    // SAFETY: live model, writable struct.
    assert_eq!(unsafe { rnncell_model_info(m.0, &mut info) }, S::Ok);
    assert_eq!((info.input_size, info.hidden_size), (3, 4));
    assert_eq!(info.struct_size, size_of::<RnncellModelInfo>());
    // Newer: the tail is the caller's, untouched; struct_size kept.
    let mut n = newer(RnncellModelInfo::default());
    n.tail = [0x5A; 16];
    n.known.struct_size = size_of::<Newer<RnncellModelInfo>>();
    // SAFETY: as above, for the larger size.
    assert_eq!(unsafe { rnncell_model_info(m.0, &mut n.known) }, S::Ok);
    assert_eq!(n.tail, [0x5A; 16]);
    assert_eq!(n.known.struct_size, size_of::<Newer<RnncellModelInfo>>());
    assert_eq!(n.known.hidden_size, 4);
    // Too small (0, a forgotten struct_size): nothing written.
    let mut z = RnncellModelInfo {
        struct_size: 0,
        hidden_size: 99,
        ..Default::default()
    };
    assert_eq!(
        // SAFETY: as above.
        unsafe { rnncell_model_info(m.0, &mut z) },
        S::InvalidArgument
    );
    assert_eq!(z.hidden_size, 99);
    assert!(
        last_error().starts_with("rnncell_model_info: out.struct_size is 0, expected"),
        "{}",
        last_error()
    );
    // rnncell_model_spec keeps the caller's struct_size too.
    let mut s = newer(RnncellSpec::default());
    s.known.struct_size = size_of::<Newer<RnncellSpec>>();
    s.tail = [7; 16];
    // SAFETY: as above.
    assert_eq!(unsafe { rnncell_model_spec(m.0, &mut s.known) }, S::Ok);
    assert_eq!(
        (s.known.struct_size, s.tail),
        (size_of::<Newer<RnncellSpec>>(), [7; 16])
    );
    assert_eq!(s.known.hidden_size, 4);
}

#[test]
fn sequence_struct_size_is_checked_before_anything_is_read() {
    let rs = ModelSpec::new(CellKind::gru(), 2, 3);
    let m = build(
        &spec_init(RnncellCell::Gru, 2, 3),
        &common::random_weights(&rs, 3),
    );
    let x = [0.25f32; 2 * 2];
    let mut y = [9.0f32; 2 * 3];
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
    // SAFETY: live model, valid structs (for every call below).
    assert_eq!(unsafe { rnncell_model_run(m.0, &seq, &out) }, S::Ok);
    let bad = RnncellSequence {
        struct_size: 0,
        ..seq
    };
    let mut y2 = [9.0f32; 2 * 3];
    let out2 = RnncellSequenceOutput {
        output: tm(&mut y2),
        ..Default::default()
    };
    assert_eq!(
        // SAFETY: as above.
        unsafe { rnncell_model_run(m.0, &bad, &out2) },
        S::InvalidArgument
    );
    assert_eq!(y2, [9.0; 6]);
    assert!(
        last_error().starts_with("rnncell_model_run: seq.struct_size is 0, expected"),
        "{}",
        last_error()
    );
    let mut n = newer(seq);
    n.known.struct_size = size_of::<Newer<RnncellSequence>>();
    // SAFETY: as above.
    assert_eq!(unsafe { rnncell_model_run(m.0, &n.known, &out2) }, S::Ok);
    assert_eq!(bits(&y2), bits(&y));
    n.tail[15] = 0x80;
    assert_eq!(
        // SAFETY: as above.
        unsafe { rnncell_model_run(m.0, &n.known, &out2) },
        S::InvalidArgument
    );
    assert!(
        last_error().contains("seq.struct_size is"),
        "{}",
        last_error()
    );
}

#[test]
fn loader_options_are_versioned() {
    let b = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/onnx/torch/lstm_1l/model.onnx"),
    )
    .unwrap();
    let load = |o: *const RnncellOnnxOptions| {
        let mut m = null_mut();
        // SAFETY: valid bytes, options valid for their struct_size.
        let st = unsafe {
            rnncell_model_load_onnx_bytes(
                b.as_ptr(),
                b.len(),
                o,
                RnncellIsa::Auto as u32,
                &mut m,
                null_mut(),
                0,
            )
        };
        let _owned = (!m.is_null()).then_some(M(m));
        st
    };
    assert_eq!(load(&RnncellOnnxOptions::default()), S::Ok);
    let zero = RnncellOnnxOptions {
        struct_size: 0,
        ..Default::default()
    };
    assert_eq!(load(&zero), S::InvalidArgument);
    assert!(
        last_error().contains("options.struct_size is 0"),
        "{}",
        last_error()
    );
    let mut n = newer(RnncellOnnxOptions::default());
    n.known.struct_size = size_of::<Newer<RnncellOnnxOptions>>();
    assert_eq!(load(&n.known), S::Ok);
    n.tail[0] = 1;
    assert_eq!(load(&n.known), S::InvalidArgument);
    // Node info: an output.
    let mut info = RnncellOnnxNodeInfo {
        struct_size: 3,
        ..Default::default()
    };
    // SAFETY: valid bytes and struct.
    let st = unsafe {
        rnncell_onnx_node_info(
            b.as_ptr(),
            b.len(),
            0,
            &mut info,
            null_mut(),
            0,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::InvalidArgument);
    assert!(
        last_error().contains("out_info.struct_size is 3"),
        "{}",
        last_error()
    );
    info.struct_size = size_of::<RnncellOnnxNodeInfo>();
    // SAFETY: as above.
    let st = unsafe {
        rnncell_onnx_node_info(
            b.as_ptr(),
            b.len(),
            0,
            &mut info,
            null_mut(),
            0,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::Ok);
    assert_eq!(info.cell, RnncellCell::Lstm as u32);
}

fn act(kind: RnncellActivationKind, alpha: f32, beta: f32) -> RnncellActivationSpec {
    RnncellActivationSpec {
        kind: kind as u32,
        alpha,
        beta,
    }
}

/// Runs `seq_x` ([T, B, I] native) through the C model and the Rust
/// model; outputs and final states must have the same bits.
fn same_run(c: &M, r: &Model, steps: usize, batch: usize) {
    let s = r.spec();
    let ld = s.num_layers * s.directions();
    let mut rng = common::DataRng::new(11);
    let x = rng.vec(steps * batch * s.input_size, 1.5);
    let mut yr = vec![0.0; steps * batch * s.output_size()];
    let mut hr = vec![0.0; ld * batch * s.state_size()];
    r.run(
        &Sequence::new(&x, steps, batch),
        &mut SequenceOutput {
            output: &mut yr,
            h_n: Some(&mut hr),
            c_n: None,
        },
    )
    .unwrap();
    let mut yc = vec![f32::NAN; yr.len()];
    let mut hc = vec![f32::NAN; hr.len()];
    let seq = RnncellSequence {
        input: t(&x),
        steps,
        batch,
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut yc),
        h_n: tm(&mut hc),
        ..Default::default()
    };
    // SAFETY: live model, valid structs.
    assert_eq!(unsafe { rnncell_model_run(c.0, &seq, &out) }, S::Ok);
    assert_eq!(bits(&yc), bits(&yr));
    assert_eq!(bits(&hc), bits(&hr));
}

fn model_spec_of(m: &M) -> RnncellSpec {
    let mut s = RnncellSpec::default();
    // SAFETY: live model, writable struct.
    assert_eq!(unsafe { rnncell_model_spec(m.0, &mut s) }, S::Ok);
    s
}

#[test]
fn per_direction_activations_match_the_rust_model() {
    use RnncellActivationKind as K;
    // LSTM, bidirectional, a different set per direction.
    let fwd = Activations {
        f: Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        g: Activation::Softsign,
        h: Activation::ScaledTanh {
            alpha: 1.5,
            beta: 0.75,
        },
    };
    let bwd = Activations {
        f: Activation::KerasHardSigmoid,
        g: Activation::Elu { alpha: 0.5 },
        h: Activation::Tanh,
    };
    let mut lstm = spec_init(RnncellCell::Lstm, 5, 6);
    lstm.direction = RnncellDirection::Bidirectional as u32;
    lstm.activations[0] = [
        act(K::HardSigmoid, 0.2, 0.5),
        act(K::Softsign, 0.0, 0.0),
        act(K::ScaledTanh, 1.5, 0.75),
    ];
    lstm.activations[1] = [
        act(K::KerasHardSigmoid, 0.0, 0.0),
        act(K::Elu, 0.5, 0.0),
        act(K::Default, 0.0, 0.0),
    ];
    let lstm_rs = ModelSpec::new(CellKind::lstm(), 5, 6)
        .direction(Direction::Bidirectional)
        .activations_per_direction(fwd, bwd);
    // GRU, bidirectional, backward as forward (direction 1 all 0).
    let gfwd = Activations {
        f: Activation::LeakyRelu { alpha: 0.1 },
        g: Activation::Affine {
            alpha: 0.5,
            beta: -0.25,
        },
        h: Activation::Tanh,
    };
    let mut gru = spec_init(RnncellCell::Gru, 4, 5);
    gru.direction = RnncellDirection::Bidirectional as u32;
    gru.activations[0][0] = act(K::LeakyRelu, 0.1, 0.0);
    gru.activations[0][1] = act(K::Affine, 0.5, -0.25);
    let gru_rs = ModelSpec::new(CellKind::gru(), 4, 5)
        .direction(Direction::Bidirectional)
        .activations(gfwd);
    // GRU bidirectional, different per direction (g only in direction 1).
    let mut gru2 = gru;
    gru2.activations[1][1] = act(K::Softplus, 0.0, 0.0);
    let gru2_rs = ModelSpec::new(CellKind::gru(), 4, 5)
        .direction(Direction::Bidirectional)
        .activations_per_direction(
            gfwd,
            Activations {
                f: Activation::Sigmoid,
                g: Activation::Softplus,
                h: Activation::Tanh,
            },
        );
    // RNN, forward, two layers.
    let mut rnn = spec_init(RnncellCell::Rnn, 3, 7);
    rnn.num_layers = 2;
    rnn.activations[0][0] = act(K::ThresholdedRelu, 0.125, 0.0);
    let rnn_rs = ModelSpec::new(CellKind::rnn_tanh(), 3, 7)
        .layers(2)
        .activations(Activations {
            f: Activation::ThresholdedRelu { alpha: 0.125 },
            ..Activations::STANDARD
        });
    for (name, c, rs) in [
        ("lstm", lstm, lstm_rs),
        ("gru", gru, gru_rs),
        ("gru per direction", gru2, gru2_rs),
        ("rnn", rnn, rnn_rs),
    ] {
        let lw = common::random_weights(&rs, 5);
        let cm = build(&c, &lw);
        let rm = Model::new(rs, &lw).unwrap();
        same_run(&cm, &rm, 6, 3);
        // The model's spec: explicit activations, equal to the Rust spec's,
        // and it builds the same model again.
        let back = model_spec_of(&cm);
        for d in 0..rs.directions() {
            let a = rs.activations_of(d);
            let slots = match rs.cell {
                CellKind::Lstm(_) => 3,
                CellKind::Gru(_) => 2,
                _ => 1,
            };
            for (s, f) in [a.f, a.g, a.h].into_iter().enumerate().take(slots) {
                assert_ne!(back.activations[d][s].kind, 0, "{name} [{d}][{s}]");
                assert_eq!(
                    back.activations[d][s].kind,
                    act_kind(f),
                    "{name} [{d}][{s}]"
                );
            }
        }
        let again = build(&back, &lw);
        same_run(&again, &rm, 4, 2);
        assert_eq!(model_spec_of(&again), back, "{name}");
    }
    // Default activations round-trip as all 0.
    let plain = spec_init(RnncellCell::Lstm, 2, 3);
    let rs = ModelSpec::new(CellKind::lstm(), 2, 3);
    let m = build(&plain, &common::random_weights(&rs, 1));
    assert_eq!(model_spec_of(&m).activations, plain.activations);
}

fn act_kind(f: Activation) -> u32 {
    let k = match f {
        Activation::Sigmoid => 1,
        Activation::Tanh => 2,
        Activation::Relu => 3,
        Activation::HardSigmoid { .. } => 4,
        Activation::LeakyRelu { .. } => 5,
        Activation::ThresholdedRelu { .. } => 6,
        Activation::ScaledTanh { .. } => 7,
        Activation::Affine { .. } => 8,
        Activation::Elu { .. } => 9,
        Activation::Softsign => 10,
        Activation::Softplus => 11,
        Activation::KerasHardSigmoid => 12,
        _ => unreachable!("a new activation needs a C kind"),
    };
    assert_eq!(RnncellActivationKind::KerasHardSigmoid as u32, 12);
    k
}

#[test]
fn invalid_activations_name_the_slot() {
    use RnncellActivationKind as K;
    let gru = ModelSpec::new(CellKind::gru(), 3, 4);
    let gw = common::random_weights(&gru, 1);
    let base = spec_init(RnncellCell::Gru, 3, 4);
    let mut cases: Vec<(RnncellSpec, &[LayerWeights], &str)> = Vec::new();
    let mut s = base;
    s.activations[0][2] = act(K::Sigmoid, 0.0, 0.0);
    cases.push((
        s,
        &gw,
        "spec.activations[0][2] (h): Sigmoid is set, but a GRU has no h",
    ));
    let mut s = base;
    s.activations[0][1] = act(K::Sigmoid, 0.0, 0.0);
    s.activations[1][0] = RnncellActivationSpec {
        kind: 13,
        alpha: 0.0,
        beta: 0.0,
    };
    cases.push((
        s,
        &gw,
        "spec.activations[1][0] (f): kind 13 is not an RnncellActivationKind",
    ));
    let mut s = base;
    s.activations[0][0] = act(K::Sigmoid, 0.5, 0.0);
    cases.push((
        s,
        &gw,
        "spec.activations[0][0] (f): alpha is 0.5, but Sigmoid takes no alpha",
    ));
    let mut s = base;
    s.activations[0][1] = act(K::LeakyRelu, 0.1, 2.0);
    cases.push((
        s,
        &gw,
        "spec.activations[0][1] (g): beta is 2, but LeakyRelu takes no beta",
    ));
    let mut s = base;
    s.activations[0][1] = act(K::Elu, f32::NAN, 0.0);
    cases.push((s, &gw, "spec.activations[0][1] (g): alpha must be finite"));
    let mut s = base;
    s.activations[1][1] = act(K::Relu, 0.0, 0.0);
    cases.push((
        s,
        &gw,
        "spec.activations[1][1] (g): set, but the model is not bidirectional",
    ));
    let rnn = ModelSpec::new(CellKind::rnn_relu(), 3, 4);
    let rw = common::random_weights(&rnn, 1);
    let mut s = spec_init(RnncellCell::Rnn, 3, 4);
    s.rnn_activation = RnncellActivation::Relu as u32;
    s.activations[0][0] = act(K::Sigmoid, 0.0, 0.0);
    cases.push((
        s,
        &rw,
        "spec.activations[0][0] (f): Sigmoid, but spec.rnn_activation is",
    ));
    let mut s = spec_init(RnncellCell::Rnn, 3, 4);
    s.activations[0][1] = act(K::Relu, 0.0, 0.0);
    cases.push((
        s,
        &rw,
        "spec.activations[0][1] (g): Relu is set, but an RNN has no g",
    ));
    let mut s = base;
    s.reserved = 1;
    cases.push((s, &gw, "spec.reserved: 1 is not 0"));
    for (s, lw, want) in cases {
        let (st, m, msg) = build_raw(&s, lw);
        assert_eq!(st, S::InvalidArgument, "{want}: {msg}");
        assert!(m.is_none());
        assert!(msg.contains(want), "{msg:?} should name {want:?}");
    }
    // A relu RNN whose f is relu, and a tanh in an unused slot, are fine.
    let mut s = spec_init(RnncellCell::Rnn, 3, 4);
    s.rnn_activation = RnncellActivation::Relu as u32;
    s.activations[0][0] = act(K::Relu, 0.0, 0.0);
    s.activations[0][2] = act(K::Tanh, 0.0, 0.0);
    let (st, _, msg) = build_raw(&s, &rw);
    assert_eq!(st, S::Ok, "{msg}");
}

/// A bidirectional LSTM (2 layers) run in `layout` with typed lengths,
/// through C and Rust.
fn onnx_layout_case(layout: SequenceLayout, lens64: bool) {
    let (i, h, steps, batch) = (3, 4, 5, 3);
    let rs = ModelSpec::new(CellKind::lstm(), i, h)
        .layers(2)
        .direction(Direction::Bidirectional);
    let lw = common::random_weights(&rs, 8);
    let mut c = spec_init(RnncellCell::Lstm, i, h);
    c.num_layers = 2;
    c.direction = RnncellDirection::Bidirectional as u32;
    let cm = build(&c, &lw);
    let rm = Model::new(rs, &lw).unwrap();
    let ld = 4;
    let mut rng = common::DataRng::new(4);
    let x = rng.vec(steps * batch * i, 1.0);
    let h0 = rng.vec(ld * batch * h, 0.5);
    let c0 = rng.vec(ld * batch * h, 0.5);
    let l32 = [5i32, 2, 0];
    let l64 = [5i64, 2, 0];
    let lengths = if lens64 {
        SeqLens::I64(&l64)
    } else {
        SeqLens::I32(&l32)
    };
    let n_y = steps * 2 * batch * h;
    let (mut yr, mut hr, mut cr) = (
        vec![0.0; n_y],
        vec![0.0; ld * batch * h],
        vec![0.0; ld * batch * h],
    );
    let seq = Sequence {
        layout,
        lengths: Some(lengths),
        h0: Some(&h0),
        c0: Some(&c0),
        ..Sequence::new(&x, steps, batch)
    };
    rm.run(
        &seq,
        &mut SequenceOutput {
            output: &mut yr,
            h_n: Some(&mut hr),
            c_n: Some(&mut cr),
        },
    )
    .unwrap();
    let (mut yc, mut hc, mut cc) = (
        vec![f32::NAN; n_y],
        vec![f32::NAN; hr.len()],
        vec![f32::NAN; cr.len()],
    );
    let cseq = RnncellSequence {
        input: t(&x),
        steps,
        batch,
        h0: t(&h0),
        c0: t(&c0),
        layout: match layout {
            SequenceLayout::Onnx0 => RnncellSequenceLayout::Onnx0,
            SequenceLayout::Onnx1 => RnncellSequenceLayout::Onnx1,
            _ => RnncellSequenceLayout::Native,
        } as u32,
        seq_lens_i32: if lens64 { null() } else { l32.as_ptr() },
        seq_lens_i64: if lens64 { l64.as_ptr() } else { null() },
        seq_lens_len: batch,
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut yc),
        h_n: tm(&mut hc),
        c_n: tm(&mut cc),
    };
    assert_eq!(
        // SAFETY: live model, valid structs.
        unsafe { rnncell_model_run(cm.0, &cseq, &out) },
        S::Ok,
        "{}",
        last_error()
    );
    assert_eq!(bits(&yc), bits(&yr), "{layout:?}");
    assert_eq!(bits(&hc), bits(&hr), "{layout:?}");
    assert_eq!(bits(&cc), bits(&cr), "{layout:?}");
    // The ONNX layout differs from the native one (same counts).
    let mut yn = vec![0.0; n_y];
    rm.run(
        &Sequence {
            lengths: Some(lengths),
            h0: Some(&h0),
            c0: Some(&c0),
            ..Sequence::new(&x, steps, batch)
        },
        &mut SequenceOutput {
            output: &mut yn,
            h_n: None,
            c_n: None,
        },
    )
    .unwrap();
    assert_ne!(bits(&yn), bits(&yr));
    // A wrong output size names the ONNX shape.
    let mut short = vec![0.0; n_y - 1];
    let out = RnncellSequenceOutput {
        output: tm(&mut short),
        ..Default::default()
    };
    assert_eq!(
        // SAFETY: as above.
        unsafe { rnncell_model_run(cm.0, &cseq, &out) },
        S::SizeMismatch
    );
    let want = match layout {
        SequenceLayout::Onnx0 => format!("Y [T={steps}, D=2, B={batch}, Hr={h}] (ONNX layout 0"),
        _ => format!("Y [B={batch}, T={steps}, D=2, Hr={h}] (ONNX layout 1"),
    };
    assert!(last_error().contains(&want), "{}", last_error());
    let mut short = vec![0.0; hr.len() + 1];
    let out = RnncellSequenceOutput {
        output: tm(&mut yc),
        h_n: tm(&mut short),
        ..Default::default()
    };
    assert_eq!(
        // SAFETY: as above.
        unsafe { rnncell_model_run(cm.0, &cseq, &out) },
        S::SizeMismatch
    );
    let want = match layout {
        SequenceLayout::Onnx0 => format!("[L*D=4, B={batch}, Hr={h}]"),
        _ => format!("[B={batch}, L*D=4, Hr={h}] (ONNX layout 1)"),
    };
    assert!(last_error().contains(&want), "{}", last_error());
}

#[test]
fn onnx_layouts_and_typed_lengths_match_model_run() {
    for layout in [SequenceLayout::Onnx0, SequenceLayout::Onnx1] {
        for lens64 in [false, true] {
            onnx_layout_case(layout, lens64);
        }
    }
}

#[test]
fn sequence_layout_and_lengths_errors() {
    let rs = ModelSpec::new(CellKind::gru(), 2, 3);
    let m = build(
        &spec_init(RnncellCell::Gru, 2, 3),
        &common::random_weights(&rs, 3),
    );
    let x = [0.5f32; 4 * 2 * 2];
    let mut y = [7.0f32; 4 * 2 * 3];
    let (lu, l32, l64) = ([4usize, 1], [4i32, -2], [4i64, 5]);
    let base = RnncellSequence {
        input: t(&x),
        steps: 4,
        batch: 2,
        seq_lens_len: 2,
        ..Default::default()
    };
    let out = RnncellSequenceOutput {
        output: tm(&mut y),
        ..Default::default()
    };
    let cases = [
        (
            RnncellSequence {
                seq_lens: lu.as_ptr(),
                seq_lens_i32: l32.as_ptr(),
                ..base
            },
            "seq.seq_lens (non-NULL), seq.seq_lens_i32 (non-NULL) and seq.seq_lens_i64 (NULL): 2 \
             are non-NULL; give the lengths once",
        ),
        (
            RnncellSequence {
                seq_lens_i32: l32.as_ptr(),
                ..base
            },
            "seq.seq_lens_i32[1] is -2: not in 0..=4 (seq.steps)",
        ),
        (
            RnncellSequence {
                seq_lens_i64: l64.as_ptr(),
                ..base
            },
            "seq.seq_lens_i64[1] is 5: not in 0..=4 (seq.steps)",
        ),
        (
            RnncellSequence {
                seq_lens_i64: l64.as_ptr(),
                seq_lens_len: 3,
                ..base
            },
            "seq.seq_lens_i64.len is 3, the model needs 2",
        ),
        (
            RnncellSequence { layout: 3, ..base },
            "seq.layout: 3 is not an RnncellSequenceLayout",
        ),
        (
            RnncellSequence {
                layout: RnncellSequenceLayout::Onnx1 as u32,
                batch_major: 1,
                seq_lens_len: 0,
                ..base
            },
            "seq.batch_major is 1 with seq.layout 2",
        ),
    ];
    for (s, want) in cases {
        // SAFETY: live model, valid structs and buffers.
        let st = unsafe { rnncell_model_run(m.0, &s, &out) };
        assert_ne!(st, S::Ok, "{want}");
        let e = last_error();
        assert!(
            e.starts_with(&format!("rnncell_model_run: {want}")),
            "{e:?} should name {want:?}"
        );
        assert_eq!(y, [7.0; 24], "nothing written: {want}");
    }
    // The three typed lengths give the same result.
    let mut ys = Vec::new();
    let (lu, l32, l64) = ([4usize, 1], [4i32, 1], [4i64, 1]);
    for s in [
        RnncellSequence {
            seq_lens: lu.as_ptr(),
            ..base
        },
        RnncellSequence {
            seq_lens_i32: l32.as_ptr(),
            ..base
        },
        RnncellSequence {
            seq_lens_i64: l64.as_ptr(),
            ..base
        },
    ] {
        let mut yv = vec![f32::NAN; 24];
        let o = RnncellSequenceOutput {
            output: tm(&mut yv),
            ..Default::default()
        };
        // SAFETY: as above.
        assert_eq!(unsafe { rnncell_model_run(m.0, &s, &o) }, S::Ok);
        ys.push(bits(&yv));
    }
    assert_eq!(ys[0], ys[1]);
    assert_eq!(ys[0], ys[2]);
}

#[test]
fn model_info_reports_the_int_dot_of_i8_models() {
    let rs = ModelSpec::new(CellKind::gru(), 3, 4);
    let lw = common::random_weights(&rs, 1);
    for (prec, c_prec) in [
        (WeightPrecision::F32, RnncellWeightPrecision::F32),
        (WeightPrecision::Int8, RnncellWeightPrecision::I8),
        (WeightPrecision::Int8Weights, RnncellWeightPrecision::I8w),
    ] {
        let mut c = spec_init(RnncellCell::Gru, 3, 4);
        c.weight_precision = c_prec as u32;
        for isa in common::isas() {
            let l = layers(&lw);
            let mut m = null_mut();
            // SAFETY: valid spec and layers, no message buffer.
            let st = unsafe {
                rnncell_model_new_pytorch(
                    &c,
                    l.as_ptr(),
                    l.len(),
                    c_isa(isa),
                    &mut m,
                    null_mut(),
                    0,
                )
            };
            assert_eq!(st, S::Ok);
            let m = M(m);
            let rm = Model::with_isa(rs.precision(prec), &lw, isa).unwrap();
            let mut info = RnncellModelInfo::default();
            // SAFETY: live model, writable struct.
            assert_eq!(unsafe { rnncell_model_info(m.0, &mut info) }, S::Ok);
            match rm.int_dot() {
                None => assert!(info.int_dot.is_null(), "{prec:?} {isa:?}"),
                Some(name) => {
                    assert!(!info.int_dot.is_null());
                    // SAFETY: a static NUL-terminated string.
                    let got = unsafe { CStr::from_ptr(info.int_dot) };
                    assert_eq!(got.to_str().unwrap(), name, "{isa:?}");
                }
            }
            assert_eq!(
                info.int_dot.is_null(),
                prec != WeightPrecision::Int8,
                "{prec:?}"
            );
        }
    }
}

fn c_isa(isa: Isa) -> u32 {
    (match isa {
        Isa::Scalar => RnncellIsa::Scalar,
        Isa::Avx2 => RnncellIsa::Avx2,
        Isa::Avx512 => RnncellIsa::Avx512,
        _ => RnncellIsa::Neon,
    }) as u32
}
