//! Models with non-standard activation functions (issue 13: every ONNX
//! and Keras activation): bit-identical to the plain reference on every
//! kernel set, in every mode, for every cell variant and precision f32 and
//! i8; the standard ones given explicitly change nothing; accuracy against
//! the f64 oracle; and the spec's activation checks.
//!
//! Agreement with ONNX Runtime on these functions: tests/vectors.rs (the
//! `onnx_act_*` vectors).

mod common;

use common::*;
use rnncell::reference::oracle_run;
use rnncell::*;

/// The functions the cases rotate through (ScaledTanh, Affine with
/// |α| < 1 so that states stay bounded over the short runs; Relu and
/// Softplus in the gates can still grow them, which is fine: any result,
/// NaN or ∞ included, must be the same on every kernel set).
fn pool() -> Vec<Activation> {
    use Activation as A;
    vec![
        A::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        A::Softsign,
        A::Elu { alpha: 0.7 },
        A::ScaledTanh {
            alpha: 0.9,
            beta: 1.3,
        },
        A::LeakyRelu { alpha: 0.05 },
        A::Softplus,
        A::ThresholdedRelu { alpha: 0.1 },
        A::Affine {
            alpha: 0.6,
            beta: 0.1,
        },
        A::KerasHardSigmoid,
        A::Relu,
        A::Sigmoid,
        A::Tanh,
    ]
}

/// Activations for case `i` of cell `cell`, direction `dir`: f, g, h from
/// the pool at different offsets; a GRU keeps h and an RNN g, h at tanh; a
/// relu RNN keeps relu.
fn acts_for(i: usize, dir: usize, cell: &CellKind) -> Activations {
    let p = pool();
    let at = |k: usize| p[(i + 5 * dir + k) % p.len()];
    match cell {
        CellKind::Lstm(_) => Activations {
            f: at(0),
            g: at(3),
            h: at(7),
        },
        CellKind::Gru(_) => Activations {
            f: at(0),
            g: at(4),
            ..Activations::STANDARD
        },
        CellKind::Rnn(o) => Activations {
            f: if o.activation == RnnActivation::Relu {
                Activation::Relu
            } else {
                at(1)
            },
            g: Activation::Tanh,
            h: Activation::Tanh,
        },
    }
}

/// The precision's cases with rotating activations (per direction for the
/// bidirectional ones).
fn act_cases(p: WeightPrecision) -> Vec<Data> {
    let mut v = cases(p);
    for (i, d) in v.iter_mut().enumerate() {
        let (f, b) = (acts_for(i, 0, &d.spec.cell), acts_for(i, 1, &d.spec.cell));
        d.spec = if d.spec.direction == Direction::Bidirectional {
            d.spec.activations_per_direction(f, b)
        } else {
            d.spec.activations(f)
        };
        d.name = format!("{} acts {:?}", d.name, d.spec.activations);
    }
    v
}

/// Every kernel set of `sets`, in every mode, == the plain reference, bit
/// for bit, on each of `data` (whose specs must validate).
fn equal_reference(label: &str, data: &[Data], sets: &[Kern]) {
    check_cases(label, data, |d| {
        d.spec.validate().map_err(|e| e.to_string())?;
        let expect = ref_trace(d);
        for k in sets {
            let m = k.model(d.spec, &d.weights).map_err(|e| e.to_string())?;
            compare(&format!("{k}"), &model_trace(&m, d), &expect)?;
        }
        Ok(())
    });
}

#[test]
fn f32_models_with_activations_equal_reference() {
    let data = act_cases(WeightPrecision::F32);
    equal_reference("f32, custom activations", &data, &kernel_sets());
}

#[test]
fn i8_and_f16_models_with_activations_equal_reference() {
    let mut data = act_cases(WeightPrecision::Int8);
    data.truncate(data.len() / 2);
    equal_reference("i8, custom activations", &data, &int8_kernel_sets());
    let mut data = act_cases(WeightPrecision::F16);
    data.truncate(data.len() / 3);
    equal_reference("f16, custom activations", &data, &kernel_sets());
}

/// The standard activations given explicitly take the inlined path and
/// return the default model's bits.
#[test]
fn explicit_standard_activations_change_nothing() {
    let data = cases(WeightPrecision::F32);
    check_cases("explicit standard activations", &data, |d| {
        let a = d.spec.activations_of(0);
        let spec = d.spec.activations(a);
        for k in kernel_sets() {
            let m0 = k.model(d.spec, &d.weights).map_err(|e| e.to_string())?;
            let m1 = k.model(spec, &d.weights).map_err(|e| e.to_string())?;
            compare(&format!("{k}"), &model_trace(&m1, d), &model_trace(&m0, d))?;
        }
        Ok(())
    });
}

/// Every function, as the model's f, g or h, against the f64 oracle with
/// the same functions: within 2e-5 over 20 steps (the functions' own
/// errors are ≤ 4e-7; the rest is the f32 arithmetic of the cell).
#[test]
fn activations_agree_with_the_f64_oracle() {
    let mut worst = 0.0f64;
    for (i, a) in pool().into_iter().enumerate() {
        let bounded = |x: Activation| match x {
            // Unbounded functions only where the cell keeps them bounded:
            // as g (times a gate in [0, 1] for the saturating f's).
            Activation::Relu | Activation::Softplus | Activation::Affine { .. } => None,
            _ => Some(x),
        };
        let f = bounded(a).unwrap_or(Activation::Sigmoid);
        for (cell, acts) in [
            (
                CellKind::lstm(),
                Activations {
                    f: Activation::Sigmoid,
                    g: a,
                    h: Activation::Tanh,
                },
            ),
            (
                CellKind::lstm(),
                Activations {
                    f,
                    g: Activation::Tanh,
                    h: bounded(a).unwrap_or(Activation::Softsign),
                },
            ),
            (
                CellKind::gru(),
                Activations {
                    f,
                    g: bounded(a).unwrap_or(Activation::Tanh),
                    h: Activation::Tanh,
                },
            ),
            (
                CellKind::gru_reset_before(),
                Activations {
                    f,
                    g: bounded(a).unwrap_or(Activation::Tanh),
                    h: Activation::Tanh,
                },
            ),
            (
                CellKind::rnn_tanh(),
                Activations {
                    f: bounded(a).unwrap_or(Activation::Softsign),
                    ..Activations::STANDARD
                },
            ),
        ] {
            let spec = ModelSpec::new(cell, 7, 13)
                .direction(Direction::Bidirectional)
                .activations(Activations {
                    g: if matches!(cell, CellKind::Rnn(_)) {
                        Activation::Tanh
                    } else {
                        acts.g
                    },
                    ..acts
                });
            spec.validate().unwrap();
            let w = random_weights(&spec, 40 + i as u64);
            let mut rng = DataRng::new(7 + i as u64);
            let (t, b) = (20, 2);
            let x = rng.vec(t * b * 7, 1.0);
            let seq = Sequence::new(&x, t, b);
            let m = Model::new(spec, &w).unwrap();
            let (y, hn, cn) = run_model(&m, &seq);
            let o = oracle_run(&spec, &w, &seq).unwrap();
            let e = max_abs_diff(&y, &o.output)
                .max(max_abs_diff(&hn, &o.h_n))
                .max(max_abs_diff(&cn, &o.c_n));
            assert!(e <= 2e-5, "{cell:?} {acts:?}: {e:e}");
            worst = worst.max(e);
        }
    }
    println!("custom activations vs f64 oracle: max |err| {worst:.2e}");
}

#[test]
fn spec_checks_the_activations() {
    let std = Activations::STANDARD;
    let soft = Activations {
        g: Activation::Softsign,
        ..std
    };
    let err = |s: ModelSpec| s.validate().unwrap_err().to_string();
    // Per-direction sets need two directions.
    let e = err(ModelSpec::new(CellKind::lstm(), 2, 3).activations_per_direction(std, soft));
    assert!(e.contains("bidirectional"), "{e}");
    ModelSpec::new(CellKind::lstm(), 2, 3)
        .direction(Direction::Bidirectional)
        .activations_per_direction(std, soft)
        .validate()
        .unwrap();
    // Functions a cell does not have.
    let e = err(
        ModelSpec::new(CellKind::gru(), 2, 3).activations(Activations {
            h: Activation::Relu,
            ..std
        }),
    );
    assert!(e.contains("gru has no h function"), "{e}");
    let e = err(ModelSpec::new(CellKind::rnn_tanh(), 2, 3).activations(soft));
    assert!(e.contains("rnn has no g function"), "{e}");
    // A relu RNN with another f.
    let e = err(
        ModelSpec::new(CellKind::rnn_relu(), 2, 3).activations(Activations {
            f: Activation::Softsign,
            ..std
        }),
    );
    assert!(e.contains("relu"), "{e}");
    // Non-finite parameters, named with their role.
    let e = err(
        ModelSpec::new(CellKind::lstm(), 2, 3).activations(Activations {
            h: Activation::Elu { alpha: f32::NAN },
            ..std
        }),
    );
    assert!(
        e.contains("forward activation h") && e.contains("alpha"),
        "{e}"
    );
    // An RNN's f replaces tanh.
    let s = ModelSpec::new(CellKind::rnn_tanh(), 2, 3).activations(Activations {
        f: Activation::Softsign,
        ..std
    });
    s.validate().unwrap();
    assert_eq!(s.activations_of(0).f, Activation::Softsign);
}

#[test]
fn onnx_and_keras_names() {
    let a = Activations::from_onnx(
        &CellKind::lstm(),
        2,
        &[
            "HardSigmoid",
            "ScaledTanh",
            "Tanh",
            "sigmoid",
            "LeakyRelu",
            "ThresholdedRelu",
        ],
        &[0.3, 1.5, 0.1],
        &[0.6, 2.0],
    )
    .unwrap();
    assert_eq!(
        a[0].f,
        Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.6
        }
    );
    assert_eq!(
        a[0].g,
        Activation::ScaledTanh {
            alpha: 1.5,
            beta: 2.0
        }
    );
    assert_eq!(a[1].g, Activation::LeakyRelu { alpha: 0.1 });
    // ONNX Runtime's default: ThresholdedRelu without alpha is 0.
    assert_eq!(a[1].h, Activation::ThresholdedRelu { alpha: 0.0 });
    // Wrong counts and names are errors that say so.
    let e = Activations::from_onnx(&CellKind::gru(), 1, &["Sigmoid"], &[], &[]).unwrap_err();
    assert!(e.to_string().contains("takes 2 names"), "{e}");
    let e = Activations::from_onnx(&CellKind::rnn_tanh(), 1, &["Relu"], &[1.0], &[]).unwrap_err();
    assert!(e.to_string().contains("more values"), "{e}");
    let e = Activations::from_onnx(&CellKind::rnn_tanh(), 1, &["Gelu"], &[], &[]).unwrap_err();
    assert!(e.to_string().contains("Gelu"), "{e}");
    // The defaults: no list.
    let d = Activations::from_onnx(&CellKind::rnn_tanh(), 1, &[], &[], &[]).unwrap();
    assert_eq!(d[0].f, Activation::Tanh);
    // Keras 2 and 3 disagree on hard_sigmoid.
    assert_eq!(
        Activation::from_keras("hard_sigmoid").unwrap(),
        Activation::KerasHardSigmoid
    );
    assert_eq!(
        Activation::from_keras2("hard_sigmoid").unwrap(),
        Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5
        }
    );
    assert_eq!(
        Activation::from_keras("linear").unwrap(),
        Activation::Affine {
            alpha: 1.0,
            beta: 0.0
        }
    );
    assert!(Activation::from_keras("swish").is_err());
    // Keras 3's hard sigmoid is relu6(x + 3) / 6 in f32.
    for x in [-4.0f32, -1.3, 0.0, 0.77, 2.9, 3.5] {
        let k = ((x + 3.0).clamp(0.0, 6.0)) / 6.0;
        assert_eq!(Activation::KerasHardSigmoid.eval(x), k);
    }
}

/// Weights files do not say the activations: the loader takes them as an
/// option and builds the model with them.
#[test]
fn safetensors_loader_takes_activations() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/safetensors/keras_lstm_1l.safetensors");
    let keras2 = Activations {
        f: Activation::from_keras2("hard_sigmoid").unwrap(),
        ..Activations::STANDARD
    };
    let plain =
        Model::from_safetensors(&path, &SafetensorsOptions::keras(CellKind::lstm())).unwrap();
    let opts = SafetensorsOptions::keras(CellKind::lstm()).activations(keras2);
    let m = Model::from_safetensors(&path, &opts).unwrap();
    assert_eq!(m.spec().activations, Some([keras2; 2]));
    assert_eq!(plain.spec().activations, None);
    let n = m.spec().input_size;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
    let (mut s0, mut s1) = (plain.new_state(), m.new_state());
    let hr = m.spec().state_size();
    let (mut y0, mut y1) = (vec![0.0; hr], vec![0.0; hr]);
    plain.step(&mut s0, &x, &mut y0).unwrap();
    m.step(&mut s1, &x, &mut y1).unwrap();
    assert_ne!(y0, y1);
    // A per-direction pair on a one-direction file is an error.
    let bad = SafetensorsOptions::keras(CellKind::lstm())
        .activations_per_direction(keras2, Activations::STANDARD);
    let e = Model::from_safetensors(&path, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bidirectional"), "{e}");
}
