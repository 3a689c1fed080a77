//! The C entry points of the ONNX loader (src/ffi/onnx.rs), called from
//! Rust: loading from a path and from memory, node listing, options, and
//! every error path (NULL arguments, bad values, messages naming the node).

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use rnncell::ffi::*;
use rnncell::{Isa, Model, OnnxOptions, load_onnx_bytes};

type S = RnncellStatus;

fn file(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx")
        .join(case)
}

fn bytes(case: &str) -> Vec<u8> {
    std::fs::read(file(case)).unwrap()
}

/// Owns a model handle.
struct M(*mut RnncellModel);
impl Drop for M {
    fn drop(&mut self) {
        // SAFETY: a live handle from a loader, freed once.
        unsafe { rnncell_model_free(self.0) }
    }
}
impl M {
    fn info(&self) -> RnncellModelInfo {
        let mut i = RnncellModelInfo::default();
        // SAFETY: live handle, writable out struct (struct_size set).
        assert_eq!(unsafe { rnncell_model_info(self.0, &mut i) }, S::Ok);
        i
    }
}

fn msg(buf: &[c_char]) -> String {
    // SAFETY: the library NUL-terminates the message buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn load_bytes(b: &[u8], opts: Option<&RnncellOnnxOptions>) -> (S, Option<M>, String) {
    let mut out = null_mut();
    let mut m = [0 as c_char; 512];
    // SAFETY: every pointer valid for its count.
    let st = unsafe {
        rnncell_model_load_onnx_bytes(
            b.as_ptr(),
            b.len(),
            opts.map_or(null(), |o| o as *const _),
            RnncellIsa::Scalar as u32,
            &mut out,
            m.as_mut_ptr(),
            m.len(),
        )
    };
    assert_eq!(st == S::Ok, !out.is_null());
    (st, (!out.is_null()).then(|| M(out)), msg(&m))
}

#[test]
fn loads_from_memory_and_path_and_steps_like_rust() {
    let b = bytes("torch/lstm_1l/model.onnx");
    let (st, m, e) = load_bytes(&b, None);
    assert_eq!(st, S::Ok, "{e}");
    let m = m.unwrap();
    let i = m.info();
    assert_eq!(
        (i.cell, i.input_size, i.hidden_size, i.num_layers),
        (RnncellCell::Lstm as u32, 5, 7, 1)
    );
    // Bit-identical to the Rust loader's model, step by step.
    let rust = load_onnx_bytes(&b, &OnnxOptions::new().isa(Isa::Scalar)).unwrap();
    let mut st_c = null_mut();
    // SAFETY: live model, writable out pointer.
    assert_eq!(unsafe { rnncell_state_new(m.0, &mut st_c) }, S::Ok);
    let mut st_r = rust.new_state();
    for t in 0..4 {
        let x: Vec<f32> = (0..5).map(|k| (t * 5 + k) as f32 * 0.1 - 0.7).collect();
        let (mut yc, mut yr) = ([0f32; 7], [0f32; 7]);
        // SAFETY: live handles; x holds 5 floats, yc 7.
        let s = unsafe { rnncell_model_step(m.0, st_c, x.as_ptr(), 5, yc.as_mut_ptr(), 7) };
        assert_eq!(s, S::Ok);
        rust.step(&mut st_r, &x, &mut yr).unwrap();
        assert_eq!(yc.map(f32::to_bits), yr.map(f32::to_bits));
    }
    // SAFETY: live state, not used afterwards.
    unsafe { rnncell_state_free(st_c) };

    // From the path, a two-layer bidirectional chain named explicitly.
    let path = CString::new(file("torch/lstm_2l_bi/model.onnx").to_str().unwrap()).unwrap();
    let names = [c"/rnn/LSTM".as_ptr(), c"/rnn/LSTM_1".as_ptr()];
    let o = RnncellOnnxOptions {
        nodes: names.as_ptr(),
        nodes_len: 2,
        ..Default::default()
    };
    let mut out = null_mut();
    let mut e = [0 as c_char; 256];
    // SAFETY: valid path, options, out pointer and message buffer.
    let st = unsafe {
        rnncell_model_load_onnx(
            path.as_ptr(),
            &o,
            RnncellIsa::Auto as u32,
            &mut out,
            e.as_mut_ptr(),
            e.len(),
        )
    };
    assert_eq!(st, S::Ok, "{}", msg(&e));
    let m = M(out);
    assert_eq!((m.info().num_layers, m.info().num_directions), (2, 2));
}

#[test]
fn stored_precision_and_bad_precision() {
    let b = bytes("f16/model.onnx");
    let o = RnncellOnnxOptions {
        weight_precision: RnncellWeightPrecision::Stored as u32,
        ..Default::default()
    };
    let (st, m, e) = load_bytes(&b, Some(&o));
    assert_eq!(st, S::Ok, "{e}");
    assert_eq!(
        m.unwrap().info().weight_precision,
        RnncellWeightPrecision::F16 as u32
    );
    let o = RnncellOnnxOptions {
        weight_precision: 77,
        ..Default::default()
    };
    let (st, _, e) = load_bytes(&b, Some(&o));
    assert_eq!(st, S::InvalidArgument);
    assert!(e.contains("weight_precision") && e.contains("77"), "{e}");
}

#[test]
fn errors_are_statuses_with_messages() {
    let b = bytes("errors/chain.onnx");
    // Several chains, no selection.
    let (st, _, e) = load_bytes(&b, None);
    assert_eq!(st, S::InvalidArgument);
    assert!(e.contains("[l0 → l1]") && e.contains("other"), "{e}");
    // A name that does not exist.
    let names = [c"nope".as_ptr()];
    let o = RnncellOnnxOptions {
        nodes: names.as_ptr(),
        nodes_len: 1,
        ..Default::default()
    };
    let (st, _, e) = load_bytes(&b, Some(&o));
    assert_eq!(st, S::InvalidArgument);
    assert!(e.contains("\"nope\""), "{e}");
    // NULL entries and arrays.
    let names = [null::<c_char>()];
    let o = RnncellOnnxOptions {
        nodes: names.as_ptr(),
        nodes_len: 1,
        ..Default::default()
    };
    assert_eq!(load_bytes(&b, Some(&o)).0, S::NullPointer);
    let o = RnncellOnnxOptions {
        nodes: null(),
        nodes_len: 3,
        ..Default::default()
    };
    assert_eq!(load_bytes(&b, Some(&o)).0, S::NullPointer);
    // Unsupported activation, garbage, external data.
    let (st, _, e) = load_bytes(&bytes("errors/activation.onnx"), None);
    assert_eq!(st, S::Unsupported);
    assert!(e.contains("Gelu") && e.contains("\"lstm\""), "{e}");
    let (st, _, e) = load_bytes(&[0xff; 10], None);
    assert_eq!(st, S::Format, "{e}");
    let (st, _, e) = load_bytes(&bytes("errors/external.onnx"), None);
    assert_eq!(st, S::Format);
    assert!(e.contains("weights.bin"), "{e}");
    // NULL bytes, NULL path, NULL out_model, an unknown ISA.
    let mut out = null_mut();
    // SAFETY: NULL arguments are errors; `out` is writable.
    unsafe {
        assert_eq!(
            rnncell_model_load_onnx_bytes(null(), 4, null(), 0, &mut out, null_mut(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_load_onnx(null(), null(), 0, &mut out, null_mut(), 0),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_load_onnx_bytes(
                b.as_ptr(),
                b.len(),
                null(),
                0,
                null_mut(),
                null_mut(),
                0
            ),
            S::NullPointer
        );
        assert_eq!(
            rnncell_model_load_onnx_bytes(
                b.as_ptr(),
                b.len(),
                null(),
                999,
                &mut out,
                null_mut(),
                0
            ),
            S::InvalidArgument
        );
    }
    assert!(out.is_null());
    // A directory is an I/O error.
    let dir = CString::new(file("errors").to_str().unwrap()).unwrap();
    // SAFETY: valid path and out pointer.
    let st = unsafe { rnncell_model_load_onnx(dir.as_ptr(), null(), 0, &mut out, null_mut(), 0) };
    assert_eq!(st, S::Io);
}

#[test]
fn nodes_are_listed_with_names_copied() {
    let b = bytes("silero/opset17/model.onnx");
    let mut n = 0usize;
    // SAFETY: valid bytes and out pointer.
    let st = unsafe { rnncell_onnx_node_count(b.as_ptr(), b.len(), &mut n, null_mut(), 0) };
    assert_eq!(st, S::Ok);
    assert_eq!(n, 2);
    let mut names = Vec::new();
    for i in 0..n {
        let mut info = RnncellOnnxNodeInfo::default();
        let mut name = [0 as c_char; 64];
        // SAFETY: valid bytes, out struct and name buffer.
        let st = unsafe {
            rnncell_onnx_node_info(
                b.as_ptr(),
                b.len(),
                i,
                &mut info,
                name.as_mut_ptr(),
                name.len(),
                null_mut(),
                0,
            )
        };
        assert_eq!(st, S::Ok);
        let s = msg(&name);
        assert_eq!(info.name_size, s.len() + 1);
        assert_eq!(
            (info.input_size, info.hidden_size, info.loadable),
            (5, 7, 1)
        );
        names.push((s, info));
    }
    let lstm = names
        .iter()
        .find(|(_, i)| i.cell == RnncellCell::Lstm as u32)
        .unwrap();
    assert_eq!(lstm.0, "branch.then_branch::encoder_lstm");
    assert_eq!(lstm.1.has_bias, 1);
    assert_eq!(lstm.1.next_index, usize::MAX);
    // The qualified name loads that node.
    let q = CString::new(lstm.0.clone()).unwrap();
    let p = [q.as_ptr()];
    let o = RnncellOnnxOptions {
        nodes: p.as_ptr(),
        nodes_len: 1,
        ..Default::default()
    };
    let (st, m, e) = load_bytes(&b, Some(&o));
    assert_eq!(st, S::Ok, "{e}");
    assert_eq!(m.unwrap().info().cell, RnncellCell::Lstm as u32);
    // A short name buffer: truncated, NUL-terminated, name_size says how much.
    let mut info = RnncellOnnxNodeInfo::default();
    let mut short = [0x7f as c_char; 8];
    // SAFETY: as above.
    let st = unsafe {
        rnncell_onnx_node_info(
            b.as_ptr(),
            b.len(),
            0,
            &mut info,
            short.as_mut_ptr(),
            8,
            null_mut(),
            0,
        )
    };
    assert_eq!(st, S::Ok);
    assert_eq!(msg(&short).len(), 7);
    assert!(info.name_size > 8);
    // The chain's next_index.
    let c = bytes("errors/chain.onnx");
    // SAFETY: as above, no name buffer.
    let st = unsafe {
        rnncell_onnx_node_info(
            c.as_ptr(),
            c.len(),
            0,
            &mut info,
            null_mut(),
            0,
            null_mut(),
            0,
        )
    };
    assert_eq!((st, info.next_index), (S::Ok, 1));
    // Index past the end, NULL info, undecodable bytes.
    let mut e = [0 as c_char; 128];
    // SAFETY: as above.
    unsafe {
        let st = rnncell_onnx_node_info(
            c.as_ptr(),
            c.len(),
            3,
            &mut info,
            null_mut(),
            0,
            e.as_mut_ptr(),
            e.len(),
        );
        assert_eq!(st, S::InvalidArgument);
        assert!(msg(&e).contains("3 recurrent nodes"), "{}", msg(&e));
        assert_eq!(
            rnncell_onnx_node_info(
                c.as_ptr(),
                c.len(),
                0,
                null_mut(),
                null_mut(),
                0,
                null_mut(),
                0
            ),
            S::NullPointer
        );
        assert_eq!(
            rnncell_onnx_node_count([0xffu8; 3].as_ptr(), 3, &mut n, null_mut(), 0),
            S::Format
        );
        assert_eq!(
            rnncell_onnx_node_count(c.as_ptr(), c.len(), null_mut(), null_mut(), 0),
            S::NullPointer
        );
    }
}

#[test]
fn rust_and_c_agree_on_the_node_list() {
    let b = bytes("torch/gru_2l/model.onnx");
    let rust = rnncell::onnx_nodes(&b).unwrap();
    let mut info = RnncellOnnxNodeInfo::default();
    // SAFETY: valid bytes and out struct.
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
    assert_eq!(
        (info.cell, info.input_size, info.next_index),
        (RnncellCell::Gru as u32, rust[0].input_size, 1)
    );
    let _ = Model::from_onnx_bytes(&b, &OnnxOptions::new()).unwrap();
}
