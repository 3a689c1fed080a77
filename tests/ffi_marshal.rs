//! Issue 11, parts 1, 2, 5 and 7: the C ABI's marshal step.
//!
//! * Buffers with a count one larger than the model needs are placed so
//!   that their last float ends exactly at a `PROT_NONE` guard page: reading
//!   a single byte past what the model needs faults, so these tests fail
//!   (SIGSEGV) if a count is compared after copying.
//! * Pointer arrays inside outputs, handles of the wrong type, double frees,
//!   flags other than 0/1, overlapping out pointers.
#![cfg(target_os = "linux")]

mod common;

use std::ffi::c_char;
use std::ptr::null_mut;

use common::c_abi::t;
use common::{DataRng, random_weights};
use rnncell::ffi::*;
use rnncell::{CellKind, Isa, LayerWeights, Model, ModelSpec};

type S = RnncellStatus;

/// `n` floats whose last byte is the last byte before a guard page, starting
/// `skew` bytes past a float boundary (so `skew != 0` is misaligned).
struct Guarded {
    base: *mut u8,
    len: usize,
    data: *mut f32,
    n: usize,
}

impl Guarded {
    fn new(vals: &[f32], skew: usize) -> Guarded {
        let page = 4096;
        let bytes = vals.len() * 4 + skew;
        let data_pages = bytes.div_ceil(page).max(1);
        let len = (data_pages + 1) * page;
        // SAFETY: an anonymous private mapping; checked below.
        let base = unsafe {
            libc::mmap(
                null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base.cast::<u8>();
        // SAFETY: the last page of the mapping becomes inaccessible.
        let rc =
            unsafe { libc::mprotect(base.add(data_pages * page).cast(), page, libc::PROT_NONE) };
        assert_eq!(rc, 0);
        // With skew 0 the data ends right at the guard page; otherwise its
        // start is `skew` bytes past a float boundary and its end `4 - skew`
        // bytes short of the guard, so reading one float more still faults.
        let end = data_pages * page;
        let start = end - vals.len() * 4 - if skew == 0 { 0 } else { 4 - skew };
        // SAFETY: start..start + 4n lies inside the writable pages.
        let data = unsafe { base.add(start) }.cast::<f32>();
        for (i, v) in vals.iter().enumerate() {
            // SAFETY: in bounds (above); any alignment.
            unsafe { data.add(i).write_unaligned(*v) };
        }
        Guarded {
            base,
            len,
            data,
            n: vals.len(),
        }
    }

    fn t(&self, count: usize) -> RnncellTensor {
        RnncellTensor {
            data: self.data,
            len: count,
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn spec_init(cell: RnncellCell, i: usize, h: usize) -> RnncellSpec {
    let mut s = RnncellSpec::default();
    // SAFETY: `s` is writable.
    let st = unsafe { rnncell_spec_init(&mut s, size_of::<RnncellSpec>(), cell as u32, i, h) };
    assert_eq!(st, S::Ok);
    s
}

fn pytorch_layers(w: &[LayerWeights]) -> Vec<RnncellPytorchLayer> {
    w.iter()
        .map(|w| RnncellPytorchLayer {
            weight_ih: t(&w.w),
            weight_hh: t(&w.r),
            bias_ih: t(&w.b_w),
            bias_hh: t(&w.b_r),
            ..Default::default()
        })
        .collect()
}

fn build(spec: &RnncellSpec, layers: *const RnncellPytorchLayer, n: usize) -> (S, String) {
    let mut m = null_mut();
    let mut msg = [0 as c_char; 256];
    // SAFETY: pointers valid for their counts (the tests' own contract).
    let st = unsafe {
        rnncell_model_new_pytorch(spec, layers, n, 0, &mut m, msg.as_mut_ptr(), msg.len())
    };
    // SAFETY: NUL-terminated by the call.
    let text = unsafe { std::ffi::CStr::from_ptr(msg.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(st == S::Ok, !m.is_null());
    // SAFETY: null or a model we own.
    unsafe { rnncell_model_free(m) };
    (st, text)
}

struct Handles {
    model: *mut RnncellModel,
    states: Vec<*mut RnncellState>,
}

impl Handles {
    fn new(rs: &ModelSpec, cs: &RnncellSpec, n_states: usize) -> Handles {
        let w = random_weights(rs, 7);
        let layers = pytorch_layers(&w);
        let mut model = null_mut();
        // SAFETY: valid pointers and counts.
        let st = unsafe {
            rnncell_model_new_pytorch(
                cs,
                layers.as_ptr(),
                layers.len(),
                0,
                &mut model,
                null_mut(),
                0,
            )
        };
        assert_eq!(st, S::Ok);
        let states = (0..n_states)
            .map(|_| {
                let mut s = null_mut();
                // SAFETY: live model, writable out pointer.
                let st = unsafe { rnncell_state_new(model, &mut s) };
                assert_eq!(st, S::Ok);
                s
            })
            .collect();
        Handles { model, states }
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: handles we own, freed once.
        unsafe {
            for s in &self.states {
                rnncell_state_free(*s);
            }
            rnncell_model_free(self.model);
        }
    }
}

#[test]
fn builder_counts_are_checked_before_tensors_are_read() {
    let rs = ModelSpec::new(CellKind::lstm(), 5, 4);
    let cs = spec_init(RnncellCell::Lstm, 5, 4);
    let w = random_weights(&rs, 1);
    for skew in [0, 1] {
        // Each tensor in turn with a count one too large, ending at a guard.
        for which in 0..4 {
            let mut layers = pytorch_layers(&w);
            let src = [&w[0].w, &w[0].r, &w[0].b_w, &w[0].b_r][which];
            let g = Guarded::new(src, skew);
            let set = |l: &mut RnncellPytorchLayer, t: RnncellTensor| match which {
                0 => l.weight_ih = t,
                1 => l.weight_hh = t,
                2 => l.bias_ih = t,
                _ => l.bias_hh = t,
            };
            set(&mut layers[0], g.t(g.n + 1));
            let (st, msg) = build(&cs, layers.as_ptr(), 1);
            assert_eq!(st, S::SizeMismatch, "tensor {which} skew {skew}: {msg}");
            assert!(msg.contains(&format!("expected {}", g.n)), "{msg}");
            // The exact count builds (and reads the whole buffer).
            set(&mut layers[0], g.t(g.n));
            assert_eq!(build(&cs, layers.as_ptr(), 1).0, S::Ok);
        }
        // A huge count of a misaligned tensor is a size error, not an
        // allocation failure.
        let mut layers = pytorch_layers(&w);
        let g = Guarded::new(&w[0].w, 1);
        layers[0].weight_ih = g.t(isize::MAX as usize / 4);
        assert_eq!(build(&cs, layers.as_ptr(), 1).0, S::SizeMismatch);
    }
    // The layers array itself: one struct more than L*D, at a guard page.
    let layers = pytorch_layers(&w);
    let bytes = std::mem::size_of::<RnncellPytorchLayer>();
    let raw: Vec<f32> = vec![0.0; bytes / 4];
    let g = Guarded::new(&raw, 0);
    // SAFETY: the guarded buffer holds exactly one struct.
    unsafe {
        g.data
            .cast::<RnncellPytorchLayer>()
            .write_unaligned(layers[0])
    };
    let (st, msg) = build(&cs, g.data.cast(), 2);
    assert_eq!(st, S::SizeMismatch, "{msg}");
    let (st, msg) = build(&cs, g.data.cast(), 1 << 40);
    assert_eq!(st, S::SizeMismatch);
    assert!(msg.contains("expected 1"), "{msg}");
    assert_eq!(build(&cs, g.data.cast(), 1).0, S::Ok);
    // Tensors the spec does not allow are rejected without reading them.
    let mut layers = pytorch_layers(&w);
    let g = Guarded::new(&[0.0; 12], 1);
    layers[0].peephole = g.t(1 << 20);
    let (st, msg) = build(&cs, layers.as_ptr(), 1);
    assert_eq!(st, S::InvalidArgument, "{msg}");
    assert!(msg.contains("peephole"), "{msg}");
}

#[test]
fn onnx_and_keras_counts_are_checked_before_reading() {
    let cs = spec_init(RnncellCell::Gru, 3, 4);
    let (gh, i, h) = (12, 3, 4);
    let w = vec![0.25f32; gh * i];
    let r = vec![0.25f32; gh * h];
    let gw = Guarded::new(&w, 1);
    let gr = Guarded::new(&r, 1);
    let mut m = null_mut();
    let onnx = RnncellOnnxLayer {
        w: gw.t(gw.n + 1),
        r: t(&r),
        ..Default::default()
    };
    // SAFETY: valid pointers; the count of `w` is too large by one.
    let st = unsafe { rnncell_model_new_onnx(&cs, &onnx, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::SizeMismatch);
    assert!(m.is_null());
    let keras = RnncellKerasLayer {
        kernel: t(&w),
        recurrent_kernel: gr.t(gr.n + 1),
        ..Default::default()
    };
    // SAFETY: as above.
    let st = unsafe { rnncell_model_new_keras(&cs, &keras, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::SizeMismatch);
    // A Keras GRU bias is [3H] or [2, 3H]; anything else is refused unread.
    let gb = Guarded::new(&[0.0; 24], 1);
    let keras = RnncellKerasLayer {
        kernel: t(&w),
        recurrent_kernel: t(&r),
        bias: gb.t(25),
    };
    // SAFETY: as above.
    let st = unsafe { rnncell_model_new_keras(&cs, &keras, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, S::SizeMismatch);
    for n in [12, 24] {
        let keras = RnncellKerasLayer {
            bias: gb.t(n),
            ..keras
        };
        // SAFETY: as above; both sizes are valid.
        let st = unsafe { rnncell_model_new_keras(&cs, &keras, 1, 0, &mut m, null_mut(), 0) };
        assert_eq!(st, S::Ok);
        // SAFETY: the model just built.
        unsafe { rnncell_model_free(m) };
    }
}

#[test]
fn run_counts_are_checked_before_reading() {
    let rs = ModelSpec::new(CellKind::lstm(), 3, 5);
    let cs = spec_init(RnncellCell::Lstm, 3, 5);
    let hd = Handles::new(&rs, &cs, 0);
    let (t_len, b) = (4, 2);
    let mut rng = DataRng::new(3);
    let x = rng.vec(t_len * b * 3, 1.0);
    let h0 = rng.vec(b * 5, 1.0);
    let mut out = vec![0.0f32; t_len * b * 5];
    let mut hn = vec![0.0f32; b * 5];
    for skew in [0, 1] {
        let gx = Guarded::new(&x, skew);
        let gh = Guarded::new(&h0, skew);
        let gc = Guarded::new(&h0, skew);
        let lens: Vec<f32> = vec![0.0; 2 * b]; // room for b usizes
        let gl = Guarded::new(&lens, 0);
        for i in 0..b {
            // SAFETY: b usizes fit the guarded buffer.
            unsafe { gl.data.cast::<usize>().add(i).write_unaligned(t_len) };
        }
        let base = RnncellSequence {
            input: gx.t(gx.n),
            steps: t_len,
            batch: b,
            h0: gh.t(gh.n),
            c0: gc.t(gc.n),
            seq_lens: gl.data.cast(),
            seq_lens_len: b,
            ..Default::default()
        };
        let o = RnncellSequenceOutput {
            output: RnncellTensorMut {
                data: out.as_mut_ptr(),
                len: out.len(),
            },
            h_n: RnncellTensorMut {
                data: hn.as_mut_ptr(),
                len: hn.len(),
            },
            ..Default::default()
        };
        // SAFETY: valid structs and buffers (also for every run below).
        let st = unsafe { rnncell_model_run(hd.model, &base, &o) };
        assert_eq!(st, S::Ok);
        let cases = [
            RnncellSequence {
                input: gx.t(gx.n + 1),
                ..base
            },
            RnncellSequence {
                h0: gh.t(gh.n + 1),
                ..base
            },
            RnncellSequence {
                c0: gc.t(gc.n + 1),
                ..base
            },
            RnncellSequence {
                seq_lens_len: b + 1,
                ..base
            },
        ];
        for (k, s) in cases.iter().enumerate() {
            out.fill(7.0);
            // SAFETY: as above (counts too large are the point).
            let st = unsafe { rnncell_model_run(hd.model, s, &o) };
            assert_eq!(st, S::SizeMismatch, "case {k} skew {skew}");
            assert!(out.iter().all(|v| *v == 7.0), "nothing written");
        }
        // c0 for a cell without c is refused unread.
        let gru = ModelSpec::new(CellKind::gru(), 3, 5);
        let hg = Handles::new(&gru, &spec_init(RnncellCell::Gru, 3, 5), 0);
        let s = RnncellSequence {
            c0: gc.t(1 << 30),
            ..base
        };
        // SAFETY: as above.
        let st = unsafe { rnncell_model_run(hg.model, &s, &o) };
        assert_eq!(st, S::InvalidArgument);
        // A batch_major flag other than 0 or 1.
        let s = RnncellSequence {
            batch_major: 2,
            ..base
        };
        // SAFETY: as above.
        let st = unsafe { rnncell_model_run(hd.model, &s, &o) };
        assert_eq!(st, S::InvalidArgument);
    }
}

#[test]
fn run_reads_seq_lens_and_states_inside_its_outputs_correctly() {
    // seq_lens and h0 live inside the output buffer: they must be read
    // before the first output is written.
    let rs = ModelSpec::new(CellKind::gru(), 2, 3);
    let cs = spec_init(RnncellCell::Gru, 2, 3);
    let hd = Handles::new(&rs, &cs, 0);
    let model = Model::with_isa(rs, &random_weights(&rs, 7), Isa::Scalar).unwrap();
    let (t_len, b) = (6, 2);
    let mut rng = DataRng::new(9);
    let x = rng.vec(t_len * b * 2, 1.0);
    let h0 = rng.vec(b * 3, 1.0);
    let lens = [t_len, 3usize];
    let want = {
        let mut out = vec![0.0; t_len * b * 3];
        let mut hn = vec![0.0; b * 3];
        let seq = rnncell::Sequence {
            h0: Some(&h0),
            seq_lens: Some(&lens),
            ..rnncell::Sequence::new(&x, t_len, b)
        };
        let mut so = rnncell::SequenceOutput {
            output: &mut out,
            h_n: Some(&mut hn),
            c_n: None,
        };
        model.run(&seq, &mut so).unwrap();
        (out, hn)
    };
    let mut out = vec![0.0f32; t_len * b * 3];
    // h0 in out[0..6], seq_lens in out[8..12] (two usizes).
    out[..6].copy_from_slice(&h0);
    // SAFETY: out[8..12] is 16 bytes, aligned for usize (8-byte offset).
    unsafe {
        let p = out.as_mut_ptr().add(8).cast::<usize>();
        p.write_unaligned(lens[0]);
        p.add(1).write_unaligned(lens[1]);
    }
    let mut hn = vec![0.0f32; b * 3];
    let seq = RnncellSequence {
        input: t(&x),
        steps: t_len,
        batch: b,
        h0: RnncellTensor {
            data: out.as_ptr(),
            len: 6,
        },
        // SAFETY: in bounds.
        seq_lens: unsafe { out.as_ptr().add(8) }.cast(),
        seq_lens_len: b,
        ..Default::default()
    };
    let o = RnncellSequenceOutput {
        output: RnncellTensorMut {
            data: out.as_mut_ptr(),
            len: out.len(),
        },
        h_n: RnncellTensorMut {
            data: hn.as_mut_ptr(),
            len: hn.len(),
        },
        ..Default::default()
    };
    // SAFETY: valid buffers; the overlap is the point.
    let st = unsafe { rnncell_model_run(hd.model, &seq, &o) };
    assert_eq!(st, S::Ok);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out), bits(&want.0));
    assert_eq!(bits(&hn), bits(&want.1));
}

#[test]
fn step_many_rejects_a_states_array_inside_ys() {
    let rs = ModelSpec::new(CellKind::lstm(), 3, 4);
    let cs = spec_init(RnncellCell::Lstm, 3, 4);
    for (n, skew) in [(32usize, 0usize), (4, 1), (25, 0), (25, 3)] {
        let hd = Handles::new(&rs, &cs, n);
        let xs = vec![0.5f32; n * 3];
        // ys with room for the pointer array inside it.
        let mut buf = vec![0u8; n * 4 * 4 + 16 + skew];
        let ys = buf.as_mut_ptr().wrapping_add(skew).cast::<f32>();
        // SAFETY: n pointers fit in the first n*8 bytes of the n*16 bytes.
        unsafe {
            for (i, s) in hd.states.iter().enumerate() {
                ys.cast::<u8>()
                    .add(8)
                    .cast::<*mut RnncellState>()
                    .add(i)
                    .write_unaligned(*s);
            }
        }
        // SAFETY: the array lies inside ys (that is the point); counts valid.
        let st = unsafe {
            rnncell_model_step_many(
                hd.model,
                ys.cast::<u8>().add(8).cast(),
                n,
                xs.as_ptr(),
                xs.len(),
                ys,
                n * 4,
            )
        };
        assert_eq!(st, S::InvalidArgument, "n = {n}, skew = {skew}");
        // The states were not stepped.
        let mut h = [1.0f32; 4];
        // SAFETY: live state, 4 floats.
        let st = unsafe { rnncell_state_get_h(hd.states[0], 0, h.as_mut_ptr(), 4) };
        assert_eq!(st, S::Ok);
        assert_eq!(h, [0.0; 4]);
    }
}

#[test]
fn step_many_in_balanced_groups_matches_single_steps() {
    let rs = ModelSpec::new(CellKind::gru(), 3, 5);
    let cs = spec_init(RnncellCell::Gru, 3, 5);
    for n in [17usize, 25, 49] {
        let many = Handles::new(&rs, &cs, n);
        let single = Handles::new(&rs, &cs, n);
        let mut rng = DataRng::new(n as u64);
        for _ in 0..3 {
            let xs = rng.vec(n * 3, 1.0);
            let mut ys = vec![0.0f32; n * 5];
            // SAFETY: valid handles and buffers.
            let st = unsafe {
                rnncell_model_step_many(
                    many.model,
                    many.states.as_ptr(),
                    n,
                    xs.as_ptr(),
                    xs.len(),
                    ys.as_mut_ptr(),
                    ys.len(),
                )
            };
            assert_eq!(st, S::Ok);
            for i in 0..n {
                let mut y = [0.0f32; 5];
                // SAFETY: valid handles and buffers.
                let st = unsafe {
                    rnncell_model_step(
                        single.model,
                        single.states[i],
                        xs[i * 3..].as_ptr(),
                        3,
                        y.as_mut_ptr(),
                        5,
                    )
                };
                assert_eq!(st, S::Ok);
                let got: Vec<u32> = ys[i * 5..][..5].iter().map(|v| v.to_bits()).collect();
                let want: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "n = {n}, stream {i}");
            }
        }
    }
}

#[test]
fn handles_of_the_wrong_kind_and_double_frees_are_detected() {
    let rs = ModelSpec::new(CellKind::gru(), 2, 3);
    let cs = spec_init(RnncellCell::Gru, 2, 3);
    let hd = Handles::new(&rs, &cs, 1);
    let (m, s) = (hd.model, hd.states[0]);
    let x = [0.5f32; 2];
    let mut y = [0.0f32; 3];
    let mut info = RnncellSpec::default();
    // SAFETY: every pointer is a live handle or a valid buffer; the handles
    // are deliberately of the wrong type, which the magic word catches.
    unsafe {
        assert_eq!(
            rnncell_model_step(s.cast(), s, x.as_ptr(), 2, y.as_mut_ptr(), 3),
            S::InvalidArgument
        );
        assert_eq!(
            rnncell_model_step(m, m.cast(), x.as_ptr(), 2, y.as_mut_ptr(), 3),
            S::InvalidArgument
        );
        assert_eq!(rnncell_model_spec(s.cast(), &mut info), S::InvalidArgument);
        assert_eq!(rnncell_state_reset(m.cast()), S::InvalidArgument);
        // A misaligned pointer is not a handle either.
        assert_eq!(
            rnncell_state_reset(s.cast::<u8>().add(1).cast()),
            S::InvalidArgument
        );
        // Freeing a model as a state (or a state as a model) does nothing.
        rnncell_state_free(m.cast());
        rnncell_model_free(s.cast());
        assert_eq!(
            rnncell_model_step(m, s, x.as_ptr(), 2, y.as_mut_ptr(), 3),
            S::Ok
        );
        // A freed state's magic word is poisoned: a second free is a no-op
        // and a use is refused (best effort: the allocator may reuse the
        // memory; here nothing else allocates in between).
        let mut extra = null_mut();
        assert_eq!(rnncell_state_new(m, &mut extra), S::Ok);
        rnncell_state_free(extra);
        rnncell_state_free(extra);
    }
}

#[test]
fn flags_other_than_zero_and_one_are_refused() {
    let rs = ModelSpec::new(CellKind::lstm(), 2, 3);
    let w = random_weights(&rs, 2);
    let layers = pytorch_layers(&w);
    let mut cs = spec_init(RnncellCell::Lstm, 2, 3);
    cs.lstm_peephole = 2;
    let (st, msg) = build(&cs, layers.as_ptr(), 1);
    assert_eq!(st, S::InvalidArgument);
    assert!(msg.contains("lstm_peephole"), "{msg}");
    let mut cs = spec_init(RnncellCell::Lstm, 2, 3);
    cs.lstm_proj_bias = 255;
    assert_eq!(build(&cs, layers.as_ptr(), 1).0, S::InvalidArgument);
    let mut cs = spec_init(RnncellCell::Gru, 2, 3);
    cs.gru_linear_before_reset = 7;
    let (st, msg) = build(&cs, layers.as_ptr(), 1);
    assert_eq!(st, S::InvalidArgument);
    assert!(msg.contains("gru_linear_before_reset"), "{msg}");
}

#[test]
fn out_model_inside_the_message_buffer_is_refused() {
    let rs = ModelSpec::new(CellKind::gru(), 2, 3);
    let cs = spec_init(RnncellCell::Gru, 2, 3);
    let w = random_weights(&rs, 2);
    let layers = pytorch_layers(&w);
    let mut buf = [0x55u8; 64];
    let msg = buf.as_mut_ptr().cast::<c_char>();
    // SAFETY: `out_model` points into the 64-byte message buffer, which is
    // the mistake under test; both are writable.
    let st = unsafe {
        rnncell_model_new_pytorch(&cs, layers.as_ptr(), 1, 0, msg.add(8).cast(), msg, 64)
    };
    assert_eq!(st, S::InvalidArgument);
    assert!(buf.iter().all(|b| *b == 0x55), "nothing written");
    // out_model inside a weight tensor: the weights are read before the
    // handle is stored, so the model is built from the original values.
    let mut wcopy = w[0].w.clone();
    let mut l = layers[0];
    l.weight_ih = t(&wcopy);
    // SAFETY: all buffers valid; *out_model overlaps weight_ih on purpose.
    let st = unsafe {
        rnncell_model_new_pytorch(&cs, &l, 1, 0, wcopy.as_mut_ptr().cast(), null_mut(), 0)
    };
    assert_eq!(st, S::Ok);
    // SAFETY: the handle was written into the first 8 bytes of wcopy.
    unsafe {
        let m = wcopy.as_ptr().cast::<*mut RnncellModel>().read_unaligned();
        assert!(!m.is_null());
        rnncell_model_free(m);
    }
}

#[test]
fn status_str_is_never_null() {
    for v in [0u32, 5, 11, 12, 99, u32::MAX] {
        assert!(!rnncell_status_str(v).is_null());
    }
}

#[test]
fn step_state_and_chunk_counts_are_checked_before_reading() {
    let rs = ModelSpec::new(CellKind::lstm(), 3, 4);
    let cs = spec_init(RnncellCell::Lstm, 3, 4);
    let hd = Handles::new(&rs, &cs, 2);
    let (m, s) = (hd.model, hd.states[0]);
    let mut y = [0.0f32; 8];
    for skew in [0, 1] {
        let gx = Guarded::new(&[0.5; 3], skew);
        let gh = Guarded::new(&[0.5; 4], skew);
        let g6 = Guarded::new(&[0.5; 6], skew);
        // SAFETY: for every call below: live handles; each guarded buffer is
        // readable for `n` floats and the counts given are one row or one
        // float larger, which must be refused before any read.
        unsafe {
            let st = rnncell_model_step(m, s, gx.data, 4, y.as_mut_ptr(), 4);
            assert_eq!(st, S::SizeMismatch);
            let st = rnncell_state_set_h(s, 0, gh.data, 5);
            assert_eq!(st, S::SizeMismatch);
            let st = rnncell_state_set_c(s, 0, gh.data, 5);
            assert_eq!(st, S::SizeMismatch);
            // Two streams' xs is 6 floats; 9 claims three.
            let st =
                rnncell_model_step_many(m, hd.states.as_ptr(), 2, g6.data, 9, y.as_mut_ptr(), 8);
            assert_eq!(st, S::SizeMismatch);
            // A chunk of 3 frames for ys of 2.
            let st = rnncell_model_step_chunk(m, s, g6.data, 9, y.as_mut_ptr(), 8);
            assert_eq!(st, S::SizeMismatch);
            // The exact counts work and read every float.
            assert_eq!(
                rnncell_model_step(m, s, gx.data, 3, y.as_mut_ptr(), 4),
                S::Ok
            );
            assert_eq!(rnncell_state_set_h(s, 0, gh.data, 4), S::Ok);
            assert_eq!(rnncell_state_set_c(s, 0, gh.data, 4), S::Ok);
            let st =
                rnncell_model_step_many(m, hd.states.as_ptr(), 2, g6.data, 6, y.as_mut_ptr(), 8);
            assert_eq!(st, S::Ok);
            assert_eq!(
                rnncell_model_step_chunk(m, s, g6.data, 6, y.as_mut_ptr(), 8),
                S::Ok
            );
        }
    }
    // The states array itself at a guard page, one pointer short.
    let raw = vec![0.0f32; 2];
    let ga = Guarded::new(&raw, 0);
    // SAFETY: the guarded buffer holds exactly one pointer.
    unsafe { ga.data.cast::<*mut RnncellState>().write_unaligned(s) };
    let xs = [0.5f32; 6];
    // SAFETY: counts claim two states; xs/ys counts match two, so the
    // array would be read past its one entry unless the check comes first.
    let st =
        unsafe { rnncell_model_step_many(m, ga.data.cast(), 2, xs.as_ptr(), 3, y.as_mut_ptr(), 4) };
    assert_eq!(st, S::SizeMismatch);
}
