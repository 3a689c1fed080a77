//! The sequence/batch call `rnncell_model_run`: every count (for the
//! layout asked for) before any buffer is touched, then `Model::run`.

use super::marshal::{Regions, Unaligned, unaligned_slice};
use super::model::model_ref;
use super::state::{Out, out_buf, size_mismatch, state_size_name};
use super::{
    FfiResult, RnncellModel, RnncellSequence, RnncellSequenceOutput, RnncellStatus, RnncellTensor,
    RnncellTensorMut, count_of, fail, floats_in, guarded, read_in, types::flag, versioned,
};
use crate::cell::model::{SeqLens, Sequence, SequenceLayout, SequenceOutput};
use crate::cell::spec::MergeMode;

/// What a buffer of `rnncell_model_run` must be: its count is compared with
/// `want` (`None`: not allowed for this model) before it is read or
/// written. `{NULL, 0}` is absent; `required` buffers must be present.
/// `name` and `shape` (how `want` is made) go into the error detail.
fn check_buf(
    name: &str,
    (data_null, len): (bool, usize),
    want: Option<usize>,
    required: bool,
    shape: &dyn Fn() -> String,
) -> FfiResult<()> {
    if data_null {
        return if len != 0 {
            Err(fail(
                RnncellStatus::NullPointer,
                format_args!("{name}.data is NULL but {name}.len is {len}"),
            ))
        } else if required {
            Err(fail(
                RnncellStatus::NullPointer,
                format_args!("{name}.data is NULL ({name} is required)"),
            ))
        } else {
            Ok(())
        };
    }
    match want {
        None => Err(fail(
            RnncellStatus::InvalidArgument,
            format_args!("{name} is given but the model has none ({})", shape()),
        )),
        Some(n) if n != len => Err(size_mismatch(
            format_args!("{name}.len"),
            len,
            n,
            format_args!("{}", shape()),
        )),
        Some(_) => Ok(()),
    }
}

/// Runs a batch of whole sequences through every layer and direction, as
/// PyTorch's and ONNX's RNN operators do (see `RnncellSequence` and
/// `RnncellSequenceOutput` for shapes and semantics; `seq.layout` selects
/// rnncell's own layout or ONNX's, so that ONNX's X, initial_h, initial_c,
/// sequence_lens, Y, Y_h, Y_c pass unchanged). Each stream's result
/// is bit-identical to stepping it alone. Any model direction. No state
/// object is used.
///
/// Memory: allocates, before writing any output, scratch bounded by the
/// model and the call (floats; see `Model::run` in the Rust docs): kb =
/// clamp(2^22 / pre_len, 1, 256) columns per block (pre_len = 4*H for an
/// LSTM or GRU, H for an RNN: the pre-activations of one column),
/// bb = min(B, kb) batch rows per block;
/// pre-activations (kb + bb - 1)*pre_len at most (<= 32 MiB, or one column);
/// bb per-row states; for L >= 2 layers min(L - 1, 2)*bb*T*out for the
/// outputs of intermediate layers (at most twice the output buffer); plus
/// one temporary copy of each misaligned or overlapping buffer. Returns
/// `RNNCELL_STATUS_ALLOCATION` (nothing written) if any of it cannot be
/// allocated.
///
/// Every count is compared with the model before any buffer is read.
/// Buffers may have any alignment; inputs may overlap outputs (they are then
/// copied first); two outputs may not overlap
/// (`RNNCELL_STATUS_INVALID_ARGUMENT`). On any error no output is written.
///
/// # Safety
/// `model` NULL or live; `seq` NULL or a valid struct of its `struct_size`
/// and `out` NULL or valid, their pointers NULL or valid for the counts
/// given with them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_run(
    model: *const RnncellModel,
    seq: *const RnncellSequence,
    out: *const RnncellSequenceOutput,
) -> RnncellStatus {
    guarded("rnncell_model_run", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: `seq` is null or valid for its struct_size (caller).
        let sq = unsafe { versioned::read(seq, "seq") }?;
        if out.is_null() {
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("out is NULL"),
            ));
        }
        // SAFETY: `out` is non-null and valid (caller).
        let o = unsafe { read_in(out) }?;
        let batch_major = flag("seq.batch_major", sq.batch_major)?;
        let layout = match sq.layout {
            0 => SequenceLayout::Native,
            1 => SequenceLayout::Onnx0,
            2 => SequenceLayout::Onnx1,
            v => {
                return Err(fail(
                    RnncellStatus::InvalidArgument,
                    format_args!(
                        "seq.layout: {v} is not an RnncellSequenceLayout (0 NATIVE, 1 ONNX0, \
                         2 ONNX1)"
                    ),
                ));
            }
        };
        if batch_major && layout != SequenceLayout::Native {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!(
                    "seq.batch_major is 1 with seq.layout {}: an ONNX layout decides the order \
                     itself (ONNX0 time-major, ONNX1 batch-major); set batch_major to 0",
                    sq.layout
                ),
            ));
        }
        // The one lengths array (at most one pointer is non-NULL).
        let given = [
            !sq.seq_lens.is_null(),
            !sq.seq_lens_i32.is_null(),
            !sq.seq_lens_i64.is_null(),
        ];
        let n_given = given.iter().filter(|g| **g).count();
        if n_given > 1 {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!(
                    "seq.seq_lens ({}), seq.seq_lens_i32 ({}) and seq.seq_lens_i64 ({}): {n_given} \
                     are non-NULL; give the lengths once",
                    nul(given[0]),
                    nul(given[1]),
                    nul(given[2])
                ),
            ));
        }
        let lens_name = match given {
            [_, true, _] => "seq.seq_lens_i32",
            [_, _, true] => "seq.seq_lens_i64",
            _ => "seq.seq_lens",
        };
        let s = m.spec();
        // 1. Every count, before any buffer is touched.
        let (d, ld) = (s.directions(), s.num_layers * s.directions());
        let (t, b) = (sq.steps, sq.batch);
        if t == 0 || b == 0 {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!("seq.steps is {t} and seq.batch is {b}: both must be at least 1"),
            ));
        }
        let n_in = count_of::<f32>(&[t, b, s.input_size])?;
        let n_out = count_of::<f32>(&[t, b, s.output_size()])?;
        let n_h = count_of::<f32>(&[ld, b, s.state_size()])?;
        let n_c = count_of::<f32>(&[ld, b, s.hidden_size])?;
        let n_c = s.has_cell_state().then_some(n_c);
        let tens = |t: RnncellTensor| (t.data.is_null(), t.len);
        let tmut = |t: RnncellTensorMut| (t.data.is_null(), t.len);
        let hr = state_size_name(m);
        let (i_sz, hr_sz, h_sz, out_sz) =
            (s.input_size, s.state_size(), s.hidden_size, s.output_size());
        let concat = s.merge == MergeMode::Concat;
        let ldn = "L*D = num_layers x directions";
        let out_n = if d == 2 && concat {
            "D*Hr, concat of both directions"
        } else {
            "Hr"
        };
        // The shapes, for error messages only (formatted on failure).
        let s_in = || match layout {
            SequenceLayout::Native if batch_major => {
                format!("[B={b}, T={t}, I={i_sz}] = batch x steps x input_size (batch_major)")
            }
            SequenceLayout::Native => {
                format!("[T={t}, B={b}, I={i_sz}] = steps x batch x input_size")
            }
            SequenceLayout::Onnx0 => format!("X [T={t}, B={b}, I={i_sz}] (ONNX layout 0)"),
            _ => format!("X [B={b}, T={t}, I={i_sz}] (ONNX layout 1)"),
        };
        let s_out = || match layout {
            SequenceLayout::Native if batch_major => {
                format!("[B={b}, T={t}, {out_sz}] = batch x steps x output size ({out_n}, {hr})")
            }
            SequenceLayout::Native => {
                format!("[T={t}, B={b}, {out_sz}] = steps x batch x output size ({out_n}, {hr})")
            }
            SequenceLayout::Onnx0 if concat => {
                format!("Y [T={t}, D={d}, B={b}, Hr={hr_sz}] (ONNX layout 0; D = directions, {hr})")
            }
            SequenceLayout::Onnx0 => {
                format!("[T={t}, B={b}, Hr={hr_sz}] (ONNX layout 0, merge sum; {hr})")
            }
            _ if concat => {
                format!("Y [B={b}, T={t}, D={d}, Hr={hr_sz}] (ONNX layout 1; D = directions, {hr})")
            }
            _ => format!("[B={b}, T={t}, Hr={hr_sz}] (ONNX layout 1, merge sum; {hr})"),
        };
        let s_h = || match layout {
            SequenceLayout::Onnx1 => {
                format!("[B={b}, L*D={ld}, Hr={hr_sz}] (ONNX layout 1): {ldn}, {hr}")
            }
            _ => format!("[L*D={ld}, B={b}, Hr={hr_sz}]: {ldn}, {hr}"),
        };
        let s_c = || match (s.has_cell_state(), layout) {
            (false, _) => "only an LSTM has a c state".to_owned(),
            (true, SequenceLayout::Onnx1) => {
                format!("[B={b}, L*D={ld}, H={h_sz}] (ONNX layout 1): {ldn}, hidden_size")
            }
            (true, _) => format!("[L*D={ld}, B={b}, H={h_sz}]: {ldn}, hidden_size"),
        };
        let s_lens = || format!("one length per sequence: seq.batch = {b}");
        let lens_ptr_null = n_given == 0;
        // (name, (data is NULL, len), wanted len, required, shape)
        type Check<'s> = (
            &'s str,
            (bool, usize),
            Option<usize>,
            bool,
            &'s dyn Fn() -> String,
        );
        let list: [Check; 7] = [
            ("seq.input", tens(sq.input), Some(n_in), true, &s_in),
            ("seq.h0", tens(sq.h0), Some(n_h), false, &s_h),
            ("seq.c0", tens(sq.c0), n_c, false, &s_c),
            (
                lens_name,
                (lens_ptr_null, sq.seq_lens_len),
                Some(b),
                false,
                &s_lens,
            ),
            ("out.output", tmut(o.output), Some(n_out), true, &s_out),
            ("out.h_n", tmut(o.h_n), Some(n_h), false, &s_h),
            ("out.c_n", tmut(o.c_n), n_c, false, &s_c),
        ];
        for (name, buf, want, required, shape) in list {
            check_buf(name, buf, want, required, shape)?;
        }
        // 2. Regions: outputs pairwise disjoint; inputs overlapping an
        //    output are copied before anything is written.
        let mut reg = Regions::<9>::new();
        let r_in = reg.read(sq.input.data, sq.input.len)?;
        let r_h0 = reg.read(sq.h0.data, sq.h0.len)?;
        let r_c0 = reg.read(sq.c0.data, sq.c0.len)?;
        reg.read(sq.seq_lens, sq.seq_lens_len)?;
        reg.read(sq.seq_lens_i32, sq.seq_lens_len)?;
        reg.read(sq.seq_lens_i64, sq.seq_lens_len)?;
        for t in [o.output, o.h_n, o.c_n] {
            reg.write(t.data, t.len)?;
        }
        reg.check_writes()?;
        // 3. Inputs as Rust values.
        // SAFETY: each lengths pointer is null or readable for
        // seq_lens_len == B entries (caller; count checked), any alignment;
        // copied at once.
        let lens = unsafe { Lens::read(&sq, lens_name, t) }?;
        // SAFETY: each input is null or readable for its count (caller),
        // which matches the model (checked); copied when it overlaps an
        // output or is misaligned.
        let input = unsafe { floats_in(sq.input.data, sq.input.len, reg.aliased(r_in)) }?
            .ok_or(RnncellStatus::NullPointer)?;
        // SAFETY: as above.
        let h0 = unsafe { floats_in(sq.h0.data, sq.h0.len, reg.aliased(r_h0)) }?;
        // SAFETY: as above.
        let c0 = unsafe { floats_in(sq.c0.data, sq.c0.len, reg.aliased(r_c0)) }?;
        // 4. Outputs: nothing above reads caller memory any more.
        // SAFETY: each output is null or writable for its count (caller),
        // pairwise disjoint (checked) and disjoint from every borrowed input
        // (overlapping inputs were copied).
        let mut output = unsafe { out_buf(o.output) }?.ok_or(RnncellStatus::NullPointer)?;
        // SAFETY: as above.
        let mut h_n = unsafe { out_buf(o.h_n) }?;
        // SAFETY: as above.
        let mut c_n = unsafe { out_buf(o.c_n) }?;
        let seq = Sequence {
            input: &input,
            steps: t,
            batch: b,
            batch_major,
            seq_lens: None,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            layout,
            lengths: lens.as_ref().map(Lens::get),
        };
        let mut so = SequenceOutput {
            output: output.slice(),
            h_n: h_n.as_mut().map(Out::slice),
            c_n: c_n.as_mut().map(Out::slice),
        };
        m.run(&seq, &mut so)?;
        for b in [Some(output), h_n, c_n].into_iter().flatten() {
            b.finish();
        }
        Ok(())
    })
}

fn nul(given: bool) -> &'static str {
    if given { "non-NULL" } else { "NULL" }
}

/// A copy of the caller's lengths, in the caller's integer type.
enum Lens {
    Usize(Vec<usize>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Lens {
    fn get(&self) -> SeqLens<'_> {
        match self {
            Lens::Usize(v) => SeqLens::Usize(v),
            Lens::I32(v) => SeqLens::I32(v),
            Lens::I64(v) => SeqLens::I64(v),
        }
    }

    /// Copies the one non-NULL lengths array of `sq` (`None`: all NULL)
    /// and checks every entry is in 0..=`t`; a bad entry is named
    /// (`seq.seq_lens_i32[1] is -3`).
    ///
    /// # Safety
    /// Every lengths pointer of `sq` null or readable for `seq_lens_len`
    /// elements (any alignment), whose count was checked.
    unsafe fn read(sq: &RnncellSequence, name: &str, t: usize) -> FfiResult<Option<Lens>> {
        /// # Safety
        /// `p` non-null, readable for `n` elements, count checked.
        unsafe fn copy<T: Copy>(p: *const T, n: usize) -> FfiResult<Vec<T>> {
            // SAFETY: forwarded (caller).
            let l = unsafe { unaligned_slice(p, n) };
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(|_| {
                fail(
                    RnncellStatus::Allocation,
                    format_args!("cannot allocate a copy of {n} lengths"),
                )
            })?;
            v.extend(l.iter().map(Unaligned::get));
            Ok(v)
        }
        let n = sq.seq_lens_len;
        let lens = if !sq.seq_lens.is_null() {
            // SAFETY: non-null, readable for n elements (caller), count
            // checked.
            Lens::Usize(unsafe { copy(sq.seq_lens, n) }?)
        } else if !sq.seq_lens_i32.is_null() {
            // SAFETY: as above.
            Lens::I32(unsafe { copy(sq.seq_lens_i32, n) }?)
        } else if !sq.seq_lens_i64.is_null() {
            // SAFETY: as above.
            Lens::I64(unsafe { copy(sq.seq_lens_i64, n) }?)
        } else {
            return Ok(None);
        };
        let bad = |i: usize, v: &dyn std::fmt::Display| {
            fail(
                RnncellStatus::InvalidArgument,
                format_args!("{name}[{i}] is {v}: not in 0..={t} (seq.steps)"),
            )
        };
        let ok = |v: i64| (0..=t as i64).contains(&v);
        match &lens {
            Lens::Usize(v) => {
                if let Some(i) = v.iter().position(|&x| x > t) {
                    return Err(bad(i, &v[i]));
                }
            }
            Lens::I32(v) => {
                if let Some(i) = v.iter().position(|&x| !ok(i64::from(x))) {
                    return Err(bad(i, &v[i]));
                }
            }
            Lens::I64(v) => {
                if let Some(i) = v.iter().position(|&x| !ok(x)) {
                    return Err(bad(i, &v[i]));
                }
            }
        }
        Ok(Some(lens))
    }
}
