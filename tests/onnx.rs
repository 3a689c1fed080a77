//! The ONNX loader (src/loader/onnx): models exported by `torch.onnx.export`,
//! ONNX's backend node tests, a silero-vad-like graph with constant folding in
//! an `If` branch, float16/bfloat16 weights, and the errors. Data from
//! `scripts/onnx_vectors.py` under tests/onnx/ (expected outputs computed by
//! ONNX Runtime, stored as TensorProto files).

mod common;

// The crate's own prost messages, to decode the TensorProto files.
#[path = "../src/loader/onnx/proto.rs"]
#[allow(missing_docs, unreachable_pub)]
mod proto;

use std::path::PathBuf;

use prost::Message;
use rnncell::*;

fn dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx")
        .join(case)
}

/// A TensorProto file: (dims, values as f64; float32 or int32/int64).
fn pb(case: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(dir(case).join(format!("{name}.pb"))).unwrap();
    let t = proto::TensorProto::decode(bytes.as_slice()).unwrap();
    let dims = t.dims.iter().map(|&d| d as usize).collect();
    let raw = t.raw_data.unwrap_or_default();
    let v = match t.data_type.unwrap_or(0) {
        proto::data_type::FLOAT if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        proto::data_type::FLOAT => t.float_data.iter().map(|&x| x as f64).collect(),
        proto::data_type::INT32 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        proto::data_type::INT32 => t.int32_data.iter().map(|&x| x as f64).collect(),
        proto::data_type::INT64 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("{case}/{name}: data type {other}"),
    };
    (dims, v)
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn model_bytes(case: &str) -> Vec<u8> {
    std::fs::read(dir(case).join("model.onnx")).unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: max |error| {worst:e} > {tol:e}");
}

/// Runs `m` over time-major x [T, B, I]; returns output [T, B, D·H] and
/// h_n [D·L, B, H].
fn run(
    m: &Model,
    x: &[f32],
    t: usize,
    b: usize,
    h0: Option<&[f32]>,
    c0: Option<&[f32]>,
    lens: Option<&[usize]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let s = m.spec();
    let d = s.directions();
    let mut y = vec![0.0f32; t * b * s.output_size()];
    let mut hn = vec![0.0f32; s.num_layers * d * b * s.state_size()];
    let mut cn = vec![0.0f32; s.num_layers * d * b * s.hidden_size];
    let mut seq = Sequence::new(x, t, b);
    seq.h0 = h0;
    seq.c0 = c0;
    seq.seq_lens = lens;
    let lstm = s.has_cell_state();
    m.run(
        &seq,
        &mut SequenceOutput {
            output: &mut y,
            h_n: Some(&mut hn),
            c_n: if lstm { Some(&mut cn) } else { None },
        },
    )
    .unwrap();
    (y, hn, cn)
}

// ---------------------------------------------------------------------------
// (a) torch.onnx.export

#[test]
fn torch_exports_match_onnx_runtime() {
    let cases = [
        ("lstm_1l", "LSTM", 1, false),
        ("lstm_2l_bi", "LSTM", 2, true),
        ("lstm_nobias", "LSTM", 1, false),
        ("gru_2l", "GRU", 2, false),
        ("gru_bi_nobias", "GRU", 1, true),
        ("rnn_2l_bi", "RNN", 2, true),
        ("rnn_relu", "RNN", 1, false),
    ];
    for (case, op, layers, bi) in cases {
        let case = format!("torch/{case}");
        let bytes = model_bytes(&case);
        let nodes = onnx_nodes(&bytes).unwrap();
        assert_eq!(nodes.len(), layers, "{case}: {nodes:?}");
        assert!(
            nodes.iter().all(|n| n.op_type == op && n.error.is_none()),
            "{case}: {nodes:?}"
        );
        assert_eq!(nodes[0].input_size, 5);
        assert_eq!(nodes[0].hidden_size, 7);
        if layers == 2 {
            assert_eq!(nodes[0].next, [nodes[1].name.clone()], "{case}");
            assert_eq!(nodes[1].input_size, if bi { 14 } else { 7 });
        }
        let (xd, x) = pb(&case, "X");
        let (_, want) = pb(&case, "Y");
        let (t, b) = (xd[0], xd[1]);
        for isa in common::isas() {
            // No selection: the model's one chain.
            let m = load_onnx_bytes(&bytes, &OnnxOptions::new().isa(isa)).unwrap();
            let s = m.spec();
            assert_eq!(
                (s.num_layers, s.directions(), s.input_size),
                (layers, 1 + bi as usize, 5)
            );
            let (y, _, _) = run(&m, &f32s(&x), t, b, None, None, None);
            assert_close(&format!("{case} on {isa}"), &y, &want, 1e-5);
        }
        // From the file, the chain named explicitly.
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let m = load_onnx(
            dir(&case).join("model.onnx"),
            &OnnxOptions::new().nodes(&names),
        )
        .unwrap();
        let (y, _, _) = run(&m, &f32s(&x), t, b, None, None, None);
        assert_close(&case, &y, &want, 1e-5);
        if layers == 2 {
            // The first layer alone is a model too; the second alone takes D·H inputs.
            let m0 = load_onnx_bytes(&bytes, &OnnxOptions::new().node(&names[0])).unwrap();
            assert_eq!(m0.spec().num_layers, 1);
            let m1 = load_onnx_bytes(&bytes, &OnnxOptions::new().node(&names[1])).unwrap();
            assert_eq!(m1.spec().input_size, if bi { 14 } else { 7 });
            // Reversed order does not chain.
            let rev = [names[1].clone(), names[0].clone()];
            let e = load_onnx_bytes(&bytes, &OnnxOptions::new().nodes(rev)).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains("does not take")),
                "{e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// (b) ONNX backend node tests

/// [B, T, ...] ↔ [T, B, ...] for `inner` trailing elements.
fn swap01(v: &[f32], a: usize, b: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..a {
        for j in 0..b {
            let src = (i * b + j) * inner;
            let dst = (j * a + i) * inner;
            out[dst..dst + inner].copy_from_slice(&v[src..src + inner]);
        }
    }
    out
}

#[test]
fn onnx_backend_node_tests() {
    let mut names: Vec<String> = std::fs::read_dir(dir("node"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 17, "{names:?}");
    for name in names {
        let case = format!("node/{name}");
        let bytes = model_bytes(&case);
        let info = &onnx_nodes(&bytes).unwrap()[0];
        assert!(info.error.is_none(), "{case}: {info:?}");
        let m = load_onnx_bytes(&bytes, &OnnxOptions::new()).unwrap();
        let s = *m.spec();
        let (d, h) = (s.directions(), s.hidden_size);
        let batchwise = info.layout == 1;
        let (xd, x) = pb(&case, "X");
        let (t, b) = if batchwise {
            (xd[1], xd[0])
        } else {
            (xd[0], xd[1])
        };
        let mut x = f32s(&x);
        if batchwise {
            x = swap01(&x, b, t, s.input_size);
        }
        let f = |n: &str| dir(&case).join(format!("{n}.pb")).exists();
        let state = |n: &str| {
            f(n).then(|| {
                let v = f32s(&pb(&case, n).1);
                // layout 1: [B, D, H] → ours [D, B, H]
                if batchwise { swap01(&v, b, d, h) } else { v }
            })
        };
        let (h0, c0) = (state("initial_h"), state("initial_c"));
        let lens: Option<Vec<usize>> = f("sequence_lens").then(|| {
            pb(&case, "sequence_lens")
                .1
                .iter()
                .map(|&v| v as usize)
                .collect()
        });
        let (y, hn, cn) = run(&m, &x, t, b, h0.as_deref(), c0.as_deref(), lens.as_deref());
        if f("Y") {
            // ONNX Y: [T, D, B, H] (layout 1: [B, T, D, H]); ours [T, B, D·H].
            let (yd, want) = pb(&case, "Y");
            let mut ours = vec![0.0f32; want.len()];
            for ti in 0..t {
                for di in 0..d {
                    for bi in 0..b {
                        for hi in 0..h {
                            let v = y[(ti * b + bi) * d * h + di * h + hi];
                            let at = if batchwise {
                                ((bi * t + ti) * d + di) * h + hi
                            } else {
                                ((ti * d + di) * b + bi) * h + hi
                            };
                            ours[at] = v;
                        }
                    }
                }
            }
            assert_eq!(yd.iter().product::<usize>(), ours.len());
            assert_close(&format!("{case} Y"), &ours, &want, 1e-5);
        }
        let last = |v: &[f32]| {
            if batchwise {
                swap01(v, d, b, h)
            } else {
                v.to_vec()
            }
        };
        if f("Y_h") {
            assert_close(
                &format!("{case} Y_h"),
                &last(&hn),
                &pb(&case, "Y_h").1,
                1e-5,
            );
        }
        if f("Y_c") {
            assert_close(
                &format!("{case} Y_c"),
                &last(&cn),
                &pb(&case, "Y_c").1,
                1e-5,
            );
        }
    }
}

// ---------------------------------------------------------------------------
// (c) silero-vad's pattern: an LSTM in an If branch, weights folded

#[test]
fn silero_like_graph_folds_in_subgraphs() {
    for opset in ["silero/opset11", "silero/opset17"] {
        let bytes = model_bytes(opset);
        let nodes = onnx_nodes(&bytes).unwrap();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        let lstm = nodes.iter().find(|n| n.op_type == "LSTM").unwrap();
        let gru = nodes.iter().find(|n| n.op_type == "GRU").unwrap();
        assert_eq!(lstm.graph, "branch.then_branch");
        assert_eq!(lstm.qualified_name(), "branch.then_branch::encoder_lstm");
        assert_eq!(gru.graph, "branch.else_branch");
        assert_eq!(gru.name, "GRU#0", "an unnamed node is OP#index");
        assert!(lstm.error.is_none() && gru.error.is_none(), "{nodes:?}");
        assert_eq!(
            (lstm.input_size, lstm.hidden_size, lstm.has_bias),
            (5, 7, true)
        );

        // Two chains and no selection: an error naming both.
        let e = load_onnx_bytes(&bytes, &OnnxOptions::new()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("encoder_lstm") && msg.contains("GRU#0"),
            "{msg}"
        );

        let (xd, x) = pb(opset, "X");
        let (t, b) = (xd[0], xd[1]);
        let x = f32s(&x);
        let m = load_onnx_bytes(&bytes, &OnnxOptions::new().node("encoder_lstm")).unwrap();
        let (y, _, _) = run(&m, &x, t, b, None, None, None);
        assert_close(&format!("{opset} LSTM"), &y, &pb(opset, "Y_lstm").1, 1e-5);
        // The GRU reads outer-scope initializers; selected by qualified name.
        let m = load_onnx_bytes(
            &bytes,
            &OnnxOptions::new().node("branch.else_branch::GRU#0"),
        )
        .unwrap();
        assert!(matches!(
            m.spec().cell,
            CellKind::Gru(GruOptions {
                linear_before_reset: false,
                ..
            })
        ));
        let (y, _, _) = run(&m, &x, t, b, None, None, None);
        assert_close(&format!("{opset} GRU"), &y, &pb(opset, "Y_gru").1, 1e-5);
    }
}

// ---------------------------------------------------------------------------
// (e) float16 / bfloat16 initializers

#[test]
fn f16_weights_keep_their_precision() {
    let bytes = model_bytes("f16");
    let w = f32s(&pb("f16", "W32").1);
    let r = f32s(&pb("f16", "R32").1);
    let bias = f32s(&pb("f16", "B32").1);
    let spec = ModelSpec::new(CellKind::lstm(), 3, 4);
    let t = [OnnxTensors {
        w: &w,
        r: &r,
        b: Some(&bias),
        p: None,
    }];
    let x: Vec<f32> = (0..5 * 2 * 3)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2)
        .collect();
    for isa in common::isas() {
        let stored =
            load_onnx_bytes(&bytes, &OnnxOptions::new().isa(isa).stored_precision()).unwrap();
        assert_eq!(stored.precision(), WeightPrecision::F16);
        let want =
            Model::from_onnx_with_isa(spec.precision(WeightPrecision::F16), &t, isa).unwrap();
        assert_eq!(
            run(&stored, &x, 5, 2, None, None, None).0,
            run(&want, &x, 5, 2, None, None, None).0
        );
        let f32m = load_onnx_bytes(&bytes, &OnnxOptions::new().isa(isa)).unwrap();
        assert_eq!(f32m.precision(), WeightPrecision::F32);
        let want = Model::from_onnx_with_isa(spec, &t, isa).unwrap();
        assert_eq!(
            run(&f32m, &x, 5, 2, None, None, None).0,
            run(&want, &x, 5, 2, None, None, None).0
        );
    }
    // The silero graph casts an f16 constant to float for W but R is f32:
    // stored precision is then mixed, an error naming both tensors.
    let e = load_onnx_bytes(
        &model_bytes("silero/opset17"),
        &OnnxOptions::new().node("encoder_lstm").stored_precision(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Format(m) if m.contains("\"W\"") && m.contains("\"R\"")),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// Chains and selection

#[test]
fn chained_nodes_stack_and_others_are_left_out() {
    let bytes = std::fs::read(dir("errors/chain.onnx")).unwrap();
    let nodes = onnx_nodes(&bytes).unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["l0", "l1", "other"]);
    assert_eq!(nodes[0].next, ["l1"]);
    let (xd, x) = pb("errors", "chain_X");
    let x = f32s(&x);
    let m = load_onnx_bytes(&bytes, &OnnxOptions::new().nodes(["l0", "l1"])).unwrap();
    assert_eq!(m.spec().num_layers, 2);
    let (y, _, _) = run(&m, &x, xd[0], xd[1], None, None, None);
    assert_close("chain", &y, &pb("errors", "chain_Y").1, 1e-5);
    let m = load_onnx_bytes(&bytes, &OnnxOptions::new().node("other")).unwrap();
    let (y, _, _) = run(&m, &x, xd[0], xd[1], None, None, None);
    assert_close("other", &y, &pb("errors", "other_Y").1, 1e-5);
    // No selection: two chains.
    let e = load_onnx_bytes(&bytes, &OnnxOptions::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[l0 → l1]") && e.contains("[other]"), "{e}");
    // A name that does not exist.
    let e = load_onnx_bytes(&bytes, &OnnxOptions::new().node("l2")).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("\"l2\"") && m.contains("l0")),
        "{e}"
    );
    // l0 → other does not chain.
    let e = load_onnx_bytes(&bytes, &OnnxOptions::new().nodes(["l0", "other"])).unwrap_err();
    assert!(e.to_string().contains("\"other\""), "{e}");
}

// ---------------------------------------------------------------------------
// (d) errors

fn err_of(file: &str, opts: &OnnxOptions) -> String {
    let path = dir("errors").join(file);
    let e = load_onnx(&path, opts).unwrap_err();
    let bytes = std::fs::read(&path).unwrap();
    let e2 = load_onnx_bytes(&bytes, opts).unwrap_err();
    // The path variant prefixes the path to format errors; the rest is the same.
    if let Error::Format(m) = &e {
        assert!(m.starts_with(&format!("{}: ", path.display())), "{e}");
    } else {
        assert_eq!(e, e2);
    }
    e2.to_string()
}

#[test]
fn errors_name_the_node_and_tensor() {
    let o = OnnxOptions::new();
    let e = err_of("external.onnx", &o);
    assert!(
        e.contains("\"lstm\"") && e.contains("\"W\"") && e.contains("weights.bin"),
        "{e}"
    );
    let e = err_of("sparse.onnx", &o);
    assert!(
        e.contains("\"lstm\"") && e.contains("\"W\"") && e.contains("sparse"),
        "{e}"
    );
    let e = err_of("graph_input.onnx", &o);
    assert!(
        e.contains("\"lstm\"")
            && e.contains("\"W\"")
            && e.contains("\"W_in\"")
            && e.contains("input"),
        "{e}"
    );
    let e = err_of("activation.onnx", &o);
    assert!(
        e.contains("\"lstm\"") && e.contains("Gelu") && e.starts_with("unsupported"),
        "{e}"
    );
    let e = err_of("two_chains.onnx", &o);
    assert!(e.contains("first") && e.contains("second"), "{e}");
    let e = err_of("bad_shape.onnx", &o);
    assert!(
        e.contains("\"lstm\"") && e.contains("\"W\"") && e.contains("[1, 7, 3]"),
        "{e}"
    );
    // onnx_nodes lists an unloadable node with the reason.
    let bytes = std::fs::read(dir("errors/activation.onnx")).unwrap();
    let n = onnx_nodes(&bytes).unwrap();
    assert!(n[0].error.as_deref().unwrap().contains("Gelu"), "{n:?}");
}

#[test]
fn truncated_and_garbage_bytes_are_format_errors() {
    let bytes = model_bytes("torch/lstm_2l_bi");
    for cut in [1, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let r = load_onnx_bytes(&bytes[..cut], &OnnxOptions::new());
        assert!(
            matches!(&r, Err(Error::Format(_) | Error::InvalidArgument(_))),
            "cut {cut}: {r:?}"
        );
        let _ = onnx_nodes(&bytes[..cut]);
    }
    let e = load_onnx_bytes(&[0xff; 64], &OnnxOptions::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Format(m) if m.contains("protobuf")),
        "{e}"
    );
    // A valid protobuf that is not a model: no graph.
    let e = load_onnx_bytes(&[], &OnnxOptions::new()).unwrap_err();
    assert!(e.to_string().contains("no graph"), "{e}");
    // Flipping bytes never panics.
    let mut rng = 0x1234_5678u64;
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (rng >> 33) as usize % b.len();
            b[i] = (rng >> 20) as u8;
        }
        let _ = load_onnx_bytes(&b, &OnnxOptions::new().isa(Isa::Scalar));
        let _ = onnx_nodes(&b);
    }
    // A directory is an I/O error naming it.
    let e = load_onnx(dir("errors"), &OnnxOptions::new()).unwrap_err();
    assert!(matches!(&e, Error::Io(m) if m.contains("directory")), "{e}");
}

fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn many_empty_messages_are_refused_before_decoding() {
    // A graph with one node of a million empty attributes: 2 MB of file,
    // hundreds of MB if decoded. Refused by the size bound, before prost runs.
    let n = 1 << 20;
    let node: Vec<u8> = [0x2a, 0x00].repeat(n);
    let mut graph = vec![0x0a];
    varint(node.len(), &mut graph);
    graph.extend_from_slice(&node);
    let mut model = vec![0x3a];
    varint(graph.len(), &mut model);
    model.extend_from_slice(&graph);
    let e = load_onnx_bytes(&model, &OnnxOptions::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Format(m) if m.contains("memory")),
        "{e}"
    );
    assert!(onnx_nodes(&model).is_err());
    // A few thousand are fine (and there is no recurrent node).
    let mut small = model.clone();
    small.truncate(0);
    let node: Vec<u8> = [0x2a, 0x00].repeat(1000);
    let mut graph = vec![0x0a];
    varint(node.len(), &mut graph);
    graph.extend_from_slice(&node);
    small.push(0x3a);
    varint(graph.len(), &mut small);
    small.extend_from_slice(&graph);
    let e = load_onnx_bytes(&small, &OnnxOptions::new()).unwrap_err();
    assert!(e.to_string().contains("no LSTM, GRU or RNN node"), "{e}");
}

/// ONNX activation lists load: a bidirectional GRU with HardSigmoid and
/// Softsign forward, Sigmoid and Elu backward (α/β consumed across both
/// directions), matched to ONNX Runtime on every ISA.
#[test]
fn activations_load_per_direction() {
    let case = "acts";
    let bytes = model_bytes(case);
    let nodes = onnx_nodes(&bytes).unwrap();
    assert!(nodes[0].error.is_none(), "{nodes:?}");
    let (xd, x) = pb(case, "X");
    let (_, want) = pb(case, "Y");
    for isa in common::isas() {
        let m = load_onnx_bytes(&bytes, &OnnxOptions::new().isa(isa)).unwrap();
        let a = m.spec().activations.expect("activations");
        assert_eq!(
            a[0].f,
            Activation::HardSigmoid {
                alpha: 0.3,
                beta: 0.45
            }
        );
        assert_eq!(a[0].g, Activation::Softsign);
        assert_eq!(
            (a[1].f, a[1].g),
            (Activation::Sigmoid, Activation::Elu { alpha: 0.8 })
        );
        let (y, _, _) = run(&m, &f32s(&x), xd[0], xd[1], None, None, None);
        assert_close(&format!("{case} on {isa}"), &y, &want, 1e-5);
    }
}
