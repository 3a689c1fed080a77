//! The safetensors loader: every committed file in tests/safetensors/
//! (written by scripts/gen_safetensors.py from PyTorch and Keras 3) loads,
//! from its path and from memory, infers the right spec and reproduces the
//! framework's outputs within 1e-5 on every ISA of this machine; and every
//! kind of bad file gives the right error, naming the tensor, never a panic.

mod common;
use common::max_diff;

use std::path::{Path, PathBuf};

use rnncell::*;
use serde_json::{Value, json};

const TOL: f32 = 1e-5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safetensors")
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
}

fn cell_of(name: &str) -> CellKind {
    match name {
        "lstm" => CellKind::lstm(),
        "gru" => CellKind::gru(),
        "rnn_tanh" => CellKind::rnn_tanh(),
        "rnn_relu" => CellKind::rnn_relu(),
        other => panic!("unknown cell {other}"),
    }
}

fn opts_of(c: &Value) -> SafetensorsOptions {
    let cell = cell_of(c["cell"].as_str().unwrap());
    let o = match c["format"].as_str().unwrap() {
        "pytorch" => SafetensorsOptions::pytorch(cell),
        "keras" => SafetensorsOptions::keras(cell),
        f => panic!("unknown format {f}"),
    };
    let merge = match c["merge"].as_str().unwrap() {
        "concat" => MergeMode::Concat,
        "sum" => MergeMode::Sum,
        m => panic!("unknown merge {m}"),
    };
    o.prefix(c["prefix"].as_str().unwrap())
        .merge(merge)
        .keras_layers(
            c["keras_layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        )
}

fn cases() -> Vec<Value> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v.iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// Runs the case's input; returns (output, h_n, c_n).
fn run(m: &Model, c: &Value) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let sp = m.spec();
    let (t, b) = (
        c["steps"].as_u64().unwrap() as usize,
        c["batch"].as_u64().unwrap() as usize,
    );
    let x = floats(&c["input"]).unwrap();
    let mut seq = Sequence::new(&x, t, b);
    seq.batch_major = c["batch_major"].as_bool().unwrap();
    let ld = sp.num_layers * sp.directions();
    let mut y = vec![f32::NAN; t * b * sp.output_size()];
    let mut hn = vec![f32::NAN; ld * b * sp.state_size()];
    let mut cn = vec![
        f32::NAN;
        if sp.has_cell_state() {
            ld * b * sp.hidden_size
        } else {
            0
        }
    ];
    let lstm = sp.has_cell_state();
    m.run(
        &seq,
        &mut SequenceOutput {
            output: &mut y,
            h_n: Some(&mut hn),
            c_n: lstm.then_some(&mut cn[..]),
        },
    )
    .unwrap();
    (y, hn, cn)
}

#[test]
fn committed_files_match_the_frameworks() {
    let cases = cases();
    assert!(cases.len() >= 17, "only {} cases", cases.len());
    let (mut torch, mut keras, mut half) = (0, 0, 0);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let path = dir().join(c["file"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let s = &c["spec"];
        let n = |k: &str| s[k].as_u64().unwrap() as usize;
        match c["format"].as_str().unwrap() {
            "pytorch" => torch += 1,
            _ => keras += 1,
        }
        if c["dtype"].as_str().unwrap() != "f32" {
            half += 1;
        }
        let mut reference: Option<Vec<f32>> = None;
        for isa in Isa::available() {
            let opts = opts_of(c).isa(isa);
            let from_path = load_safetensors(&path, &opts)
                .unwrap_or_else(|e| panic!("{name}: loading {}: {e}", path.display()));
            let from_bytes = Model::from_safetensors_bytes(&bytes, &opts).unwrap();
            assert_eq!(from_path.isa(), isa);
            let sp = *from_path.spec();
            assert_eq!(sp, *from_bytes.spec(), "{name}");
            assert_eq!(sp.input_size, n("input_size"), "{name}");
            assert_eq!(sp.hidden_size, n("hidden_size"), "{name}");
            assert_eq!(sp.proj_size(), n("proj_size"), "{name}");
            assert_eq!(sp.num_layers, n("num_layers"), "{name}");
            assert_eq!(sp.output_size(), n("output_size"), "{name}");
            let bidi = s["bidirectional"].as_bool().unwrap();
            assert_eq!(sp.direction == Direction::Bidirectional, bidi, "{name}");
            if let CellKind::Gru(o) = sp.cell {
                let lbr = s["linear_before_reset"].as_bool().unwrap();
                assert_eq!(o.linear_before_reset, lbr, "{name}");
            }

            let (y, hn, cn) = run(&from_path, c);
            let (y2, hn2, cn2) = run(&from_bytes, c);
            assert_eq!((&y, &hn, &cn), (&y2, &hn2, &cn2), "{name}: path vs bytes");
            let want = floats(&c["output"]).unwrap();
            assert!(
                want.iter().any(|v| v.abs() > 0.05),
                "{name}: trivial expected output"
            );
            let d = max_diff(&y, &want);
            assert!(d <= TOL, "{name} on {isa}: output max |diff| {d:e}");
            if let Some(w) = floats(&c["h_n"]) {
                let d = max_diff(&hn, &w);
                assert!(d <= TOL, "{name} on {isa}: h_n max |diff| {d:e}");
            }
            if let Some(w) = floats(&c["c_n"]) {
                let d = max_diff(&cn, &w);
                assert!(d <= TOL, "{name} on {isa}: c_n max |diff| {d:e}");
            }
            // bit-identical across ISAs
            match &reference {
                None => reference = Some(y),
                Some(r) => assert_eq!(r, &y, "{name}: {isa} differs from scalar"),
            }
        }
    }
    assert!(
        torch >= 10 && keras >= 7 && half >= 3,
        "{torch} {keras} {half}"
    );
}

#[test]
fn streaming_matches_the_sequence_run() {
    // Forward-only files, stepped one stream at a time: torch_lstm_proj_1l
    // (nn.LSTM) and the nn.LSTMCell/GRUCell/RNNCell files, whose expected
    // outputs are torch's cell module stepped by hand.
    for name in [
        "torch_lstm_proj_1l",
        "torch_lstmcell",
        "torch_grucell_prefixed",
        "torch_rnncell_relu_nobias",
    ] {
        let c = case(name);
        for isa in Isa::available() {
            let path = dir().join(format!("{name}.safetensors"));
            let m = load_safetensors(path, &opts_of(&c).isa(isa)).unwrap();
            let (t, b, i) = (6, 2, m.spec().input_size);
            let x = floats(&c["input"]).unwrap();
            let want = floats(&c["output"]).unwrap();
            let hr = m.spec().state_size();
            for s in 0..b {
                let mut st = m.new_state();
                let mut y = vec![0.0; hr];
                for step in 0..t {
                    m.step(&mut st, &x[(step * b + s) * i..][..i], &mut y)
                        .unwrap();
                    let d = max_diff(&y, &want[(step * b + s) * hr..][..hr]);
                    assert!(d <= TOL, "{name} on {isa}: stream {s} step {step}: {d:e}");
                }
                if let Some(cn) = floats(&c["c_n"]) {
                    let hd = m.spec().hidden_size;
                    let d = max_diff(st.c(0).unwrap(), &cn[s * hd..][..hd]);
                    assert!(d <= TOL, "{name} on {isa}: c_n of stream {s}: {d:e}");
                }
            }
        }
    }
}

#[test]
fn cell_modules_load_with_their_names() {
    // The three committed cell files: one forward layer, sizes from the
    // tensors, the file's own names in what the loader reports.
    for (name, cell, module) in [
        ("torch_lstmcell", CellKind::lstm(), "LSTMCell"),
        ("torch_grucell_prefixed", CellKind::gru(), "GRUCell"),
        ("torch_rnncell_relu_nobias", CellKind::rnn_relu(), "RNNCell"),
    ] {
        let c = case(name);
        assert_eq!(c["module"].as_str(), Some(module));
        let bytes = committed(&format!("{name}.safetensors"));
        assert!(
            decode(&bytes).iter().all(|e| !e.name.contains("_l0")),
            "{name} is not a cell state_dict"
        );
        let m = load_safetensors_bytes(&bytes, &opts_of(&c)).unwrap();
        let sp = m.spec();
        assert_eq!(
            (sp.num_layers, sp.direction, sp.proj_size()),
            (1, Direction::Forward, 0)
        );
        assert_eq!(sp.cell.gates(), cell.gates(), "{name}");
    }
    // The prefixed file: its siblings are outside "decoder.rnn."; without
    // the prefix they are unexpected, and a shorter prefix takes them in.
    let bytes = committed("torch_grucell_prefixed.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::gru());
    for prefix in ["", "decoder."] {
        format_err(
            load_safetensors_bytes(&bytes, &opts.clone().prefix(prefix)),
            &["unexpected tensor", "nn.LSTMCell/GRUCell/RNNCell"],
        );
    }
    // A hand-made LSTMCell state_dict under a prefix, with and without biases.
    let (i, h) = (3, 4);
    let cell = |with_bias: bool| {
        let mut v = vec![
            f32_entry("dec.rnn.weight_ih", &[4 * h, i], 1),
            f32_entry("dec.rnn.weight_hh", &[4 * h, h], 2),
        ];
        if with_bias {
            v.push(f32_entry("dec.rnn.bias_ih", &[4 * h], 3));
            v.push(f32_entry("dec.rnn.bias_hh", &[4 * h], 4));
        }
        v
    };
    let lstm = SafetensorsOptions::pytorch(CellKind::lstm())
        .prefix("dec.rnn.")
        .isa(Isa::Scalar);
    for with_bias in [true, false] {
        let m = load_safetensors_bytes(&encode(&cell(with_bias)), &lstm).unwrap();
        assert_eq!((m.spec().input_size, m.spec().hidden_size), (i, h));
    }
    // The cell names are the same weights as nn.LSTM's `_l0` names: the same
    // model, bit for bit.
    let renamed: Vec<Entry> = cell(true)
        .into_iter()
        .map(|mut e| {
            e.name.push_str("_l0");
            e
        })
        .collect();
    let a = load_safetensors_bytes(&encode(&cell(true)), &lstm).unwrap();
    let b = load_safetensors_bytes(&encode(&renamed), &lstm).unwrap();
    let x = [0.5f32, -0.25, 0.75, 0.1, 0.2, -0.3];
    let seq = Sequence::new(&x, 2, 1);
    let ya = common::run_model(&a, &seq);
    assert_eq!(ya, common::run_model(&b, &seq));
    assert!(ya.0.iter().any(|v| v.abs() > 0.01));

    // Errors: a bias without its pair, a shape that does not fit, a cell
    // name with weight_hr (cell modules have no projection).
    let mut one_bias = cell(false);
    one_bias.push(f32_entry("dec.rnn.bias_hh", &[4 * h], 4));
    format_err(
        load_safetensors_bytes(&encode(&one_bias), &lstm),
        &["missing", "\"dec.rnn.bias_ih\""],
    );
    let mut bad = cell(true);
    bad[1] = f32_entry("dec.rnn.weight_hh", &[4 * h, h + 1], 2);
    format_err(
        load_safetensors_bytes(&encode(&bad), &lstm),
        &["dec.rnn.weight_hh"],
    );
    let mut with_hr = cell(true);
    with_hr.push(f32_entry("dec.rnn.weight_hr", &[2, h], 5));
    format_err(
        load_safetensors_bytes(&encode(&with_hr), &lstm),
        &["unexpected tensor", "dec.rnn.weight_hr"],
    );
    format_err(
        load_safetensors_bytes(
            &encode(&cell(true)),
            &SafetensorsOptions::pytorch(CellKind::gru()).prefix("dec.rnn."),
        ),
        &["dec.rnn.weight_ih", "3 gates"],
    );
}

#[test]
fn mixing_module_and_cell_names_is_an_error() {
    // nn.LSTM names and nn.LSTMCell names under one prefix: an error naming
    // one tensor of each.
    let (i, h) = (3, 4);
    let mut v = vec![
        f32_entry("rnn.weight_ih_l0", &[4 * h, i], 1),
        f32_entry("rnn.weight_hh_l0", &[4 * h, h], 2),
    ];
    let opts = SafetensorsOptions::pytorch(CellKind::lstm()).prefix("rnn.");
    load_safetensors_bytes(&encode(&v), &opts).unwrap();
    v.push(f32_entry("rnn.bias_ih", &[4 * h], 3));
    let m = format_err(
        load_safetensors_bytes(&encode(&v), &opts),
        &[
            "mix",
            "\"rnn.bias_ih\"",
            "\"rnn.weight_hh_l0\"",
            "nn.LSTMCell",
        ],
    );
    assert!(m.contains("_l<k>"), "{m}");
    // The committed cell file with an nn.GRU tensor added.
    let mut e = committed_entries("torch_grucell_prefixed.safetensors");
    e.push(f32_entry("decoder.rnn.weight_hh_l0_reverse", &[9, 3], 7));
    format_err(
        load_safetensors_bytes(&encode(&e), &gru().prefix("decoder.rnn.")),
        &[
            "mix",
            "decoder.rnn.weight_hh_l0_reverse",
            "decoder.rnn.bias_hh",
        ],
    );
}

// --------------------------------------------------------------------------
// Building and mutating files
// --------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn header_of(file: &[u8]) -> (serde_json::Map<String, Value>, &[u8]) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let h = serde_json::from_slice(&file[8..8 + n]).unwrap();
    (h, &file[8 + n..])
}

fn decode(file: &[u8]) -> Vec<Entry> {
    let (h, data) = header_of(file);
    let mut v: Vec<(usize, Entry)> = h
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, i)| {
            let o = i["data_offsets"].as_array().unwrap();
            let (s, e) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            (
                s,
                Entry {
                    name: k.clone(),
                    dtype: i["dtype"].as_str().unwrap().to_string(),
                    shape: i["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    bytes: data[s..e].to_vec(),
                },
            )
        })
        .collect();
    v.sort_by_key(|(s, _)| *s);
    v.into_iter().map(|(_, e)| e).collect()
}

fn encode_raw(header: &Value, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for e in entries {
        let s = data.len();
        data.extend_from_slice(&e.bytes);
        header.insert(
            e.name.clone(),
            json!({"dtype": e.dtype, "shape": e.shape, "data_offsets": [s, data.len()]}),
        );
    }
    encode_raw(&Value::Object(header), &data)
}

fn f32_entry(name: &str, shape: &[usize], seed: u32) -> Entry {
    let n: usize = shape.iter().product();
    let bytes = (0..n)
        .flat_map(|i| {
            let v = (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32)
                - 0.5;
            v.to_le_bytes()
        })
        .collect();
    Entry {
        name: name.to_string(),
        dtype: "F32".into(),
        shape: shape.to_vec(),
        bytes,
    }
}

/// A PyTorch-named GRU state_dict: `layers` layers, input 3, hidden 5.
fn gru_entries(prefix: &str, layers: usize, bidi: bool) -> Vec<Entry> {
    let (i, h) = (3, 5);
    let mut v = Vec::new();
    for l in 0..layers {
        for d in 0..if bidi { 2 } else { 1 } {
            let sfx = if d == 1 { "_reverse" } else { "" };
            let input = if l == 0 {
                i
            } else {
                h * if bidi { 2 } else { 1 }
            };
            let s = (l * 10 + d * 5) as u32;
            v.push(f32_entry(
                &format!("{prefix}weight_ih_l{l}{sfx}"),
                &[3 * h, input],
                s,
            ));
            v.push(f32_entry(
                &format!("{prefix}weight_hh_l{l}{sfx}"),
                &[3 * h, h],
                s + 1,
            ));
            v.push(f32_entry(
                &format!("{prefix}bias_ih_l{l}{sfx}"),
                &[3 * h],
                s + 2,
            ));
            v.push(f32_entry(
                &format!("{prefix}bias_hh_l{l}{sfx}"),
                &[3 * h],
                s + 3,
            ));
        }
    }
    v
}

fn gru() -> SafetensorsOptions {
    SafetensorsOptions::pytorch(CellKind::gru()).isa(Isa::Scalar)
}

#[track_caller]
fn format_err(r: Result<Model>, needles: &[&str]) -> String {
    match r {
        Err(Error::Format(m)) => {
            for n in needles {
                assert!(m.contains(n), "error {m:?} does not mention {n:?}");
            }
            m
        }
        Err(e) => panic!("expected Error::Format mentioning {needles:?}, got {e:?}"),
        Ok(m) => panic!(
            "expected Error::Format mentioning {needles:?}, loaded {:?}",
            m.spec()
        ),
    }
}

fn committed(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

#[test]
fn hand_built_file_loads_and_is_inferred() {
    let file = encode(&gru_entries("", 2, true));
    let m = load_safetensors_bytes(&file, &gru()).unwrap();
    let sp = m.spec();
    assert_eq!((sp.input_size, sp.hidden_size, sp.num_layers), (3, 5, 2));
    assert_eq!(sp.direction, Direction::Bidirectional);
    // entry order in the file does not matter
    let mut rev = gru_entries("", 2, true);
    rev.reverse();
    let m2 = load_safetensors_bytes(&encode(&rev), &gru()).unwrap();
    let x: Vec<f32> = (0..4 * 3).map(|v| (v as f32 * 0.37).sin()).collect();
    let out = |m: &Model| {
        let mut y = vec![0.0; 4 * 10];
        m.run(
            &Sequence::new(&x, 4, 1),
            &mut SequenceOutput {
                output: &mut y,
                h_n: None,
                c_n: None,
            },
        )
        .unwrap();
        y
    };
    let y = out(&m);
    assert!(y.iter().any(|v| v.abs() > 0.01));
    assert_eq!(y, out(&m2));
}

#[test]
fn truncated_files() {
    let file = committed("torch_lstm_1l.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::lstm());
    let (h, _) = header_of(&file);
    let last = h
        .iter()
        .max_by_key(|(_, i)| i["data_offsets"][1].as_u64().unwrap())
        .unwrap()
        .0
        .clone();
    // losing the end of the data: the error names the last tensor
    format_err(
        load_safetensors_bytes(&file[..file.len() - 1], &opts),
        &[&last, "truncated"],
    );
    // every other cut is an error, never a panic
    for cut in 0..file.len() {
        let r = load_safetensors_bytes(&file[..cut], &opts);
        assert!(matches!(r, Err(Error::Format(_))), "cut at {cut}: {r:?}");
    }
    format_err(load_safetensors_bytes(&[], &opts), &["too short"]);
    format_err(
        load_safetensors_bytes(&file[..20], &opts),
        &["header length"],
    );
}

#[test]
fn header_length_lies() {
    let file = committed("torch_gru_2l_bi.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::gru());
    let n = u64::from_le_bytes(file[..8].try_into().unwrap());
    for lie in [
        n + 1,
        n - 1,
        n + 8,
        1,
        0,
        (file.len() - 8) as u64,
        u64::MAX,
        1 << 40,
    ] {
        let mut f = file.clone();
        f[..8].copy_from_slice(&lie.to_le_bytes());
        let m = format_err(load_safetensors_bytes(&f, &opts), &[]);
        assert!(
            m.contains("header") || m.contains("safetensors"),
            "length {lie}: {m}"
        );
    }
    let mut f = file.clone();
    f[..8].copy_from_slice(&(file.len() as u64).to_le_bytes());
    format_err(load_safetensors_bytes(&f, &opts), &["header length field"]);
}

#[test]
fn offsets_out_of_range_or_inconsistent() {
    let file = committed("torch_gru_1l_bf16.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::gru());
    let (h, data) = header_of(&file);
    let name = "weight_hh_l0";
    let [s, e] = [0, 1].map(|i| h[name]["data_offsets"][i].as_u64().unwrap());
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut h2 = h.clone();
        f(&mut h2);
        encode_raw(&Value::Object(h2), data)
    };
    let dl = data.len() as u64;
    // end past the data
    let f = with(&|h| h[name]["data_offsets"] = json!([s, dl + 4]));
    format_err(
        load_safetensors_bytes(&f, &opts),
        &[name, "lies about sizes"],
    );
    // huge offsets (overflow bait)
    let f = with(&|h| h[name]["data_offsets"] = json!([u64::MAX - 1, u64::MAX]));
    format_err(load_safetensors_bytes(&f, &opts), &[name]);
    // start after end
    let f = with(&|h| h[name]["data_offsets"] = json!([e, s]));
    format_err(load_safetensors_bytes(&f, &opts), &[name]);
    // a byte range that no longer matches shape × dtype
    let f = with(&|h| h[name]["data_offsets"] = json!([s, e - 2]));
    format_err(load_safetensors_bytes(&f, &opts), &[name, "needs"]);
    // two tensors overlapping (same range): sizes fit, the crate rejects the layout
    let b = h["bias_ih_l0"]["data_offsets"].clone();
    let f = with(&|h| h["bias_hh_l0"]["data_offsets"] = b.clone());
    format_err(
        load_safetensors_bytes(&f, &opts),
        &["not a valid safetensors file", "offset"],
    );
    // malformed offsets
    let f = with(&|h| h[name]["data_offsets"] = json!("zero"));
    format_err(load_safetensors_bytes(&f, &opts), &[name, "data_offsets"]);
    // a shape that claims more elements than the data has
    let f = with(&|h| h[name]["shape"] = json!([15, 6]));
    format_err(load_safetensors_bytes(&f, &opts), &[name, "needs"]);
    let f = with(&|h| h[name]["shape"] = json!([u64::MAX, u64::MAX]));
    format_err(load_safetensors_bytes(&f, &opts), &[name]);
    // not JSON at all
    let mut f = file.clone();
    f[8] = b'!';
    format_err(load_safetensors_bytes(&f, &opts), &["JSON"]);
}

#[test]
fn wrong_dtypes() {
    let entries = gru_entries("rnn.", 1, false);
    let opts = gru().prefix("rnn.");
    for (dtype, size) in [("I32", 4), ("U32", 4), ("F64", 8), ("I8", 1), ("I64", 8)] {
        for victim in 0..entries.len() {
            let mut e = entries.clone();
            let t = &mut e[victim];
            t.dtype = dtype.into();
            // a valid file: as many bytes as shape × dtype needs
            t.bytes
                .resize(t.shape.iter().product::<usize>() * size, 0x3c);
            let name = t.name.clone();
            format_err(load_safetensors_bytes(&encode(&e), &opts), &[&name, dtype]);
        }
    }
    // f16 and bf16 are accepted and widened
    let mut e = entries.clone();
    for t in &mut e {
        t.dtype = if t.name.contains("bias") {
            "F16"
        } else {
            "BF16"
        }
        .into();
        t.bytes = t.bytes.chunks(4).flat_map(|b| [b[2], b[3]]).collect();
    }
    let m = load_safetensors_bytes(&encode(&e), &opts).unwrap();
    assert_eq!(m.spec().hidden_size, 5);
    // a dtype outside the prefix (torch's int64 num_batches_tracked) is fine
    let c = committed("torch_lstm_prefixed.safetensors");
    let o = SafetensorsOptions::pytorch(CellKind::lstm()).prefix("encoder.rnn.");
    load_safetensors_bytes(&c, &o).unwrap();
}

#[test]
fn inconsistent_shapes() {
    let base = gru_entries("", 2, true);
    let opts = gru();
    let set = |name: &str, shape: &[usize]| {
        let mut e = base.clone();
        let i = e.iter().position(|t| t.name == name).unwrap();
        e[i] = f32_entry(name, shape, 99);
        encode(&e)
    };
    // hidden size differs in layer 1
    format_err(
        load_safetensors_bytes(&set("weight_hh_l1", &[15, 4]), &opts),
        &["weight_hh_l1", "[15, 4]", "expected [15, 5]"],
    );
    // layer 1 input must be 2 × 5
    format_err(
        load_safetensors_bytes(&set("weight_ih_l1", &[15, 5]), &opts),
        &["weight_ih_l1", "2 directions"],
    );
    // reverse direction with another hidden size
    format_err(
        load_safetensors_bytes(&set("weight_ih_l0_reverse", &[12, 3]), &opts),
        &["weight_ih_l0_reverse", "expected [15, 3]"],
    );
    // a transposed matrix (same element count)
    format_err(
        load_safetensors_bytes(&set("weight_hh_l0_reverse", &[5, 15]), &opts),
        &["weight_hh_l0_reverse", "[5, 15]"],
    );
    // bias of the wrong length, and with 2 dimensions
    format_err(
        load_safetensors_bytes(&set("bias_ih_l1", &[14]), &opts),
        &["bias_ih_l1", "[14]"],
    );
    format_err(
        load_safetensors_bytes(&set("bias_hh_l0", &[3, 5]), &opts),
        &["bias_hh_l0"],
    );
    // rows not a multiple of the gates: wrong cell kind
    format_err(
        load_safetensors_bytes(
            &encode(&base),
            &SafetensorsOptions::pytorch(CellKind::lstm()),
        ),
        &["weight_ih_l0", "multiple of 4", "cell kind"],
    );
    // a vector where a matrix is expected, an empty dimension
    format_err(
        load_safetensors_bytes(&set("weight_ih_l0", &[15]), &opts),
        &["weight_ih_l0"],
    );
    format_err(
        load_safetensors_bytes(&set("weight_hh_l0", &[15, 0]), &opts),
        &["weight_hh_l0", "empty"],
    );
    // a projection whose hidden size disagrees
    let mut e = committed_entries("torch_lstm_proj_1l.safetensors");
    let i = e.iter().position(|t| t.name == "weight_hr_l0").unwrap();
    e[i] = f32_entry("weight_hr_l0", &[2, 6], 1);
    format_err(
        load_safetensors_bytes(&encode(&e), &SafetensorsOptions::pytorch(CellKind::lstm())),
        &["weight_hr_l0", "[proj_size, 7]"],
    );
}

fn committed_entries(name: &str) -> Vec<Entry> {
    decode(&committed(name))
}

#[test]
fn missing_and_extra_tensors() {
    let base = gru_entries("enc.", 2, true);
    let opts = gru().prefix("enc.");
    let without = |name: &str| {
        let e: Vec<Entry> = base.iter().filter(|t| t.name != name).cloned().collect();
        assert_eq!(e.len(), base.len() - 1);
        encode(&e)
    };
    for name in [
        "enc.weight_hh_l1",
        "enc.weight_ih_l1_reverse",
        "enc.bias_hh_l0",
        "enc.bias_ih_l1_reverse",
        "enc.weight_ih_l0",
        "enc.weight_hh_l0",
    ] {
        format_err(
            load_safetensors_bytes(&without(name), &opts),
            &["missing", name],
        );
    }
    // every bias gone: a bias-free model, fine
    let nobias: Vec<Entry> = base
        .iter()
        .filter(|t| !t.name.contains("bias"))
        .cloned()
        .collect();
    load_safetensors_bytes(&encode(&nobias), &opts).unwrap();
    // biases only in layer 1: unexpected
    let partial: Vec<Entry> = base
        .iter()
        .filter(|t| !t.name.contains("bias") || t.name.contains("_l1"))
        .cloned()
        .collect();
    format_err(
        load_safetensors_bytes(&encode(&partial), &opts),
        &["unexpected", "enc.bias_ih_l1", "no biases"],
    );
    // layer 2 has only one tensor
    let with = |extra: Entry| {
        let mut e = base.clone();
        e.push(extra);
        encode(&e)
    };
    format_err(
        load_safetensors_bytes(&with(f32_entry("enc.bias_hh_l3", &[15], 1)), &opts),
        &["missing", "enc.weight_ih_l2"],
    );
    // names that are not nn.GRU weights, under the prefix
    for bad in [
        "enc.extra",
        "enc.weight_ih_l01",
        "enc.weight_ih_l0_rev",
        "enc.weight_hr_l0",
    ] {
        format_err(
            load_safetensors_bytes(&with(f32_entry(bad, &[15, 3], 1)), &opts),
            &["unexpected", bad],
        );
    }
    // outside the prefix: ignored
    load_safetensors_bytes(&with(f32_entry("dec.extra", &[2, 2], 1)), &opts).unwrap();
    load_safetensors_bytes(&with(f32_entry("enc2.weight_ih_l0", &[2, 2], 1)), &opts).unwrap();
    // nothing under the prefix
    format_err(
        load_safetensors_bytes(&encode(&base), &gru().prefix("encoder.")),
        &["no tensor under the prefix", "enc.bias_hh_l0"],
    );
    // an empty file (valid, no tensors)
    format_err(
        load_safetensors_bytes(&encode(&[]), &gru()),
        &["no tensor under the prefix"],
    );
    // the prefixed committed file without the prefix: its other tensors are extra
    let c = committed("torch_lstm_prefixed.safetensors");
    format_err(
        load_safetensors_bytes(&c, &SafetensorsOptions::pytorch(CellKind::lstm())),
        &["unexpected tensor"],
    );
}

#[test]
fn keras_errors() {
    let base = committed_entries("keras_lstm_bi_2l.safetensors");
    let opts = SafetensorsOptions::keras(CellKind::lstm()).prefix("sequential/");
    load_safetensors_bytes(&encode(&base), &opts).unwrap();
    let without = |needle: &str| {
        let e: Vec<Entry> = base.iter().filter(|t| t.name != needle).cloned().collect();
        assert_eq!(e.len(), base.len() - 1, "{needle}");
        encode(&e)
    };
    format_err(
        load_safetensors_bytes(
            &without("sequential/bidirectional_1/backward_lstm_1/lstm_cell/recurrent_kernel"),
            &opts,
        ),
        &[
            "missing",
            "recurrent_kernel",
            "sequential/bidirectional_1",
            "backward",
        ],
    );
    // a missing bias is a bias-free layer (Keras use_bias=False)
    load_safetensors_bytes(
        &without("sequential/bidirectional/forward_lstm/lstm_cell/bias"),
        &opts,
    )
    .unwrap();
    // an extra weight in a layer
    let mut e = base.clone();
    e.push(f32_entry(
        "sequential/bidirectional/forward_lstm/lstm_cell/gamma",
        &[4],
        1,
    ));
    format_err(
        load_safetensors_bytes(&encode(&e), &opts),
        &["unexpected", "lstm_cell/gamma"],
    );
    // a dense layer under the prefix is a layer without recurrent_kernel...
    let dense = committed("keras_lstm_2l_dense.safetensors");
    let dopts = SafetensorsOptions::keras(CellKind::lstm()).prefix("sequential/");
    format_err(load_safetensors_bytes(&dense, &dopts), &["missing"]);
    // ...unless the layers are named
    let m =
        load_safetensors_bytes(&dense, &dopts.clone().keras_layers(["lstm", "lstm_1"])).unwrap();
    assert_eq!(m.spec().num_layers, 2);
    format_err(
        load_safetensors_bytes(&dense, &dopts.clone().keras_layers(["lstm", "lstm_7"])),
        &["lstm_7", "keras_layers"],
    );
    // stacked in the wrong order: layer 1 input size mismatch
    format_err(
        load_safetensors_bytes(&dense, &dopts.clone().keras_layers(["lstm_1", "lstm"])),
        &["sequential/lstm/lstm_cell/kernel", "input of layer 1"],
    );
    // wrong cell kind
    format_err(
        load_safetensors_bytes(&encode(&base), &SafetensorsOptions::keras(CellKind::gru())),
        &["recurrent_kernel", "cell kind"],
    );
    // a unidirectional layer mixed with a bidirectional one
    let mut e: Vec<Entry> = base
        .iter()
        .filter(|t| !t.name.contains("bidirectional_1"))
        .cloned()
        .collect();
    for leaf in ["kernel", "recurrent_kernel", "bias"] {
        let src = base
            .iter()
            .find(|t| {
                t.name == format!("sequential/bidirectional_1/forward_lstm_1/lstm_cell/{leaf}")
            })
            .unwrap();
        let mut t = src.clone();
        t.name = format!("sequential/lstm_9/lstm_cell/{leaf}");
        e.push(t);
    }
    format_err(
        load_safetensors_bytes(&encode(&e), &opts),
        &["unidirectional", "bidirectional"],
    );
    // a GRU whose biases disagree on reset_after
    let g = committed_entries("keras_gru_2l.safetensors");
    let mut e = g.clone();
    let i = e
        .iter()
        .position(|t| t.name == "sequential/gru_1/gru_cell/bias")
        .unwrap();
    e[i] = f32_entry("sequential/gru_1/gru_cell/bias", &[15], 3);
    format_err(
        load_safetensors_bytes(&encode(&e), &SafetensorsOptions::keras(CellKind::gru())),
        &["sequential/gru_1/gru_cell/bias", "reset_after=True"],
    );
    // the same weight twice (with tf.keras' ":0")
    let mut e = g.clone();
    let mut dup = e[0].clone();
    dup.name.push_str(":0");
    e.push(dup);
    format_err(
        load_safetensors_bytes(&encode(&e), &SafetensorsOptions::keras(CellKind::gru())),
        &["same weight"],
    );
    // tf.keras 2 names with ":0" load
    let mut e = g.clone();
    for t in &mut e {
        t.name.push_str(":0");
    }
    load_safetensors_bytes(&encode(&e), &SafetensorsOptions::keras(CellKind::gru())).unwrap();
}

#[test]
fn option_and_io_errors() {
    let file = committed("torch_lstm_1l.safetensors");
    let peep = CellKind::Lstm(LstmOptions {
        peephole: true,
        ..Default::default()
    });
    let r = load_safetensors_bytes(&file, &SafetensorsOptions::pytorch(peep));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    let r = load_safetensors(dir().join("no_such_file.safetensors"), &gru());
    assert!(
        matches!(&r, Err(Error::Io(m)) if m.contains("no_such_file")),
        "{r:?}"
    );
    // a path's format errors name the file
    let tmp =
        std::env::temp_dir().join(format!("rnncell-loader-{}.safetensors", std::process::id()));
    std::fs::write(&tmp, &file[..file.len() / 2]).unwrap();
    let r = load_safetensors(&tmp, &gru());
    std::fs::remove_file(&tmp).unwrap();
    format_err(r, &["rnncell-loader-"]);
    // proj_size in the options is ignored: read from the file
    let o = CellKind::Lstm(LstmOptions {
        proj_size: 9,
        ..Default::default()
    });
    let m = load_safetensors_bytes(&file, &SafetensorsOptions::pytorch(o)).unwrap();
    assert_eq!(m.spec().proj_size(), 0);
    // a Sum merge changes layer 1's expected input
    let c = committed("torch_gru_2l_bi.safetensors");
    let o = SafetensorsOptions::pytorch(CellKind::gru()).merge(MergeMode::Sum);
    format_err(
        load_safetensors_bytes(&c, &o),
        &["weight_ih_l1", "output size"],
    );
}

/// A well-formed file too wide for the i8 precision asked for is the
/// caller's InvalidArgument (f32 loads it), not a malformed file.
#[test]
fn a_k_above_the_i8_limit_is_an_invalid_argument() {
    let k = MAX_INT8_K + 1;
    let file = encode(&[
        f32_entry("weight_ih_l0", &[3, k], 1),
        f32_entry("weight_hh_l0", &[3, 1], 2),
    ]);
    let r = load_safetensors_bytes(&file, &gru().precision(WeightPrecision::Int8));
    assert!(
        matches!(&r, Err(Error::InvalidArgument(m)) if m.contains("input_size 133144 exceeds 133143")),
        "{r:?}"
    );
    let m = load_safetensors_bytes(&file, &gru()).unwrap();
    assert_eq!(m.spec().input_size, k);
    // The largest K loads in i8.
    let file = encode(&[
        f32_entry("weight_ih_l0", &[3, k - 1], 1),
        f32_entry("weight_hh_l0", &[3, 1], 2),
    ]);
    let m = load_safetensors_bytes(&file, &gru().precision(WeightPrecision::Int8)).unwrap();
    assert_eq!(m.precision(), WeightPrecision::Int8);
}

/// Every single-byte corruption of a small valid file is an error or a
/// model, never a panic; and corrupting a weight's data never fails.
#[test]
fn byte_flips_never_panic() {
    let file = committed("torch_rnn_relu_bi.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::rnn_relu()).isa(Isa::Scalar);
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let (mut ok, mut err) = (0, 0);
    for pos in 0..file.len() {
        for x in [0x01u8, 0x20, 0x80, 0xff] {
            let mut f = file.clone();
            f[pos] ^= x;
            match load_safetensors_bytes(&f, &opts) {
                Ok(_) => ok += 1,
                Err(Error::Format(_)) => err += 1,
                Err(e) => panic!("byte {pos} ^ {x:#x}: unexpected error kind {e:?}"),
            }
            if pos >= 8 + n {
                assert!(load_safetensors_bytes(&f, &opts).is_ok(), "data byte {pos}");
            }
        }
    }
    assert!(ok > 0 && err > 0, "{ok} {err}");
}

// --------------------------------------------------------------------------
// Hardening (issue 11): header cap before parsing, duplicate names, what the
// path API refuses, fallible buffers, the Keras layer list in errors.
// --------------------------------------------------------------------------

/// A fresh path in the temporary directory, unique to this process and tag.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "rnncell-loader-{}-{tag}.safetensors",
        std::process::id()
    ))
}

/// Runs the test `name` of this binary in a child process (with `env` set),
/// through `sh -c "<prefix> exec [runner] <binary> ..."`; returns its stdout.
#[cfg(target_os = "linux")]
fn run_child(name: &str, env: &[(&str, &str)], sh_prefix: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    // Behind RNNCELL_TEST_RUNNER when set (.ci/neon.sh: the qemu runner a
    // cross-built binary needs to exec itself).
    let runner = std::env::var("RNNCELL_TEST_RUNNER").unwrap_or_default();
    let script =
        format!("{sh_prefix} exec {runner} \"$0\" --exact {name} --nocapture --test-threads=1");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A kB field (`VmRSS`, `VmHWM`) of /proc/self/status.
#[cfg(target_os = "linux")]
fn proc_status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// A valid safetensors file of about `header_bytes` of header: many
/// one-element F32 tensors `t0000000`, `t0000001`, … (the worst case for a
/// parser that builds a tree per tensor).
fn many_tensors_file(header_bytes: usize) -> Vec<u8> {
    let mut h = String::with_capacity(header_bytes + 100);
    h.push('{');
    let mut i = 0usize;
    while h.len() < header_bytes {
        if i > 0 {
            h.push(',');
        }
        let s = 4 * i;
        h.push_str(&format!(
            "\"t{i:07}\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{s},{}]}}",
            s + 4
        ));
        i += 1;
    }
    h.push('}');
    let mut f = (h.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(h.as_bytes());
    f.resize(f.len() + 4 * i, 0);
    f
}

/// Child half of `a_32_mib_header_is_parsed_in_bounded_memory`: loads the
/// file named by RNNCELL_LOADER_RSS_FILE and prints the RSS before and the
/// peak RSS after. Does nothing when run as an ordinary test.
#[cfg(target_os = "linux")]
#[test]
fn rss_child() {
    let Ok(path) = std::env::var("RNNCELL_LOADER_RSS_FILE") else {
        return;
    };
    let before = proc_status_kb("VmRSS");
    let r = load_safetensors(&path, &gru());
    // every tensor is "unexpected" for a GRU: the whole header was parsed
    format_err(r, &["unexpected tensor", "t0000000"]);
    println!("RSS_BEFORE_KB {before}");
    println!("RSS_PEAK_KB {}", proc_status_kb("VmHWM"));
}

/// Issue 11.4: the header used to be parsed into a `serde_json::Value` tree
/// (and again by the safetensors crate) before the size cap applied: 546 MiB
/// peak RSS for a 32 MiB header. Now the peak is the file plus a small
/// multiple of the header.
#[cfg(target_os = "linux")]
#[test]
fn a_32_mib_header_is_parsed_in_bounded_memory() {
    let file = many_tensors_file(32 << 20);
    let path = temp_path("rss");
    std::fs::write(&path, &file).unwrap();
    drop(file);
    let out = run_child(
        "rss_child",
        &[("RNNCELL_LOADER_RSS_FILE", path.to_str().unwrap())],
        "",
    );
    let _ = std::fs::remove_file(&path);
    let kb = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the child's output:\n{out}"))
    };
    let grown_mib = (kb("RSS_PEAK_KB").saturating_sub(kb("RSS_BEFORE_KB"))) / 1024;
    println!("peak RSS growth for a 32 MiB header: {grown_mib} MiB");
    assert!(
        grown_mib <= 4 * 32,
        "loading a 32 MiB header grew the RSS by {grown_mib} MiB (> 4x the header)"
    );
}

/// Issue 11.4: a declared header above the cap is refused by its size before
/// anything else is read, from memory and from a path.
#[test]
fn a_header_above_the_cap_is_refused_by_its_size() {
    for n in [100_000_001u64, 1 << 40, u64::MAX] {
        let mut file = n.to_le_bytes().to_vec();
        file.extend_from_slice(b"{\"weight_ih_l0\":");
        let m = format_err(load_safetensors_bytes(&file, &gru()), &[&n.to_string()]);
        assert!(m.contains("100000000"), "{m}");
        let path = temp_path("cap");
        std::fs::write(&path, &file).unwrap();
        let r = load_safetensors(&path, &gru());
        let _ = std::fs::remove_file(&path);
        let m = format_err(r, &[&n.to_string(), "rnncell-loader-"]);
        assert!(m.contains("100000000"), "{m}");
    }
    // at the cap itself the length is fine (and then the file is too short)
    let mut file = 100_000_000u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    format_err(load_safetensors_bytes(&file, &gru()), &["follow"]);
}

/// Issue 11.8: a tensor name given twice in a header used to be accepted
/// (the last one won).
#[test]
fn duplicate_tensor_names_are_an_error() {
    let entry = |s: usize| {
        format!(
            "\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[{s},{}]",
            s + 8
        )
    };
    let file_of = |h: &str, data: usize| {
        let mut f = (h.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(h.as_bytes());
        f.resize(f.len() + data, 0);
        f
    };
    let ok = format!(
        "{{\"weight_ih_l0\":{{{}}},\"weight_hh_l0\":{{\"dtype\":\"F32\",\"shape\":[1,1],\
         \"data_offsets\":[8,12]}}}}",
        entry(0)
    );
    let opts = SafetensorsOptions::pytorch(CellKind::rnn_tanh());
    load_safetensors_bytes(&file_of(&ok, 12), &opts).unwrap();
    let dup = format!(
        "{{\"weight_ih_l0\":{{{}}},\"weight_hh_l0\":{{\"dtype\":\"F32\",\"shape\":[1,1],\
         \"data_offsets\":[16,20]}},\"weight_ih_l0\":{{{}}}}}",
        entry(0),
        entry(8)
    );
    format_err(
        load_safetensors_bytes(&file_of(&dup, 20), &opts),
        &["weight_ih_l0", "twice"],
    );
    // the same name spelled with a JSON escape is the same name
    let dup = format!(
        "{{\"weight_ih_l0\":{{{}}},\"weight_hh_l0\":{{\"dtype\":\"F32\",\"shape\":[1,1],\
         \"data_offsets\":[16,20]}},\"weight_\\u0069h_l0\":{{{}}}}}",
        entry(0),
        entry(8)
    );
    format_err(
        load_safetensors_bytes(&file_of(&dup, 20), &opts),
        &["weight_ih_l0", "twice"],
    );
    // outside the prefix too: the file is malformed whatever is loaded
    let dup = format!(
        "{{\"weight_ih_l0\":{{{}}},\"weight_hh_l0\":{{\"dtype\":\"F32\",\"shape\":[1,1],\
         \"data_offsets\":[8,12]}},\"other\":{{\"dtype\":\"U8\",\"shape\":[1],\
         \"data_offsets\":[12,13]}},\"other\":{{\"dtype\":\"U8\",\"shape\":[1],\
         \"data_offsets\":[13,14]}}}}",
        entry(0)
    );
    format_err(
        load_safetensors_bytes(&file_of(&dup, 14), &opts),
        &["\"other\"", "twice"],
    );
    // and __metadata__ twice
    let dup = format!(
        "{{\"__metadata__\":{{\"a\":\"b\"}},\"weight_ih_l0\":{{{}}},\"weight_hh_l0\":\
         {{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}},\"__metadata__\":{{}}}}",
        entry(0)
    );
    format_err(
        load_safetensors_bytes(&file_of(&dup, 12), &opts),
        &["__metadata__", "twice"],
    );
}

/// Issue 11.4: the path API refuses what is not a regular file, by name and
/// kind, without reading it (/dev/zero used to be read until an allocation
/// failed and aborted the process).
#[cfg(unix)]
#[test]
fn the_path_api_refuses_devices_and_directories() {
    let r = load_safetensors("/dev/zero", &gru());
    assert!(
        matches!(&r, Err(Error::Io(m)) if m.contains("/dev/zero") && m.contains("character device")),
        "{r:?}"
    );
    let dir = std::env::temp_dir();
    let r = load_safetensors(&dir, &gru());
    assert!(
        matches!(&r, Err(Error::Io(m)) if m.contains(dir.to_str().unwrap()) && m.contains("directory")),
        "{r:?}"
    );
    // a symbolic link to a regular file is followed
    let file = committed("torch_gru_2l_bi.safetensors");
    let target = temp_path("link-target");
    let link = temp_path("link");
    std::fs::write(&target, &file).unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = load_safetensors(&link, &gru());
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&target);
    r.unwrap();
}

/// Issue 11.4: a FIFO without a writer used to block forever in `open()`.
/// The load runs on a thread; the test fails (instead of hanging) if it has
/// not returned within a minute.
#[cfg(unix)]
#[test]
fn a_fifo_without_writer_is_refused_promptly() {
    let path = temp_path("fifo");
    let _ = std::fs::remove_file(&path);
    let st = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(load_safetensors(&p, &gru()));
    });
    let r = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(r) => r,
        Err(_) => {
            // unblock the reader's open() so the thread can finish, then fail
            let _w = std::fs::OpenOptions::new().write(true).open(&path);
            let _ = std::fs::remove_file(&path);
            panic!("load_safetensors on a FIFO without writer did not return");
        }
    };
    let _ = std::fs::remove_file(&path);
    assert!(
        matches!(&r, Err(Error::Io(m)) if m.contains("rnncell-loader-") && m.contains("FIFO")),
        "{r:?}"
    );
}

/// Issue 11.4: the path API reads the header length, the header, then only
/// the data the header declares. A shorter file names the tensor that does
/// not fit; a longer one is an error too (as from memory).
#[test]
fn the_path_api_reads_what_the_header_declares() {
    let file = committed("torch_lstm_1l.safetensors");
    let opts = SafetensorsOptions::pytorch(CellKind::lstm());
    let (h, _) = header_of(&file);
    let last = h
        .iter()
        .max_by_key(|(_, i)| i["data_offsets"][1].as_u64().unwrap())
        .unwrap()
        .0
        .clone();
    let path = temp_path("short");
    let from_path = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let r = load_safetensors(&path, &opts);
        let _ = std::fs::remove_file(&path);
        r
    };
    from_path(&file).unwrap();
    format_err(
        from_path(&file[..file.len() - 1]),
        &[&last, "truncated", "rnncell-loader-"],
    );
    let mut longer = file.clone();
    longer.extend_from_slice(&[0; 3]);
    format_err(from_path(&longer), &["3 bytes", "after"]);
    format_err(
        load_safetensors_bytes(&longer, &opts),
        &["3 bytes", "after"],
    );
    // every cut is the same error kind from a path as from memory
    for cut in (0..file.len()).step_by(37) {
        let a = from_path(&file[..cut]);
        assert!(matches!(a, Err(Error::Format(_))), "cut at {cut}: {a:?}");
    }
}

/// Child half of `buffers_sized_by_the_file_are_fallible`.
#[cfg(target_os = "linux")]
#[test]
fn alloc_child() {
    let Ok(path) = std::env::var("RNNCELL_LOADER_ALLOC_FILE") else {
        return;
    };
    let r = load_safetensors(&path, &gru());
    println!("RESULT {r:?}");
}

/// Every buffer the path API sizes from the file is allocated fallibly: a
/// (sparse) 4 GiB file read under a 1 GiB address-space limit is an error,
/// not an abort.
#[cfg(target_os = "linux")]
#[test]
fn buffers_sized_by_the_file_are_fallible() {
    let n = 1usize << 30; // floats: 4 GiB of data
    let h = format!(
        "{{\"weight_ih_l0\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        4 * n
    );
    let path = temp_path("sparse");
    let mut f = std::fs::File::create(&path).unwrap();
    use std::io::Write;
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(h.as_bytes()).unwrap();
    f.set_len(8 + h.len() as u64 + 4 * n as u64).unwrap();
    drop(f);
    let out = run_child(
        "alloc_child",
        &[("RNNCELL_LOADER_ALLOC_FILE", path.to_str().unwrap())],
        "ulimit -v 1048576 &&",
    );
    let _ = std::fs::remove_file(&path);
    let line = out.lines().find(|l| l.contains("RESULT")).unwrap_or("");
    assert!(
        line.contains("Err(Allocation(") && line.contains("4294967"),
        "{out}"
    );
}

/// Issue 11.8: an unknown layer in `keras_layers` used to report the layers
/// found among the *listed* ones ("layers found: []"); it lists the layers
/// that are in the file under the prefix.
#[test]
fn an_unknown_keras_layer_lists_the_layers_in_the_file() {
    let dense = committed("keras_lstm_2l_dense.safetensors");
    let opts = SafetensorsOptions::keras(CellKind::lstm())
        .prefix("sequential/")
        .keras_layers(["lstm_7"]);
    let m = format_err(
        load_safetensors_bytes(&dense, &opts),
        &["lstm_7", "keras_layers", "\"lstm\"", "\"lstm_1\"", "dense"],
    );
    assert!(!m.contains("[]"), "{m}");
}

/// Our container parser (src/loader/safetensors.rs) accepts exactly the
/// files the safetensors crate accepts, except names given twice (which the
/// crate lets the last one win): every truncation and every byte flip of the
/// header of three committed files. A valid container with a prefix that
/// matches nothing gives "no tensor under the prefix".
#[test]
fn the_container_rules_match_the_safetensors_crate() {
    let opts = gru().prefix("\u{1}none");
    let ours = |f: &[u8]| match load_safetensors_bytes(f, &opts) {
        Err(Error::Format(m)) if m.contains("no tensor under the prefix") => Ok(()),
        Err(Error::Format(m)) => Err(m),
        r => panic!("{r:?}"),
    };
    let mut checked = 0;
    for name in [
        "torch_rnn_relu_bi.safetensors",
        "torch_lstm_prefixed.safetensors",
        "keras_gru_2l.safetensors",
    ] {
        let file = committed(name);
        let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        let mut cases: Vec<Vec<u8>> = (0..file.len()).map(|c| file[..c].to_vec()).collect();
        for pos in 0..8 + n {
            for x in [0x01u8, 0x02, 0x08, 0x20, 0x80] {
                let mut f = file.clone();
                f[pos] ^= x;
                cases.push(f);
            }
        }
        for f in &cases {
            let theirs = safetensors::SafeTensors::deserialize(f).map(|_| ());
            match (ours(f), theirs) {
                (Ok(()), Ok(())) | (Err(_), Err(_)) => {}
                (Err(m), Ok(())) if m.contains("twice") => {}
                (a, b) => panic!(
                    "{name}: ours {a:?}, the crate's {b:?}, for the header {:?}",
                    String::from_utf8_lossy(&f[8.min(f.len())..(8 + n).min(f.len())])
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
}

/// The case description of a committed file, by name.
fn case(name: &str) -> Value {
    let p = dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn the_stored_precision_is_the_files_dtype() {
    use WeightPrecision as P;
    for (name, stored) in [
        ("torch_lstm_2l_f16", P::F16),
        ("torch_gru_1l_bf16", P::Bf16),
        ("keras_gru_bi_bf16", P::Bf16),
        ("torch_lstm_proj_1l", P::F32),
        ("keras_lstm_1l", P::F32),
    ] {
        let c = case(name);
        let bytes = committed(c["file"].as_str().unwrap());
        // The default is today's f32 model, whatever the file stores.
        assert_eq!(opts_of(&c).precision, Some(P::F32));
        let m = load_safetensors_bytes(&bytes, &opts_of(&c)).unwrap();
        assert_eq!(
            (m.precision(), m.spec().precision),
            (P::F32, P::F32),
            "{name}"
        );
        // None keeps the stored dtype, from the path and from memory.
        let opts = opts_of(&c).stored_precision();
        assert_eq!(opts.precision, None);
        let from_bytes = load_safetensors_bytes(&bytes, &opts).unwrap();
        let from_path = load_safetensors(dir().join(c["file"].as_str().unwrap()), &opts).unwrap();
        for m in [&from_bytes, &from_path] {
            assert_eq!(
                (m.precision(), m.spec().precision),
                (stored, stored),
                "{name}"
            );
        }
        // Only the precision differs from the f32 model's spec.
        let f32_spec = *load_safetensors_bytes(&bytes, &opts_of(&c)).unwrap().spec();
        assert_eq!(*from_bytes.spec(), f32_spec.precision(stored), "{name}");
        // Keeping 16-bit weights is exact, so the framework's outputs hold.
        let (y, _, _) = run(&from_bytes, &c);
        let d = max_diff(&y, &floats(&c["output"]).unwrap());
        assert!(
            d <= TOL,
            "{name} stored as {stored}: output max |diff| {d:e}"
        );
        // Some(p) builds in p, whatever the file stores.
        for p in WeightPrecision::ALL {
            let m = load_safetensors_bytes(&bytes, &opts_of(&c).precision(p)).unwrap();
            assert_eq!((m.precision(), m.spec().precision), (p, p), "{name} in {p}");
        }
    }
}

/// The 16-bit entry of an f32 one: its high halves, labelled `dtype`.
fn narrowed(e: &Entry, dtype: &str) -> Entry {
    assert_eq!(e.dtype, "F32");
    Entry {
        dtype: dtype.into(),
        bytes: e.bytes.chunks(4).flat_map(|b| [b[2], b[3]]).collect(),
        ..e.clone()
    }
}

#[test]
fn mixed_weight_dtypes_have_no_stored_precision() {
    use WeightPrecision as P;
    let base = gru_entries("", 2, true);
    let with = |f: &dyn Fn(&Entry) -> Option<&'static str>| -> Vec<u8> {
        let e: Vec<Entry> = base
            .iter()
            .map(|e| f(e).map_or_else(|| e.clone(), |d| narrowed(e, d)))
            .collect();
        encode(&e)
    };
    // Biases do not count: f16 weights with f32 biases are an f16 model,
    // and f32 weights with bf16 biases an f32 one.
    let weights_f16 = with(&|e| (!e.name.contains("bias")).then_some("F16"));
    let m = load_safetensors_bytes(&weights_f16, &gru().stored_precision()).unwrap();
    assert_eq!(m.precision(), P::F16);
    let biases_bf16 = with(&|e| e.name.contains("bias").then_some("BF16"));
    let m = load_safetensors_bytes(&biases_bf16, &gru().stored_precision()).unwrap();
    assert_eq!(m.precision(), P::F32);
    // One weight in another dtype: an error naming two tensors and dtypes.
    let one_bf16 = with(&|e| (e.name == "weight_hh_l1_reverse").then_some("BF16"));
    format_err(
        load_safetensors_bytes(&one_bf16, &gru().stored_precision()),
        &[
            "\"weight_ih_l0\" is F32",
            "\"weight_hh_l1_reverse\" is BF16",
        ],
    );
    let f16_and_bf16 = with(&|e| match e.name.as_str() {
        n if n.contains("bias") => None,
        n if n.starts_with("weight_ih") => Some("F16"),
        _ => Some("BF16"),
    });
    format_err(
        load_safetensors_bytes(&f16_and_bf16, &gru().stored_precision()),
        &["\"weight_ih_l0\" is F16", "\"weight_hh_l0\" is BF16"],
    );
    // Asking for a precision loads any mix.
    for file in [&one_bf16, &f16_and_bf16] {
        for p in WeightPrecision::ALL {
            assert_eq!(
                load_safetensors_bytes(file, &gru().precision(p))
                    .unwrap()
                    .precision(),
                p
            );
        }
    }
    // Keras: a kernel in F32 beside bf16 recurrent kernels.
    let c = case("keras_gru_bi_bf16");
    let mut e = committed_entries("keras_gru_bi_bf16.safetensors");
    let k = e
        .iter_mut()
        .find(|t| t.name.ends_with("backward_gru/gru_cell/kernel"))
        .unwrap();
    k.dtype = "F32".into();
    k.bytes = k.bytes.chunks(2).flat_map(|b| [0, 0, b[0], b[1]]).collect();
    let m = format_err(
        load_safetensors_bytes(&encode(&e), &opts_of(&c).stored_precision()),
        &["backward_gru/gru_cell/kernel\" is F32", "is BF16"],
    );
    assert!(m.contains("forward_gru/gru_cell/kernel\" is BF16"), "{m}");
    load_safetensors_bytes(&encode(&e), &opts_of(&c)).unwrap();
}
