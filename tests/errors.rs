//! Bad shapes, empty inputs, zero sizes, mismatched states, invalid
//! options: each gives the right `Error` variant (naming the tensor where
//! one is at fault), never a panic, and a failed step leaves the state
//! unchanged.

mod common;

use common::*;
use rnncell::reference::{RefState, oracle_run, plain_run, plain_step};
use rnncell::*;

fn lstm_proj() -> ModelSpec {
    ModelSpec::new(
        CellKind::Lstm(LstmOptions {
            peephole: true,
            proj_size: 3,
            proj_bias: true,
            ..LstmOptions::default()
        }),
        4,
        5,
    )
}

#[track_caller]
fn assert_size(err: Error, name: &str, expected: usize, actual: usize) {
    match &err {
        Error::SizeMismatch {
            what,
            expected: e,
            actual: a,
            ..
        } => {
            assert!(what.contains(name), "{what:?} does not name {name:?}");
            assert_eq!((*e, *a), (expected, actual), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(name)
                    && msg.contains(&expected.to_string())
                    && msg.contains(&actual.to_string()),
                "message {msg:?}"
            );
        }
        other => panic!("expected SizeMismatch naming {name:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid(r: Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains(needle), "{m:?} does not mention {needle:?}")
        }
        other => panic!("expected InvalidArgument ({needle}), got {other:?}"),
    }
}

#[test]
fn invalid_specs() {
    let base = ModelSpec::new(CellKind::lstm(), 3, 4);
    let zero_in = ModelSpec::new(CellKind::lstm(), 0, 4);
    let zero_h = ModelSpec::new(CellKind::gru(), 3, 0);
    let zero_l = base.layers(0);
    for (spec, needle) in [
        (zero_in, "input_size"),
        (zero_h, "hidden_size"),
        (zero_l, "num_layers"),
        (
            ModelSpec::new(CellKind::rnn_tanh(), 1 << 21, 4),
            "too large",
        ),
    ] {
        assert_invalid(spec.validate(), needle);
        // Building a model reports the same error, even with no weights.
        assert_invalid(Model::new(spec, &[]), needle);
        assert_invalid(Model::with_isa(spec, &[], Isa::Scalar), needle);
    }
    let lstm = |o: LstmOptions| ModelSpec::new(CellKind::Lstm(o), 3, 4);
    let d = LstmOptions::default();
    for bad in [f32::NAN, 0.0, -1.0, -0.0, f32::NEG_INFINITY] {
        assert_invalid(
            lstm(LstmOptions {
                clip: Some(bad),
                ..d
            })
            .validate(),
            "clip",
        );
        assert_invalid(
            lstm(LstmOptions {
                cell_clip: Some(bad),
                ..d
            })
            .validate(),
            "cell_clip",
        );
        assert_invalid(
            lstm(LstmOptions {
                proj_size: 2,
                proj_clip: Some(bad),
                ..d
            })
            .validate(),
            "proj_clip",
        );
        let gru = ModelSpec::new(
            CellKind::Gru(GruOptions {
                linear_before_reset: true,
                clip: Some(bad),
            }),
            3,
            4,
        );
        assert_invalid(gru.validate(), "clip");
        let rnn = ModelSpec::new(
            CellKind::Rnn(RnnOptions {
                activation: RnnActivation::Relu,
                clip: Some(bad),
            }),
            3,
            4,
        );
        assert_invalid(rnn.validate(), "clip");
        assert_invalid(Model::new(rnn, &random_weights(&rnn.layers(1), 0)), "clip");
    }
    // A projection larger than the hidden state (PyTorch forbids it);
    // equal is allowed.
    let wide = lstm(LstmOptions { proj_size: 5, ..d });
    assert_invalid(wide.validate(), "proj_size 5 exceeds hidden_size 4");
    assert_invalid(Model::new(wide, &[]), "proj_size");
    lstm(LstmOptions { proj_size: 4, ..d }).validate().unwrap();
    // Options that need a projection.
    assert_invalid(
        lstm(LstmOptions {
            proj_bias: true,
            ..d
        })
        .validate(),
        "proj_size",
    );
    assert_invalid(
        lstm(LstmOptions {
            proj_clip: Some(1.0),
            ..d
        })
        .validate(),
        "proj_size",
    );
    // +inf is a valid (no-op) clip.
    lstm(LstmOptions {
        clip: Some(f32::INFINITY),
        ..d
    })
    .validate()
    .unwrap();
}

#[test]
fn wrong_weight_tensors_are_named() {
    let spec = lstm_proj().layers(2).direction(Direction::Bidirectional);
    let good = random_weights(&spec, 1);
    Model::with_isa(spec, &good, Isa::Scalar).unwrap();

    // Wrong number of layer weights.
    let e = Model::new(spec, &good[..3]).unwrap_err();
    assert_size(e, "layer weights", 4, 3);
    let e = Model::new(spec, &[]).unwrap_err();
    assert_size(e, "layer weights", 4, 0);

    // Each tensor, wrong by one element, in layer 1's reverse direction.
    type Field = fn(&mut LayerWeights) -> &mut Vec<f32>;
    let fields: [(&str, Field); 7] = [
        ("weight_ih", |w| &mut w.w),
        ("weight_hh", |w| &mut w.r),
        ("bias_ih", |w| &mut w.b_w),
        ("bias_hh", |w| &mut w.b_r),
        ("peephole", |w| &mut w.peephole),
        ("weight_hr", |w| &mut w.proj),
        ("proj_bias", |w| &mut w.proj_bias),
    ];
    for (name, field) in fields {
        for (drop_one, idx) in [(true, 3), (false, 0)] {
            let mut ws = good.clone();
            let t = field(&mut ws[idx]);
            let expected = t.len();
            if drop_one {
                t.pop();
            } else {
                t.push(0.5);
            }
            let actual = t.len();
            for isa in isas() {
                let e = Model::with_isa(spec, &ws, isa).unwrap_err();
                let full = if idx == 3 {
                    format!("layer 1 {name}_reverse")
                } else {
                    format!("layer 0 {name}")
                };
                assert_size(e, &full, expected, actual);
            }
            // The reference paths refuse the same weights.
            let x = [0.0f32; 4];
            assert!(matches!(
                plain_run(&spec, &ws, &Sequence::new(&x, 1, 1)),
                Err(Error::SizeMismatch { .. })
            ));
        }
    }
    // Empty tensors.
    let mut ws = good.clone();
    ws[0].w.clear();
    assert_size(
        Model::new(spec, &ws).unwrap_err(),
        "layer 0 weight_ih",
        5 * 4 * 4,
        0,
    );
}

#[test]
fn framework_layout_errors_name_the_tensor() {
    // PyTorch: a missing tensor, then a wrong size.
    let spec = ModelSpec::new(CellKind::gru(), 2, 3).layers(2);
    let mut rng = DataRng::new(5);
    let w0 = rng.vec(9 * 2, 0.3);
    let r0 = rng.vec(9 * 3, 0.3);
    let w1 = rng.vec(9 * 3, 0.3);
    let r1_bad = rng.vec(9 * 3 - 1, 0.3);
    let get = |n: &str| -> Option<&[f32]> {
        match n {
            "weight_ih_l0" => Some(&w0),
            "weight_hh_l0" => Some(&r0),
            "weight_ih_l1" => Some(&w1),
            "weight_hh_l1" => Some(&r1_bad),
            _ => None,
        }
    };
    let e = Model::from_pytorch_with_isa(spec, get, Isa::Scalar).unwrap_err();
    assert_size(e, "weight_hh", 27, 26);
    let e = Model::from_pytorch_with_isa(spec, |_| None, Isa::Scalar).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("weight_ih_l0")),
        "{e}"
    );
    let e = Model::from_pytorch_with_isa(
        spec,
        |n| if n.ends_with("l0") { get(n) } else { None },
        Isa::Scalar,
    )
    .unwrap_err();
    assert!(e.to_string().contains("weight_ih_l1"), "{e}");

    // ONNX: W, R, B, P sizes and the number of nodes.
    let spec = ModelSpec::new(
        CellKind::Lstm(LstmOptions {
            peephole: true,
            ..LstmOptions::default()
        }),
        2,
        3,
    )
    .direction(Direction::Bidirectional);
    let (w, r, b, p) = (
        rng.vec(2 * 12 * 2, 0.3),
        rng.vec(2 * 12 * 3, 0.3),
        rng.vec(2 * 24, 0.3),
        rng.vec(2 * 9, 0.3),
    );
    let ok = OnnxTensors {
        w: &w,
        r: &r,
        b: Some(&b),
        p: Some(&p),
    };
    Model::from_onnx_with_isa(spec, &[ok], Isa::Scalar).unwrap();
    for (name, t, exp, act) in [
        ("W", OnnxTensors { w: &w[1..], ..ok }, 48, 47),
        ("R", OnnxTensors { r: &r[..70], ..ok }, 72, 70),
        (
            "B",
            OnnxTensors {
                b: Some(&b[..24]),
                ..ok
            },
            48,
            24,
        ),
        (
            "P",
            OnnxTensors {
                p: Some(&p[..17]),
                ..ok
            },
            18,
            17,
        ),
    ] {
        let e = Model::from_onnx_with_isa(spec, &[t], Isa::Scalar).unwrap_err();
        assert_size(e, &format!("layer 0 {name}"), exp, act);
    }
    let e = Model::from_onnx_with_isa(spec, &[ok, ok], Isa::Scalar).unwrap_err();
    assert_size(e, "ONNX layers", 1, 2);
    let e = Model::from_onnx_with_isa(spec, &[], Isa::Scalar).unwrap_err();
    assert_size(e, "ONNX layers", 1, 0);

    // Keras: kernel and recurrent_kernel sizes, layer count.
    let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
    let (k, rk, bias) = (rng.vec(2 * 12, 0.3), rng.vec(3 * 12, 0.3), rng.vec(12, 0.3));
    let ok = KerasTensors {
        kernel: &k,
        recurrent_kernel: &rk,
        bias: Some(&bias),
    };
    Model::from_keras_with_isa(spec, &[ok], Isa::Scalar).unwrap();
    let e = Model::from_keras_with_isa(
        spec,
        &[KerasTensors {
            kernel: &k[..23],
            ..ok
        }],
        Isa::Scalar,
    )
    .unwrap_err();
    assert_size(e, "kernel", 24, 23);
    let e = Model::from_keras_with_isa(
        spec,
        &[KerasTensors {
            recurrent_kernel: &rk[..1],
            ..ok
        }],
        Isa::Scalar,
    )
    .unwrap_err();
    assert_size(e, "recurrent_kernel", 36, 1);
    let e = Model::from_keras_with_isa(
        spec,
        &[KerasTensors {
            bias: Some(&bias[..11]),
            ..ok
        }],
        Isa::Scalar,
    )
    .unwrap_err();
    assert_size(e, "bias", 12, 11);
    let e = Model::from_keras_with_isa(spec, &[ok, ok], Isa::Scalar).unwrap_err();
    assert_size(e, "Keras layers", 1, 2);

    // Tensors the spec has no use for.
    let t = LayerTensors {
        w: &k,
        r: &rk,
        peephole: Some(&bias[..9]),
        ..LayerTensors::default()
    };
    assert_invalid(
        LayerWeights::from_layout(Layout::Keras, &spec, 0, &t),
        "peephole",
    );
    let t = LayerTensors {
        w: &k,
        r: &rk,
        proj: Some(&bias[..6]),
        ..LayerTensors::default()
    };
    assert_invalid(
        LayerWeights::from_layout(Layout::PyTorch, &spec, 0, &t),
        "weight_hr",
    );
    let t = LayerTensors {
        w: &k,
        r: &rk,
        ..LayerTensors::default()
    };
    assert_invalid(
        LayerWeights::from_layout(Layout::PyTorch, &spec, 1, &t),
        "layer 1",
    );
}

#[test]
fn unavailable_isa() {
    for isa in Isa::ALL {
        let spec = ModelSpec::new(CellKind::gru(), 2, 3);
        let w = random_weights(&spec, 0);
        let r = Model::with_isa(spec, &w, isa);
        if isa.is_supported() {
            assert_eq!(r.unwrap().isa(), isa);
        } else {
            assert_eq!(r.unwrap_err(), Error::IsaUnavailable(isa));
        }
    }
}

/// Snapshot of every layer's h and c, as bits.
fn snapshot(s: &State) -> Vec<u32> {
    (0..s.layers())
        .flat_map(|l| {
            let mut v: Vec<u32> = s.h(l).iter().map(|x| x.to_bits()).collect();
            if let Some(c) = s.c(l) {
                v.extend(c.iter().map(|x| x.to_bits()));
            }
            v
        })
        .collect()
}

#[test]
fn step_errors_leave_the_state_unchanged() {
    let spec = lstm_proj().layers(2);
    let w = random_weights(&spec, 2);
    for isa in isas() {
        let model = Model::with_isa(spec, &w, isa).unwrap();
        let other = Model::with_isa(spec, &w, isa).unwrap();
        let mut st = model.new_state();
        let mut y = [0.0f32; 3];
        let x = [0.5f32, -0.25, 1.0, 0.75];
        for _ in 0..3 {
            model.step(&mut st, &x, &mut y).unwrap();
        }
        let snap = snapshot(&st);
        assert!(snap.iter().any(|&b| b != 0));

        assert_size(model.step(&mut st, &x[..3], &mut y).unwrap_err(), "x", 4, 3);
        assert_size(model.step(&mut st, &[], &mut y).unwrap_err(), "x", 4, 0);
        assert_size(
            model.step(&mut st, &[0.0; 5], &mut y).unwrap_err(),
            "x",
            4,
            5,
        );
        let e = model.step(&mut st, &x, &mut [0.0; 5]).unwrap_err();
        assert_size(e, "y", 3, 5);
        assert_size(model.step(&mut st, &x, &mut []).unwrap_err(), "y", 3, 0);
        // A state of another model (same spec and weights): refused.
        let mut foreign = other.new_state();
        assert_eq!(
            model.step(&mut foreign, &x, &mut y),
            Err(Error::StateMismatch)
        );
        assert_eq!(other.step(&mut st, &x, &mut y), Err(Error::StateMismatch));
        assert!(!model.owns(&foreign) && model.owns(&st));
        // A clone of the model is the same model.
        let twin = model.clone();
        assert!(twin.owns(&st));
        assert_eq!(
            snapshot(&st),
            snap,
            "{isa}: a failed step changed the state"
        );

        // step_many: mismatched counts, foreign states, bad sizes; no
        // state changes.
        let mut a = model.new_state();
        model.step(&mut a, &x, &mut y).unwrap();
        let snap_a = snapshot(&a);
        let (mut y1, mut y2) = ([0.0f32; 3], [0.0f32; 3]);
        let e = model
            .step_many(&mut [&mut st, &mut a], &[&x], &mut [&mut y1, &mut y2])
            .unwrap_err();
        assert_size(e, "xs", 2, 1);
        let e = model
            .step_many(&mut [&mut st, &mut a], &[&x, &x], &mut [&mut y1])
            .unwrap_err();
        assert_size(e, "ys", 2, 1);
        let e = model
            .step_many(
                &mut [&mut st, &mut a, &mut foreign],
                &[&x, &x, &x],
                &mut [&mut y1, &mut y2, &mut [0.0; 3]],
            )
            .unwrap_err();
        assert_eq!(e, Error::StateMismatch);
        let e = model
            .step_many(
                &mut [&mut st, &mut a],
                &[&x, &x[..2]],
                &mut [&mut y1, &mut y2],
            )
            .unwrap_err();
        assert_size(e, "x", 4, 2);
        assert_eq!(snapshot(&st), snap);
        assert_eq!(snapshot(&a), snap_a);

        // step_chunk.
        let mut ys = [0.0f32; 6];
        assert_invalid(model.step_chunk(&mut st, &[], &mut ys), "xs");
        assert_invalid(model.step_chunk(&mut st, &[0.0; 7], &mut ys), "xs");
        assert_size(
            model
                .step_chunk(&mut st, &[0.0; 8], &mut ys[..5])
                .unwrap_err(),
            "ys",
            6,
            5,
        );
        assert_eq!(
            model.step_chunk(&mut foreign, &[0.0; 8], &mut ys),
            Err(Error::StateMismatch)
        );
        assert_eq!(snapshot(&st), snap);
    }
}

#[test]
fn step_needs_a_forward_model() {
    for dir in [Direction::Reverse, Direction::Bidirectional] {
        let spec = ModelSpec::new(CellKind::gru(), 2, 3).direction(dir);
        let m = Model::new(spec, &random_weights(&spec, 3)).unwrap();
        let mut st = m.new_state();
        let mut y = [0.0f32; 3];
        assert!(matches!(
            m.step(&mut st, &[1.0, 2.0], &mut y),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            m.step_many(&mut [&mut st], &[&[1.0, 2.0]], &mut [&mut y]),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            m.step_chunk(&mut st, &[1.0, 2.0], &mut y),
            Err(Error::Unsupported(_))
        ));
        assert!(st.h(0).iter().all(|&v| v == 0.0));
        // The reference refuses too.
        let mut rs = RefState::for_layers(&spec);
        assert!(matches!(
            plain_step(&spec, &random_weights(&spec, 3), &mut rs, &[1.0, 2.0]),
            Err(Error::Unsupported(_))
        ));
    }
}

#[test]
fn run_errors() {
    let spec = lstm_proj().direction(Direction::Bidirectional);
    let w = random_weights(&spec, 4);
    let (t, b) = (5, 2);
    let x = DataRng::new(1).vec(t * b * 4, 1.0);
    let h0 = vec![0.1f32; 2 * b * 3];
    let c0 = vec![0.2f32; 2 * b * 5];
    for isa in isas() {
        let m = Model::with_isa(spec, &w, isa).unwrap();
        let mut y = vec![0.0f32; t * b * 6];
        let mut hn = vec![0.0f32; 2 * b * 3];
        let mut cn = vec![0.0f32; 2 * b * 5];
        let mut run = |seq: Sequence<'_>, y_len: usize, hn_len: usize, cn_len: Option<usize>| {
            m.run(
                &seq,
                &mut SequenceOutput {
                    output: &mut y[..y_len],
                    h_n: Some(&mut hn[..hn_len]),
                    c_n: cn_len.map(|n| &mut cn[..n]),
                },
            )
        };
        let ok = Sequence {
            h0: Some(&h0),
            c0: Some(&c0),
            ..Sequence::new(&x, t, b)
        };
        run(ok, 60, 12, Some(20)).unwrap();
        // Empty sequences.
        assert_invalid(run(Sequence { steps: 0, ..ok }, 0, 12, Some(20)), "empty");
        assert_invalid(run(Sequence { batch: 0, ..ok }, 0, 0, Some(0)), "empty");
        assert_invalid(run(Sequence::new(&[], 0, 0), 0, 0, None), "empty");
        // Wrong sizes, each named.
        assert_size(
            run(Sequence::new(&x[1..], t, b), 60, 12, None).unwrap_err(),
            "input",
            40,
            39,
        );
        assert_size(run(ok, 59, 12, Some(20)).unwrap_err(), "output", 60, 59);
        assert_size(
            run(
                Sequence {
                    h0: Some(&h0[1..]),
                    ..ok
                },
                60,
                12,
                Some(20),
            )
            .unwrap_err(),
            "h0",
            12,
            11,
        );
        assert_size(
            run(
                Sequence {
                    c0: Some(&c0[2..]),
                    ..ok
                },
                60,
                12,
                Some(20),
            )
            .unwrap_err(),
            "c0",
            20,
            18,
        );
        assert_size(run(ok, 60, 11, Some(20)).unwrap_err(), "h_n", 12, 11);
        assert_size(run(ok, 60, 12, Some(19)).unwrap_err(), "c_n", 20, 19);
        // seq_lens: wrong count, an entry beyond T.
        let lens = [5usize, 6];
        assert_size(
            run(
                Sequence {
                    seq_lens: Some(&lens[..1]),
                    ..ok
                },
                60,
                12,
                Some(20),
            )
            .unwrap_err(),
            "seq_lens",
            2,
            1,
        );
        assert_invalid(
            run(
                Sequence {
                    seq_lens: Some(&lens),
                    ..ok
                },
                60,
                12,
                Some(20),
            ),
            "seq_lens",
        );
        // Sizes whose product overflows.
        let e = run(Sequence::new(&x, usize::MAX, 3), 60, 12, None).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(_) | Error::SizeMismatch { .. }),
            "{e:?}"
        );
        // The reference paths agree on what is an error.
        assert!(
            plain_run(
                &spec,
                &w,
                &Sequence {
                    seq_lens: Some(&lens),
                    ..ok
                }
            )
            .is_err()
        );
        assert!(oracle_run(&spec, &w, &Sequence { steps: 0, ..ok }).is_err());
    }
    // c0 / c_n for a cell without c.
    let spec = ModelSpec::new(CellKind::gru(), 4, 3);
    let m = Model::new(spec, &random_weights(&spec, 5)).unwrap();
    let c = [0.0f32; 6];
    let mut y = vec![0.0f32; t * b * 3];
    let seq = Sequence {
        c0: Some(&c),
        ..Sequence::new(&x, t, b)
    };
    let e = m.run(
        &seq,
        &mut SequenceOutput {
            output: &mut y,
            h_n: None,
            c_n: None,
        },
    );
    assert_invalid(e, "c0");
    let mut cn = [0.0f32; 6];
    let e = m.run(
        &Sequence::new(&x, t, b),
        &mut SequenceOutput {
            output: &mut y,
            h_n: None,
            c_n: Some(&mut cn),
        },
    );
    assert_invalid(e, "c_n");
}

#[test]
fn state_accessor_errors() {
    let spec = lstm_proj().layers(2);
    let m = Model::new(spec, &random_weights(&spec, 6)).unwrap();
    let mut s = m.new_state();
    assert_size(s.set_h(0, &[1.0; 5]).unwrap_err(), "h of layer 0", 3, 5);
    assert_size(s.set_h(1, &[]).unwrap_err(), "h of layer 1", 3, 0);
    assert_size(s.set_c(1, &[1.0; 3]).unwrap_err(), "c of layer 1", 5, 3);
    assert_invalid(s.set_h(2, &[1.0; 3]), "layer 2");
    assert_invalid(s.set_c(7, &[1.0; 5]), "layer 7");
    assert!(s.h(0).iter().chain(s.c(1).unwrap()).all(|&v| v == 0.0));
    let g = ModelSpec::new(CellKind::gru(), 2, 3);
    let m = Model::new(g, &random_weights(&g, 7)).unwrap();
    let mut s = m.new_state();
    assert_invalid(s.set_c(0, &[1.0; 3]), "no c state");
    assert!(s.c(0).is_none());
}

// ------------------------------------ errors that name the likely spec field

/// The message of a failed build, which must be a size or argument error.
#[track_caller]
fn message(r: Result<Model>) -> String {
    match r {
        Err(e @ (Error::SizeMismatch { .. } | Error::InvalidArgument(_))) => e.to_string(),
        Err(e) => panic!("expected a size or argument error, got {e:?}"),
        Ok(_) => panic!("expected an error"),
    }
}

/// PyTorch-named tensors of one LSTM layer (I, H, P), canonical order.
fn lstm_state_dict(i: usize, h: usize, p: usize, layers: usize) -> Vec<(String, Vec<f32>)> {
    let mut rng = DataRng::new(17);
    let hr = if p > 0 { p } else { h };
    let mut v = Vec::new();
    for l in 0..layers {
        let input = if l == 0 { i } else { hr };
        v.push((format!("weight_ih_l{l}"), rng.vec(4 * h * input, 0.3)));
        v.push((format!("weight_hh_l{l}"), rng.vec(4 * h * hr, 0.3)));
        v.push((format!("bias_ih_l{l}"), rng.vec(4 * h, 0.3)));
        v.push((format!("bias_hh_l{l}"), rng.vec(4 * h, 0.3)));
        if p > 0 {
            v.push((format!("weight_hr_l{l}"), rng.vec(p * h, 0.3)));
        }
    }
    v
}

fn from_sd(spec: ModelSpec, sd: &[(String, Vec<f32>)]) -> Result<Model> {
    let get = |n: &str| sd.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_slice());
    Model::from_pytorch_with_isa(spec, get, Isa::Scalar)
}

fn lstm_p(i: usize, h: usize, p: usize) -> ModelSpec {
    ModelSpec::new(
        CellKind::Lstm(LstmOptions {
            proj_size: p,
            ..LstmOptions::default()
        }),
        i,
        h,
    )
}

#[test]
fn size_errors_name_the_spec_field_the_tensors_imply() {
    // The case: an LSTMP state_dict with proj_size left at 0.
    let sd = lstm_state_dict(6, 10, 4, 1);
    let m = message(from_sd(lstm_p(6, 10, 0), &sd));
    assert!(
        m.contains("weight_hh_l0: expected 400 elements, got 160")
            && m.contains("160 = 4 gates · 10 hidden_size · 4 proj_size")
            && m.contains("set LstmOptions::proj_size = 4?"),
        "{m}"
    );
    // The hint is right: that spec builds.
    from_sd(lstm_p(6, 10, 4), &sd).unwrap();
    // A wrong input size, hidden size, number of layers.
    let sd = lstm_state_dict(6, 10, 0, 2);
    let m = message(from_sd(lstm_p(5, 10, 0).layers(2), &sd));
    assert!(m.contains("set input_size = 6?"), "{m}");
    let m = message(from_sd(lstm_p(6, 8, 0).layers(2), &sd));
    assert!(m.contains("set hidden_size = 10?"), "{m}");
    let m = message(from_sd(lstm_p(6, 10, 0).layers(3), &sd));
    assert!(
        m.contains("missing tensor weight_ih_l2") && m.contains("set num_layers = 2?"),
        "{m}"
    );
    // A bidirectional spec for a forward state_dict.
    let m = message(from_sd(
        lstm_p(6, 10, 0)
            .layers(2)
            .direction(Direction::Bidirectional),
        &sd,
    ));
    assert!(m.contains("set direction = Direction::Forward?"), "{m}");
    // A spec that says less than the tensors is an error, not a smaller
    // model: one layer of a two-layer state_dict, one direction of a
    // bidirectional one, no projection for an LSTMP one.
    let m = message(from_sd(lstm_p(6, 10, 0), &sd));
    assert!(
        m.contains("weight_ih_l1") && m.contains("spec.num_layers = 1"),
        "{m}"
    );
    let mut bi = lstm_state_dict(6, 10, 0, 1);
    for (k, v) in lstm_state_dict(6, 10, 0, 1) {
        bi.push((format!("{k}_reverse"), v));
    }
    from_sd(lstm_p(6, 10, 0).direction(Direction::Bidirectional), &bi).unwrap();
    let m = message(from_sd(lstm_p(6, 10, 0), &bi));
    assert!(
        m.contains("weight_ih_l0_reverse") && m.contains("unidirectional"),
        "{m}"
    );
    let mut p = lstm_state_dict(6, 10, 0, 1);
    p.push(("weight_hr_l0".into(), vec![0.0; 40]));
    let m = message(from_sd(lstm_p(6, 10, 0), &p));
    assert!(
        m.contains("weight_hr_l0") && m.contains("projection"),
        "{m}"
    );
    // A tensor that is simply wrong gets no suggestion.
    let mut bad = sd.clone();
    bad[1].1.pop();
    let m = message(from_sd(lstm_p(6, 10, 0).layers(2), &bad));
    assert!(
        m.contains("expected 400 elements, got 399") && !m.contains("set "),
        "{m}"
    );

    // ONNX: both directions in one node, for a forward spec; a wrong hidden
    // size; the number of nodes.
    let mut rng = DataRng::new(3);
    let (i, h) = (3, 5);
    let (w, r, b) = (
        rng.vec(2 * 15 * i, 0.3),
        rng.vec(2 * 15 * h, 0.3),
        rng.vec(2 * 30, 0.3),
    );
    let node = OnnxTensors {
        w: &w,
        r: &r,
        b: Some(&b),
        p: None,
    };
    let gru = ModelSpec::new(CellKind::gru_for(Framework::Onnx), i, h);
    let m = message(Model::from_onnx_with_isa(gru, &[node], Isa::Scalar));
    assert!(
        m.contains("layer 0 W: expected 45 elements, got 90")
            && m.contains("90 = 2 directions · 3 gates · 5 hidden_size · 3 input_size")
            && m.contains("set direction = Direction::Bidirectional?"),
        "{m}"
    );
    let bi = gru.direction(Direction::Bidirectional);
    Model::from_onnx_with_isa(bi, &[node], Isa::Scalar).unwrap();
    let m = message(Model::from_onnx_with_isa(
        ModelSpec {
            hidden_size: 4,
            ..bi
        },
        &[node],
        Isa::Scalar,
    ));
    assert!(m.contains("set hidden_size = 5?"), "{m}");
    let m = message(Model::from_onnx_with_isa(
        bi.layers(2),
        &[node],
        Isa::Scalar,
    ));
    assert!(
        m.contains("ONNX layers") && m.contains("set num_layers = 1?"),
        "{m}"
    );

    // Keras: LSTM weights given to a GRU spec.
    let (k, rk, bias) = (rng.vec(i * 20, 0.3), rng.vec(h * 20, 0.3), rng.vec(20, 0.3));
    let t = KerasTensors {
        kernel: &k,
        recurrent_kernel: &rk,
        bias: Some(&bias),
    };
    let m = message(Model::from_keras_with_isa(
        ModelSpec::new(CellKind::gru(), i, h),
        &[t],
        Isa::Scalar,
    ));
    assert!(m.contains("set cell = CellKind::Lstm?"), "{m}");
}

/// Builds through a C builder; returns the status and the message.
fn c_build(
    f: impl FnOnce(*mut *mut ffi::RnncellModel, *mut std::ffi::c_char, usize) -> ffi::RnncellStatus,
) -> (ffi::RnncellStatus, String) {
    let mut m = std::ptr::null_mut();
    let mut msg = [0 as std::ffi::c_char; 512];
    let st = f(&mut m, msg.as_mut_ptr(), msg.len());
    // SAFETY: the builders NUL-terminate a non-null message buffer; `m` is
    // a model from the builder or NULL.
    unsafe {
        ffi::rnncell_model_free(m);
        (
            st,
            std::ffi::CStr::from_ptr(msg.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

fn ct(v: &[f32]) -> ffi::RnncellTensor {
    ffi::RnncellTensor {
        data: v.as_ptr(),
        len: v.len(),
    }
}

#[test]
fn c_builders_name_the_spec_field_the_tensors_imply() {
    use ffi::*;
    let init = |cell: RnncellCell, i: usize, h: usize| {
        let mut s = RnncellSpec::default();
        assert_eq!(
            // SAFETY: `s` is writable.
            unsafe { rnncell_spec_init(&mut s, size_of::<RnncellSpec>(), cell as u32, i, h) },
            RnncellStatus::Ok
        );
        s
    };
    // PyTorch: lstm_proj_size missing.
    let sd = lstm_state_dict(6, 10, 4, 1);
    let layer = RnncellPytorchLayer {
        weight_ih: ct(&sd[0].1),
        weight_hh: ct(&sd[1].1),
        bias_ih: ct(&sd[2].1),
        bias_hh: ct(&sd[3].1),
        weight_hr: ct(&sd[4].1),
        ..Default::default()
    };
    let mut cs = init(RnncellCell::Lstm, 6, 10);
    let (st, m) =
        // SAFETY: valid spec, live tensors with their counts, out pointers from c_build.
        c_build(|o, e, n| unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, o, e, n) });
    assert_eq!(st, RnncellStatus::SizeMismatch, "{m}");
    assert!(
        m.contains("weight_hh") && m.contains("set spec.lstm_proj_size = 4?"),
        "{m}"
    );
    cs.lstm_proj_size = 4;
    let (st, m) =
        // SAFETY: valid spec, live tensors with their counts, out pointers from c_build.
        c_build(|o, e, n| unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, o, e, n) });
    assert_eq!(st, RnncellStatus::Ok, "{m}");
    // Two entries for a one-layer forward spec: counted before any entry
    // past the first is read, so the hint is arithmetic.
    let cs = init(RnncellCell::Lstm, 6, 10);
    let two = [layer, layer];
    let (st, m) =
        // SAFETY: valid spec, live tensors with their counts, out pointers from c_build.
        c_build(|o, e, n| unsafe { rnncell_model_new_pytorch(&cs, two.as_ptr(), 2, 0, o, e, n) });
    assert_eq!(st, RnncellStatus::SizeMismatch, "{m}");
    assert!(
        m.contains("spec.num_layers = 2, or spec.direction = RNNCELL_DIRECTION_BIDIRECTIONAL?"),
        "{m}"
    );

    // ONNX: a bidirectional node for a forward spec.
    let mut rng = DataRng::new(4);
    let (i, h) = (3, 5);
    let (w, r) = (rng.vec(2 * 15 * i, 0.3), rng.vec(2 * 15 * h, 0.3));
    let node = RnncellOnnxLayer {
        w: ct(&w),
        r: ct(&r),
        ..Default::default()
    };
    let cs = init(RnncellCell::Gru, i, h);
    // SAFETY: valid spec, live tensors with their counts, out pointers from c_build.
    let (st, m) = c_build(|o, e, n| unsafe { rnncell_model_new_onnx(&cs, &node, 1, 0, o, e, n) });
    assert_eq!(st, RnncellStatus::SizeMismatch, "{m}");
    assert!(
        m.contains("layer 0 W")
            && m.contains("set spec.direction = RNNCELL_DIRECTION_BIDIRECTIONAL?"),
        "{m}"
    );
    // Keras: a wrong input size.
    let (k, rk) = (rng.vec(7 * 15, 0.3), rng.vec(h * 15, 0.3));
    let kl = RnncellKerasLayer {
        kernel: ct(&k),
        recurrent_kernel: ct(&rk),
        ..Default::default()
    };
    // SAFETY: valid spec, live tensors with their counts, out pointers from c_build.
    let (st, m) = c_build(|o, e, n| unsafe { rnncell_model_new_keras(&cs, &kl, 1, 0, o, e, n) });
    assert_eq!(st, RnncellStatus::SizeMismatch, "{m}");
    assert!(
        m.contains("kernel")
            && m.contains("105 = 3 gates · 5 hidden_size · 7 input_size")
            && m.contains("set spec.input_size = 7?"),
        "{m}"
    );
}
