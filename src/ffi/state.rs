//! Per-stream states, the streaming step and the sequence/batch call.

use super::model::model_ref;
use std::mem::MaybeUninit;

use super::marshal::{Handle, Regions, Tagged, Unaligned, unaligned_slice};
use super::{
    FfiResult, RnncellModel, RnncellStatus, RnncellTensorMut, check_count, copy_in, copy_out,
    count_of, fail, floats_in, guarded, try_vec, write_out,
};
use crate::cell::model::{Model, State};
use crate::cell::spec::Direction;
use crate::kernels::{MAX_COLS, balanced};

/// The recurrent state of one stream (h, and c for an LSTM, of every layer)
/// plus the scratch its steps need. Opaque: create with
/// `rnncell_state_new` or `rnncell_state_copy`, free with
/// `rnncell_state_free`. A state belongs to one thread at a time: calls that
/// take `RnncellState *` must not run concurrently on the same state; it may
/// move between threads.
pub struct RnncellState {
    /// The state behind [`Handle::MAGIC`] (the only field: offset 0).
    t: Tagged<StateInner>,
}

/// What an [`RnncellState`] holds.
struct StateInner {
    pub(crate) state: State,
    /// Aligned copy of a misaligned (or aliased) `x` (I floats).
    x: Vec<f32>,
    /// Aligned stand-in for a misaligned `y`, and for misaligned `h`/`c`
    /// in `_set_*` (max(Hr, H) floats).
    y: Vec<f32>,
    /// Set only while `rnncell_model_step_many` checks that its states are
    /// distinct (two `&mut` to one state would be undefined behaviour).
    marked: bool,
}

const _: () = assert!(std::mem::offset_of!(RnncellState, t) == 0);

// SAFETY: the only field is a Tagged (offset 0, asserted above), tagged
// MAGIC only by `RnncellState::new` and FREED before the box is dropped.
unsafe impl Handle for RnncellState {
    const KIND: &'static str = "state";
    const MAGIC: u64 = 0x726e_6e63_7374_6174; // "rnncstat"
    fn magic_mut(&mut self) -> &mut u64 {
        self.t.magic_mut()
    }
}

impl RnncellState {
    fn new(state: State, inputs: usize, outputs: usize) -> FfiResult<RnncellState> {
        Ok(RnncellState {
            t: Tagged::new::<RnncellState>(StateInner {
                state,
                x: try_vec(inputs)?,
                y: try_vec(outputs)?,
                marked: false,
            }),
        })
    }
}

/// The inner state of a handle already checked by `state_ref`.
///
/// # Safety
/// `p` is a live state handle (checked) with no other reference alive
/// during 'a.
unsafe fn inner_mut<'a>(p: *mut RnncellState) -> &'a mut StateInner {
    // SAFETY: live and exclusively ours during 'a (caller).
    unsafe { &mut (*p).t.value }
}

/// # Safety
/// `state` null or a state handle, not used elsewhere during 'a.
unsafe fn state_mut<'a>(state: *mut RnncellState) -> FfiResult<&'a mut StateInner> {
    // SAFETY: null or a handle the library returned, used by one thread at a
    // time (caller contract), so this is the only reference.
    unsafe { RnncellState::from_mut_ptr(state) }.map(|s| &mut s.t.value)
}

/// # Safety
/// `state` null or a state handle, not mutated during 'a.
unsafe fn state_ref<'a>(state: *const RnncellState) -> FfiResult<&'a StateInner> {
    // SAFETY: null or a handle the library returned (caller).
    unsafe { RnncellState::from_ptr(state) }.map(|s| &s.t.value)
}

/// Creates a zero state for one stream of `model`. The caller owns
/// `*out_state` and frees it with `rnncell_state_free`; on failure
/// `*out_state` is NULL. A state is tied to its model: using it with
/// another model is `RNNCELL_STATUS_STATE_MISMATCH`.
///
/// # Safety
/// `model` NULL or live; `out_state` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_new(
    model: *const RnncellModel,
    out_state: *mut *mut RnncellState,
) -> RnncellStatus {
    // SAFETY: forwarded contracts.
    unsafe {
        new_handle("rnncell_state_new", out_state, || {
            let m = model_ref(model)?;
            let s = m.spec();
            RnncellState::new(
                m.try_new_state()?,
                s.input_size,
                s.state_size().max(s.hidden_size),
            )
        })
    }
}

/// Runs `make` and stores its handle, or NULL on failure, in `*out` (which
/// is written only after `make` has read everything it needs).
///
/// # Safety
/// `out` null or writable; `make`'s own contracts.
unsafe fn new_handle(
    name: &str,
    out: *mut *mut RnncellState,
    make: impl FnOnce() -> FfiResult<RnncellState>,
) -> RnncellStatus {
    guarded(name, || {
        if out.is_null() {
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("out_state is NULL"),
            ));
        }
        // A panic in `make` still leaves NULL in *out.
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(make))
            .unwrap_or(Err(RnncellStatus::Panic));
        let (p, r) = match made {
            Ok(st) => (RnncellState::into_raw(st), Ok(())),
            Err(s) => (std::ptr::null_mut(), Err(s)),
        };
        // SAFETY: checked non-null; writable (caller).
        unsafe { write_out(out, p) }?;
        r
    })
}

/// Forks a stream: `*out_state` receives a new state with the same h and c
/// as `state`, tied to the same model (for beam search, lookahead, undo).
/// The caller owns and frees it; on failure `*out_state` is NULL.
///
/// # Safety
/// `state` NULL or live (not being mutated by another thread); `out_state`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_copy(
    state: *const RnncellState,
    out_state: *mut *mut RnncellState,
) -> RnncellStatus {
    // SAFETY: forwarded contracts.
    unsafe {
        new_handle("rnncell_state_copy", out_state, || {
            let src = state_ref(state)?;
            RnncellState::new(src.state.try_clone()?, src.x.len(), src.y.len())
        })
    }
}

/// Zeros h and c of every layer (a new utterance on the same stream).
///
/// # Safety
/// `state` NULL or live and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_reset(state: *mut RnncellState) -> RnncellStatus {
    guarded("rnncell_state_reset", || {
        // SAFETY: `state` is null or live and exclusively ours (caller).
        unsafe { state_mut(state) }?.state.reset();
        Ok(())
    })
}

/// Frees a state. NULL is a no-op, and so is a pointer that is not a live
/// state (a second free of the same state, a model): the handle's magic word
/// is checked and poisoned. May be called before or after freeing the
/// model.
///
/// # Safety
/// `state` NULL or a pointer from `rnncell_state_new`/`_copy`, not in use
/// by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_free(state: *mut RnncellState) {
    // SAFETY: null or a state handle not in use elsewhere (caller).
    super::boundary(|| unsafe { RnncellState::free(state) })
}

/// Copies h of layer `layer` (Hr floats, `state_size` of
/// `rnncell_model_info`) into `h`, which holds `h_len` floats, any
/// alignment. `RNNCELL_STATUS_INVALID_ARGUMENT` if `layer` >= L.
///
/// # Safety
/// `state` NULL or live; `h` NULL or writable for `h_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_get_h(
    state: *const RnncellState,
    layer: usize,
    h: *mut f32,
    h_len: usize,
) -> RnncellStatus {
    guarded("rnncell_state_get_h", || {
        // SAFETY: `state` is null or live (caller).
        let st = unsafe { state_ref(state) }?;
        let src = layer_h(&st.state, layer)?;
        // SAFETY: `h` null or writable for h_len floats (caller).
        unsafe { get_into(src, h, h_len, "h") }
    })
}

/// Copies c of layer `layer` (H floats) into `c` (`c_len` floats, any
/// alignment). `RNNCELL_STATUS_INVALID_ARGUMENT` for a cell without c
/// (GRU, RNN) or `layer` >= L.
///
/// # Safety
/// `state` NULL or live; `c` NULL or writable for `c_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_get_c(
    state: *const RnncellState,
    layer: usize,
    c: *mut f32,
    c_len: usize,
) -> RnncellStatus {
    guarded("rnncell_state_get_c", || {
        // SAFETY: `state` is null or live (caller).
        let st = unsafe { state_ref(state) }?;
        let src = layer_c(&st.state, layer)?;
        // SAFETY: `c` null or writable for c_len floats (caller).
        unsafe { get_into(src, c, c_len, "c") }
    })
}

/// Sets h of layer `layer` from `h` (`h_len` = Hr floats, any alignment).
/// On any error the state is unchanged.
///
/// # Safety
/// `state` NULL or live and not in use by another thread; `h` NULL or
/// readable for `h_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_set_h(
    state: *mut RnncellState,
    layer: usize,
    h: *const f32,
    h_len: usize,
) -> RnncellStatus {
    guarded("rnncell_state_set_h", || {
        // SAFETY: `state` is null or live and exclusively ours (caller).
        let st = unsafe { state_mut(state) }?;
        let n = layer_h(&st.state, layer)?.len();
        // SAFETY: `h` null or readable for h_len floats (caller).
        let v = unsafe { set_from(&mut st.y, h, h_len, n, "h") }?;
        Ok(st.state.set_h(layer, v)?)
    })
}

/// Sets c of layer `layer` from `c` (`c_len` = H floats, any alignment).
/// On any error the state is unchanged.
///
/// # Safety
/// As `rnncell_state_set_h`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_state_set_c(
    state: *mut RnncellState,
    layer: usize,
    c: *const f32,
    c_len: usize,
) -> RnncellStatus {
    guarded("rnncell_state_set_c", || {
        // SAFETY: `state` is null or live and exclusively ours (caller).
        let st = unsafe { state_mut(state) }?;
        let n = layer_c(&st.state, layer)?.len();
        // SAFETY: `c` null or readable for c_len floats (caller).
        let v = unsafe { set_from(&mut st.y, c, c_len, n, "c") }?;
        Ok(st.state.set_c(layer, v)?)
    })
}

/// `layer` < L, or an error naming both.
fn check_layer(st: &State, layer: usize) -> FfiResult<()> {
    if layer >= st.layers() {
        return Err(fail(
            RnncellStatus::InvalidArgument,
            format_args!(
                "layer is {layer}, the state has {} (layers x directions, 0 to {})",
                st.layers(),
                st.layers() - 1
            ),
        ));
    }
    Ok(())
}

fn layer_h(st: &State, layer: usize) -> FfiResult<&[f32]> {
    check_layer(st, layer)?;
    Ok(st.h(layer))
}

fn layer_c(st: &State, layer: usize) -> FfiResult<&[f32]> {
    check_layer(st, layer)?;
    st.c(layer).ok_or_else(|| {
        fail(
            RnncellStatus::InvalidArgument,
            format_args!("the cell has no c state (only an LSTM has one)"),
        )
    })
}

/// Checks `dst`/`len` against `src` and copies `src` out.
///
/// # Safety
/// `dst` null or writable for `len` floats.
unsafe fn get_into(src: &[f32], dst: *mut f32, len: usize, what: &str) -> FfiResult<()> {
    if dst.is_null() {
        return Err(fail(
            RnncellStatus::NullPointer,
            format_args!("{what} is NULL"),
        ));
    }
    check_count::<f32>(len)?;
    if len != src.len() {
        return Err(fail(
            RnncellStatus::SizeMismatch,
            format_args!(
                "{what}_len is {len}, the layer's {what} has {} floats",
                src.len()
            ),
        ));
    }
    // SAFETY: `dst` is writable for len == src.len() floats (caller) and is
    // caller memory, disjoint from the state's own buffers.
    unsafe { copy_out(src, dst) };
    Ok(())
}

/// The caller's `src` (`len` floats, expected `n`) as an aligned slice:
/// borrowed if aligned, else copied into `scratch`.
///
/// # Safety
/// `src` null or readable for `len` floats and disjoint from the state.
unsafe fn set_from<'a>(
    scratch: &'a mut [f32],
    src: *const f32,
    len: usize,
    n: usize,
    what: &str,
) -> FfiResult<&'a [f32]> {
    if src.is_null() {
        return Err(fail(
            RnncellStatus::NullPointer,
            format_args!("{what} is NULL"),
        ));
    }
    check_count::<f32>(len)?;
    if len != n {
        return Err(fail(
            RnncellStatus::SizeMismatch,
            format_args!("{what}_len is {len}, the layer's {what} has {n} floats"),
        ));
    }
    if src.is_aligned() {
        // SAFETY: non-null, aligned, readable for n floats (caller), n*4 <=
        // isize::MAX (check_count), disjoint from the state (caller).
        return Ok(unsafe { std::slice::from_raw_parts(src, n) });
    }
    // SAFETY: readable for n floats, disjoint from our scratch, and n <=
    // scratch.len() (max(Hr, H) floats, n is Hr or H).
    unsafe { copy_in(src, scratch, n) };
    Ok(&scratch[..n])
}

/// Checks, in `Model::step`'s order, everything that could make it fail, so
/// that a failing step returns before anything is written or allocated.
fn step_precheck(m: &Model, st: &StateInner, x_len: usize, y_len: usize) -> FfiResult<()> {
    let s = m.spec();
    check_forward(m)?;
    if !m.owns(&st.state) {
        return Err(state_mismatch(format_args!("state")));
    }
    check_count::<f32>(x_len)?;
    check_count::<f32>(y_len)?;
    if x_len != s.input_size {
        return Err(size_mismatch(
            format_args!("x_len"),
            x_len,
            s.input_size,
            format_args!("input_size (I)"),
        ));
    }
    if y_len != s.state_size() {
        return Err(size_mismatch(
            format_args!("y_len"),
            y_len,
            s.state_size(),
            format_args!("{}", state_size_name(m)),
        ));
    }
    Ok(())
}

/// Streaming calls take forward models only.
fn check_forward(m: &Model) -> FfiResult<()> {
    if m.spec().direction != Direction::Forward {
        return Err(fail(
            RnncellStatus::Unsupported,
            format_args!(
                "the model is {:?}: only forward models stream one step at a time \
                 (use rnncell_model_run for whole sequences)",
                m.spec().direction
            ),
        ));
    }
    Ok(())
}

/// A state of another model.
fn state_mismatch(which: std::fmt::Arguments<'_>) -> RnncellStatus {
    fail(
        RnncellStatus::StateMismatch,
        format_args!("{which} was made by rnncell_state_new for a different model"),
    )
}

/// `what` holds `got` elements where the model needs `want` (`from`: the
/// model's sizes that make `want`).
/// Formats without allocating (the step calls allocate on no path).
pub(super) fn size_mismatch(
    what: std::fmt::Arguments<'_>,
    got: usize,
    want: usize,
    from: std::fmt::Arguments<'_>,
) -> RnncellStatus {
    fail(
        RnncellStatus::SizeMismatch,
        format_args!("{what} is {got}, the model needs {want} ({from})"),
    )
}

/// Where Hr comes from, for messages.
pub(super) fn state_size_name(m: &Model) -> &'static str {
    if m.spec().proj_size() > 0 {
        "the state size Hr = lstm_proj_size"
    } else {
        "the state size Hr = hidden_size"
    }
}

/// Advances one stream by one time step: reads `x` (I floats), updates
/// `state`, writes the last layer's new h to `y` (Hr floats). Forward
/// models only (`RNNCELL_STATUS_UNSUPPORTED` otherwise; use
/// `rnncell_model_run`). Allocates nothing, on every path.
///
/// `x` and `y` may have any alignment and may overlap (even `x == y`:
/// `x` is read before `y` is written). On any error the state and `y` are
/// unchanged. NaN and infinities are not checked: they propagate through the
/// arithmetic (a NaN input gives NaN outputs).
///
/// # Safety
/// `model` NULL or live; `state` NULL or live and not in use by another
/// thread; `x` NULL or readable for `x_len` floats; `y` NULL or writable for
/// `y_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_step(
    model: *const RnncellModel,
    state: *mut RnncellState,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> RnncellStatus {
    guarded("rnncell_model_step", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: `state` is null or live and exclusively ours (caller).
        let st = unsafe { state_mut(state) }?;
        if x.is_null() || y.is_null() {
            let which = if x.is_null() { "x" } else { "y" };
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("{which} is NULL"),
            ));
        }
        step_precheck(m, st, x_len, y_len)?;
        let mut reg = Regions::<2>::new();
        let rx = reg.read(x, x_len)?;
        reg.write(y, y_len)?;
        let StateInner {
            state,
            x: xs,
            y: ys,
            ..
        } = st;
        // The fast path borrows x when it is aligned and disjoint from y;
        // otherwise x is copied into the state's scratch first, so no
        // reference to the caller's x is alive when y is written.
        let xv: &[f32] = if x.is_aligned() && !reg.aliased(rx) {
            // SAFETY: non-null, aligned, readable for x_len floats (caller),
            // x_len*4 <= isize::MAX (precheck), and disjoint from y and from
            // the state (so not mutated while borrowed).
            unsafe { std::slice::from_raw_parts(x, x_len) }
        } else {
            // SAFETY: readable for x_len floats (caller); `xs` holds exactly
            // I == x_len floats (precheck) and is our own allocation.
            unsafe { copy_in(x, xs, x_len) };
            xs
        };
        if y.is_aligned() {
            // SAFETY: non-null, aligned, writable for y_len floats (caller);
            // no other reference to this memory is alive: `xv` is either
            // disjoint from it or our scratch copy.
            let yv = unsafe { std::slice::from_raw_parts_mut(y, y_len) };
            Ok(m.step(state, xv, yv)?)
        } else {
            m.step(state, xv, ys.get_mut(..y_len).ok_or(RnncellStatus::Panic)?)?;
            // SAFETY: `y` is writable for y_len floats (caller) and caller
            // memory, disjoint from our scratch.
            unsafe { copy_out(&ys[..y_len], y) };
            Ok(())
        }
    })
}

/// An output buffer of `run`: the caller's memory when aligned, else a
/// scratch vector copied out after success.
pub(super) enum Out<'a> {
    Direct(&'a mut [f32]),
    Scratch(Vec<f32>, *mut f32),
}

impl Out<'_> {
    pub(super) fn slice(&mut self) -> &mut [f32] {
        match self {
            Out::Direct(s) => s,
            Out::Scratch(v, _) => v,
        }
    }

    /// Writes a scratch buffer to the caller's memory (the call's last
    /// write to it).
    pub(super) fn finish(self) {
        if let Out::Scratch(v, dst) = self {
            // SAFETY: `dst` is writable for v.len() floats (the count the
            // buffer was registered with) and disjoint from our vector.
            unsafe { copy_out(&v, dst) };
        }
    }
}

/// # Safety
/// `t.data` null or writable for `t.len` floats, not otherwise referenced
/// during 'a (every overlapping input was copied first).
pub(super) unsafe fn out_buf<'a>(t: RnncellTensorMut) -> FfiResult<Option<Out<'a>>> {
    if t.data.is_null() {
        return if t.len == 0 {
            Ok(None)
        } else {
            Err(RnncellStatus::NullPointer)
        };
    }
    check_count::<f32>(t.len)?;
    if t.len == 0 {
        return Ok(Some(Out::Direct(&mut [])));
    }
    if t.data.is_aligned() {
        // SAFETY: non-null, aligned, writable for len floats (caller), len*4
        // <= isize::MAX (checked); outputs were checked pairwise disjoint
        // and inputs overlapping them were copied, so this is the only
        // reference.
        return Ok(Some(Out::Direct(unsafe {
            std::slice::from_raw_parts_mut(t.data, t.len)
        })));
    }
    Ok(Some(Out::Scratch(try_vec(t.len)?, t.data)))
}

/// Advances N independent streams of `model` by one step each, in one call
/// (weights are loaded once for up to 24 streams, much faster than N calls
/// of `rnncell_model_step` when N > 1; more streams are split into balanced
/// groups of at most 24). `states` holds N distinct state pointers; `xs` is
/// `[N, I]` and `ys` `[N, Hr]`, row i belonging to `states[i]`. Which
/// streams take part may change from call to call. Each stream's result is
/// bit-identical to `rnncell_model_step` on it alone. Allocates nothing, on
/// every path. N = 0 does nothing.
///
/// Errors (no state changes and `ys` is not written): a NULL pointer or a
/// NULL entry in `states`; `RNNCELL_STATUS_INVALID_ARGUMENT` if a state
/// appears twice, an entry is not a live state, or the `states` array
/// overlaps `ys`; `RNNCELL_STATUS_STATE_MISMATCH` if a state belongs to
/// another model; `RNNCELL_STATUS_SIZE_MISMATCH` if `xs_len != N*I` or
/// `ys_len != N*Hr`; `RNNCELL_STATUS_UNSUPPORTED` for a model that is not
/// forward. `xs` and `ys` may have any alignment and may overlap (`xs` is
/// then copied first).
///
/// # Safety
/// `model` NULL or live; `states` NULL or readable for `n_states` pointers,
/// each NULL or a live state not in use by another thread; `xs` NULL or
/// readable for `xs_len` floats; `ys` NULL or writable for `ys_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_step_many(
    model: *const RnncellModel,
    states: *const *mut RnncellState,
    n_states: usize,
    xs: *const f32,
    xs_len: usize,
    ys: *mut f32,
    ys_len: usize,
) -> RnncellStatus {
    guarded("rnncell_model_step_many", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        for (null, name) in [
            (states.is_null(), "states"),
            (xs.is_null(), "xs"),
            (ys.is_null(), "ys"),
        ] {
            if null {
                return Err(fail(
                    RnncellStatus::NullPointer,
                    format_args!("{name} is NULL"),
                ));
            }
        }
        let s = m.spec();
        check_forward(m)?;
        // 1. Counts.
        let mut reg = Regions::<3>::new();
        let r_states = reg.read(states, n_states)?;
        let r_xs = reg.read(xs, xs_len)?;
        reg.write(ys, ys_len)?;
        let (i_sz, hr) = (s.input_size, s.state_size());
        if xs_len != count_of::<f32>(&[n_states, i_sz])? {
            return Err(size_mismatch(
                format_args!("xs_len"),
                xs_len,
                n_states * i_sz,
                format_args!("[N={n_states}, I={i_sz}] = n_states x input_size"),
            ));
        }
        if ys_len != count_of::<f32>(&[n_states, hr])? {
            return Err(size_mismatch(
                format_args!("ys_len"),
                ys_len,
                n_states * hr,
                format_args!(
                    "[N={n_states}, Hr={hr}] = n_states x {}",
                    state_size_name(m)
                ),
            ));
        }
        if n_states == 0 {
            return Ok(());
        }
        // 2. Regions: the pointer array is read again after ys is written
        //    (groups, copy-out), so it may not overlap ys at all.
        if reg.aliased(r_states) {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!("the states array overlaps ys"),
            ));
        }
        // SAFETY: non-null, readable for n_states pointers (caller), count
        // checked, any alignment, and disjoint from the only writable
        // region, so it stays unchanged during the call.
        let handles = unsafe { unaligned_slice(states, n_states) };
        // 3. Every handle: live, ours, distinct.
        for (i, p) in handles.iter().map(Unaligned::get).enumerate() {
            // SAFETY: null or a state handle (caller); only shared
            // references exist during this loop.
            let st = unsafe { state_ref(p) }.map_err(|e| {
                // Name the entry (the handle check recorded what is wrong).
                fail(e, format_args!("states[{i}] is NULL or not a live state"))
            })?;
            if !m.owns(&st.state) {
                return Err(state_mismatch(format_args!("states[{i}]")));
            }
        }
        // Distinctness in O(N) without allocating: mark each state, a mark
        // already set is a duplicate; then clear the marks that were set.
        let mut dup = false;
        let mut marked = 0;
        while marked < n_states {
            // SAFETY: a live state (checked); this temporary &mut is the
            // only reference (entries are visited one at a time).
            let st = unsafe { inner_mut(handles[marked].get()) };
            if st.marked {
                dup = true;
                break;
            }
            st.marked = true;
            marked += 1;
        }
        for h in &handles[..marked] {
            // SAFETY: as above; the first `marked` entries are distinct.
            unsafe { inner_mut(h.get()).marked = false };
        }
        if dup {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!("states[{marked}] appears earlier in states too (each stream once)"),
            ));
        }
        // 4. Inputs: misaligned or aliased rows go to each state's scratch
        //    before anything is written.
        let x_direct = xs.is_aligned() && !reg.aliased(r_xs);
        if !x_direct {
            for (i, h) in handles.iter().enumerate() {
                // SAFETY: a live, distinct state, no other reference alive.
                let st = unsafe { inner_mut(h.get()) };
                // SAFETY: its x scratch holds I floats; `xs` is readable for
                // N*I floats (caller), so row i is, and it is caller memory.
                unsafe { copy_in(xs.add(i * i_sz), &mut st.x, i_sz) };
            }
        }
        let x_all: &[f32] = if x_direct {
            // SAFETY: aligned, readable for xs_len floats (caller, count
            // checked), disjoint from ys (checked) and from every state.
            unsafe { std::slice::from_raw_parts(xs, xs_len) }
        } else {
            &[]
        };
        let y_direct = ys.is_aligned();
        let y_all: &mut [f32] = if y_direct {
            // SAFETY: aligned, writable for ys_len floats (caller, count
            // checked); no reference to it exists: `x_all` is disjoint from
            // it or empty, `handles` is disjoint from it (checked).
            unsafe { std::slice::from_raw_parts_mut(ys, ys_len) }
        } else {
            &mut []
        };
        let mut y_rows = y_all.chunks_exact_mut(hr);
        // 5. Balanced groups of at most MAX_COLS streams (N = 25 is 13 + 12,
        //    not 24 + a lone stream that streams every weight again).
        for r in balanced(n_states, MAX_COLS) {
            let k = r.len();
            let mut sts: [MaybeUninit<&mut State>; MAX_COLS] =
                [const { MaybeUninit::uninit() }; MAX_COLS];
            let mut xv: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
            let mut yv: [&mut [f32]; MAX_COLS] = Default::default();
            for (j, i) in r.enumerate() {
                // SAFETY: the states are distinct (checked) and not used by
                // other threads (caller): one &mut per state.
                let StateInner { state, x, y, .. } = unsafe { inner_mut(handles[i].get()) };
                sts[j].write(state);
                xv[j] = if x_direct {
                    &x_all[i * i_sz..][..i_sz]
                } else {
                    &x[..i_sz]
                };
                yv[j] = if y_direct {
                    y_rows.next().ok_or(RnncellStatus::Panic)?
                } else {
                    &mut y[..hr]
                };
            }
            // SAFETY: the first k elements were initialised above, and
            // MaybeUninit<T> has the layout of T.
            let sts =
                unsafe { std::slice::from_raw_parts_mut(sts.as_mut_ptr().cast::<&mut State>(), k) };
            m.step_many(sts, &xv[..k], &mut yv[..k])?;
        }
        // 6. Misaligned ys: the last write to caller memory.
        if !y_direct {
            for (i, h) in handles.iter().enumerate() {
                // SAFETY: a live, distinct state, no other reference alive.
                let st = unsafe { inner_mut(h.get()) };
                // SAFETY: its y scratch holds >= Hr floats; `ys` is writable
                // for N*Hr floats (caller) and disjoint from the scratch.
                unsafe { copy_out(&st.y[..hr], ys.add(i * hr)) };
            }
        }
        Ok(())
    })
}

/// Advances one stream by K frames in one call (chunked streaming, faster
/// than K calls of `rnncell_model_step`): `xs` is `[K, I]` (`xs_len` a
/// positive multiple of I, else `RNNCELL_STATUS_INVALID_ARGUMENT`), `ys` is
/// `[K, Hr]`, the last layer's h after each frame. Bit-identical to K calls of
/// `rnncell_model_step`. Frames are processed in blocks of kb =
/// clamp(2^22 / pre_len, 1, 256) (pre_len = 4*H floats for an LSTM or GRU,
/// H for an RNN: the pre-activations of one frame). Uses a workspace
/// inside the state of min(K, kb)*(pre_len + 2*Hr) floats (at most 2^22 + 512*Hr floats, or
/// pre_len + 2*Hr for a huge layer), allocated only when it must grow;
/// misaligned or overlapping `xs`/`ys` also cost one temporary copy each.
/// `RNNCELL_STATUS_ALLOCATION` if any of it cannot be allocated. Forward
/// models only. On any error the state and `ys` are unchanged.
///
/// # Safety
/// `model` NULL or live; `state` NULL or live and not in use by another
/// thread; `xs` NULL or readable for `xs_len` floats; `ys` NULL or writable
/// for `ys_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_step_chunk(
    model: *const RnncellModel,
    state: *mut RnncellState,
    xs: *const f32,
    xs_len: usize,
    ys: *mut f32,
    ys_len: usize,
) -> RnncellStatus {
    guarded("rnncell_model_step_chunk", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: `state` is null or live and exclusively ours (caller).
        let st = unsafe { state_mut(state) }?;
        if xs.is_null() || ys.is_null() {
            let which = if xs.is_null() { "xs" } else { "ys" };
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("{which} is NULL"),
            ));
        }
        let mut reg = Regions::<2>::new();
        let r_xs = reg.read(xs, xs_len)?;
        reg.write(ys, ys_len)?;
        let s = m.spec();
        check_forward(m)?;
        if !m.owns(&st.state) {
            return Err(state_mismatch(format_args!("state")));
        }
        if xs_len == 0 || !xs_len.is_multiple_of(s.input_size) {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!(
                    "xs_len is {xs_len}: it must be a positive multiple of input_size {} \
                     (T steps x I)",
                    s.input_size
                ),
            ));
        }
        let steps = xs_len / s.input_size;
        if ys_len != count_of::<f32>(&[steps, s.state_size()])? {
            return Err(size_mismatch(
                format_args!("ys_len"),
                ys_len,
                steps * s.state_size(),
                format_args!(
                    "[T={steps}, Hr={}] = xs_len / input_size x {}",
                    s.state_size(),
                    state_size_name(m)
                ),
            ));
        }
        // SAFETY: `xs` is readable for xs_len floats (caller); it is copied
        // when it overlaps `ys`, so a borrowed slice never aliases `ys`.
        let xv = unsafe { floats_in(xs, xs_len, reg.aliased(r_xs)) }?
            .ok_or(RnncellStatus::NullPointer)?;
        // SAFETY: `ys` is non-null and writable for ys_len floats (caller),
        // and no live reference covers it (xv is disjoint or a copy).
        let mut yv = unsafe {
            out_buf(RnncellTensorMut {
                data: ys,
                len: ys_len,
            })
        }?
        .ok_or(RnncellStatus::NullPointer)?;
        m.step_chunk(&mut st.state, &xv, yv.slice())?;
        yv.finish();
        Ok(())
    })
}
