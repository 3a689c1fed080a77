//! Framework-native tensor layouts at the sequence boundary (issue 13,
//! item 3, Rust side): ONNX users pass `X`, `initial_h`, `initial_c` and
//! `sequence_lens` (int32) and receive `Y`, `Y_h`, `Y_c` as ONNX lays them
//! out, for `layout` 0 and 1; PyTorch users pass int64 lengths. Checked
//! against the ONNX Runtime and PyTorch vectors of tests/vectors (1e-5),
//! on every ISA; the layout-1 tensors are the layout-0 vectors transposed
//! ([T, B, ·] ↔ [B, T, ·], [D, B, H] ↔ [B, D, H]), which is how ONNX
//! defines layout 1.

mod common;
use common::{max_diff, spec_of};

use std::collections::HashMap;

use rnncell::*;
use serde_json::Value;

const TOL: f32 = 1e-5;

fn arr(v: &Value) -> Option<Vec<f32>> {
    (!v.is_null()).then(|| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    })
}

fn vector(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn onnx_vectors() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("onnx_"))
        .collect();
    v.sort();
    v
}

fn model_of(c: &Value, isa: Isa) -> Model {
    let spec = spec_of(c);
    let t: HashMap<String, Vec<f32>> = c["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), arr(v).unwrap()))
        .collect();
    if c["framework"] == "onnx" {
        let node = OnnxTensors {
            w: &t["W"],
            r: &t["R"],
            b: t.get("B").map(Vec::as_slice),
            p: t.get("P").map(Vec::as_slice),
        };
        Model::from_onnx_with_isa(spec, &[node], isa).unwrap()
    } else {
        Model::from_pytorch_with_isa(spec, |n| t.get(n).map(Vec::as_slice), isa).unwrap()
    }
}

/// [A, B, rest] → [B, A, rest].
fn swap01(v: &[f32], a: usize, b: usize) -> Vec<f32> {
    let rest = v.len() / (a * b);
    let mut out = vec![0.0; v.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * rest..][..rest].copy_from_slice(&v[(i * b + j) * rest..][..rest]);
        }
    }
    out
}

struct Outs {
    y: Vec<f32>,
    hn: Vec<f32>,
    cn: Vec<f32>,
}

fn run(m: &Model, seq: &Sequence<'_>) -> Result<Outs> {
    let sp = m.spec();
    let (t, b) = (seq.steps, seq.batch);
    let ld = sp.num_layers * sp.directions();
    let mut o = Outs {
        y: vec![f32::NAN; t * b * sp.output_size()],
        hn: vec![f32::NAN; ld * b * sp.state_size()],
        cn: vec![
            f32::NAN;
            if sp.has_cell_state() {
                ld * b * sp.hidden_size
            } else {
                0
            }
        ],
    };
    let lstm = sp.has_cell_state();
    m.run(
        seq,
        &mut SequenceOutput {
            output: &mut o.y,
            h_n: Some(&mut o.hn),
            c_n: lstm.then_some(&mut o.cn[..]),
        },
    )?;
    Ok(o)
}

#[test]
fn onnx_tensors_pass_unchanged_in_layouts_0_and_1() {
    let names = onnx_vectors();
    assert!(names.len() >= 12, "{names:?}");
    for name in &names {
        let c = vector(name);
        let (t, b) = (
            c["steps"].as_u64().unwrap() as usize,
            c["batch"].as_u64().unwrap() as usize,
        );
        let x = arr(&c["input"]).unwrap();
        let (h0, c0) = (arr(&c["h0"]), arr(&c["c0"]));
        let (y, yh, yc) = (
            arr(&c["output"]).unwrap(),
            arr(&c["h_n"]).unwrap(),
            arr(&c["c_n"]),
        );
        let lens: Option<Vec<i32>> = c["seq_lens"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_i64().unwrap() as i32).collect());
        for isa in Isa::available() {
            let m = model_of(&c, isa);
            let d = m.spec().directions();
            // Layout 0: every tensor as ONNX Runtime took and gave it.
            let seq = Sequence {
                h0: h0.as_deref(),
                c0: c0.as_deref(),
                lengths: lens.as_deref().map(SeqLens::I32),
                layout: SequenceLayout::Onnx0,
                ..Sequence::new(&x, t, b)
            };
            let o = run(&m, &seq).unwrap();
            let worst = max_diff(&o.y, &y).max(max_diff(&o.hn, &yh));
            let worst = yc.as_ref().map_or(worst, |w| worst.max(max_diff(&o.cn, w)));
            assert!(worst <= TOL, "{name} layout 0 on {isa}: {worst:e}");
            // Layout 1: X [B, T, I], states [B, D, H], Y [B, T, D, H].
            let x1 = swap01(&x, t, b);
            let (h1, c1) = (
                h0.as_deref().map(|v| swap01(v, d, b)),
                c0.as_deref().map(|v| swap01(v, d, b)),
            );
            let seq = Sequence {
                h0: h1.as_deref(),
                c0: c1.as_deref(),
                lengths: lens.as_deref().map(SeqLens::I32),
                layout: SequenceLayout::Onnx1,
                ..Sequence::new(&x1, t, b)
            };
            let o1 = run(&m, &seq).unwrap();
            // Y [T, D, B, H] → [B, T, D, H]: [T·D, B, H] → [B, T·D, H].
            assert_eq!(o1.y, swap01(&o.y, t * d, b), "{name} layout 1 Y on {isa}");
            assert_eq!(o1.hn, swap01(&o.hn, d, b), "{name} layout 1 Y_h");
            if yc.is_some() {
                assert_eq!(o1.cn, swap01(&o.cn, d, b), "{name} layout 1 Y_c");
            }
            let d1 = max_diff(&o1.y, &swap01(&y, t * d, b));
            assert!(d1 <= TOL, "{name} layout 1 on {isa}: {d1:e}");
        }
    }
}

#[test]
fn lengths_in_any_integer_type_give_the_same_bits() {
    for name in ["onnx_lstm_seqlens", "onnx_gru_lbr0_bi_seqlens"] {
        let c = vector(name);
        let (t, b) = (
            c["steps"].as_u64().unwrap() as usize,
            c["batch"].as_u64().unwrap() as usize,
        );
        let x = arr(&c["input"]).unwrap();
        let h0 = arr(&c["h0"]);
        let lens: Vec<usize> = c["seq_lens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert!(lens.iter().any(|&l| l < t), "{name}: no padding");
        let l32: Vec<i32> = lens.iter().map(|&v| v as i32).collect();
        let l64: Vec<i64> = lens.iter().map(|&v| v as i64).collect();
        let m = model_of(&c, Isa::detect());
        let base = Sequence {
            h0: h0.as_deref(),
            ..Sequence::new(&x, t, b)
        };
        let want = run(
            &m,
            &Sequence {
                seq_lens: Some(&lens),
                ..base
            },
        )
        .unwrap();
        for l in [
            SeqLens::I32(&l32),
            SeqLens::I64(&l64),
            SeqLens::Usize(&lens),
        ] {
            let o = run(
                &m,
                &Sequence {
                    lengths: Some(l),
                    ..base
                },
            )
            .unwrap();
            assert_eq!((&o.y, &o.hn), (&want.y, &want.hn), "{name} {l:?}");
        }
    }
}

#[test]
fn pytorch_batch_first_with_int64_lengths() {
    // PyTorch's layout is the native one (batch_first = batch_major, states
    // [L·D, B, H] either way): the batch-first vectors match with int64
    // lengths (full lengths: PyTorch's packed sequences give what these
    // vectors hold).
    for name in [
        "torch_gru_batch_first",
        "torch_lstm_batch_first",
        "torch_lstm_proj_bi_bf",
    ] {
        let c = vector(name);
        assert_eq!(c["batch_first"].as_bool(), Some(true));
        let (t, b) = (
            c["steps"].as_u64().unwrap() as usize,
            c["batch"].as_u64().unwrap() as usize,
        );
        let x = arr(&c["input"]).unwrap();
        let (h0, c0) = (arr(&c["h0"]), arr(&c["c0"]));
        let full = vec![t as i64; b];
        for isa in Isa::available() {
            let m = model_of(&c, isa);
            let seq = Sequence {
                batch_major: true,
                h0: h0.as_deref(),
                c0: c0.as_deref(),
                lengths: Some(SeqLens::I64(&full)),
                ..Sequence::new(&x, t, b)
            };
            let o = run(&m, &seq).unwrap();
            let mut worst = max_diff(&o.y, &arr(&c["output"]).unwrap())
                .max(max_diff(&o.hn, &arr(&c["h_n"]).unwrap()));
            if let Some(w) = arr(&c["c_n"]) {
                worst = worst.max(max_diff(&o.cn, &w));
            }
            assert!(worst <= TOL, "{name} on {isa}: {worst:e}");
        }
    }
}

#[test]
fn layout_and_length_errors() {
    let c = vector("onnx_lstm_seqlens");
    let (t, b) = (
        c["steps"].as_u64().unwrap() as usize,
        c["batch"].as_u64().unwrap() as usize,
    );
    let x = arr(&c["input"]).unwrap();
    let m = model_of(&c, Isa::Scalar);
    let base = Sequence::new(&x, t, b);
    let err = |seq: Sequence<'_>| match run(&m, &seq) {
        Err(Error::InvalidArgument(msg)) => msg,
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("expected an error"),
    };
    let neg = vec![3i32, -1, 2];
    let m1 = err(Sequence {
        lengths: Some(SeqLens::I32(&neg)),
        ..base
    });
    assert!(m1.contains("entry 1 is -1"), "{m1}");
    let big = vec![3i64, 2, t as i64 + 1];
    let m2 = err(Sequence {
        lengths: Some(SeqLens::I64(&big)),
        ..base
    });
    assert!(m2.contains(&format!("entry 2 is {}", t + 1)), "{m2}");
    let lens = vec![1usize; b];
    let m3 = err(Sequence {
        seq_lens: Some(&lens),
        lengths: Some(SeqLens::Usize(&lens)),
        ..base
    });
    assert!(m3.contains("both"), "{m3}");
    let m4 = err(Sequence {
        batch_major: true,
        layout: SequenceLayout::Onnx1,
        ..base
    });
    assert!(m4.contains("batch_major"), "{m4}");
    let short = [1i32];
    assert!(matches!(
        run(
            &m,
            &Sequence {
                lengths: Some(SeqLens::I32(&short)),
                ..base
            }
        ),
        Err(Error::SizeMismatch { .. })
    ));
    // The reference runs refuse what they do not implement.
    let r = rnncell::reference::plain_run(
        m.spec(),
        &common::random_weights(m.spec(), 1),
        &Sequence {
            layout: SequenceLayout::Onnx0,
            ..base
        },
    );
    assert!(matches!(r, Err(Error::Unsupported(_))), "{r:?}");
}
