//! The C ABI (`include/rnncell.h`, generated from this module by cbindgen).
//!
//! Every exported function is `rnncell_<object>_<verb>`, returns an
//! [`RnncellStatus`] (or a plain value that cannot fail), and runs its body
//! inside `boundary` (a `catch_unwind`): a panic is caught and becomes
//! [`RnncellStatus::Panic`], never an unwind across `extern "C"`.
//!
//! The contract the C side relies on, and how this module keeps it:
//!
//! * **Handles.** [`RnncellModel`] and [`RnncellState`] are opaque: C sees
//!   `typedef struct RnncellModel RnncellModel;` and only ever holds the
//!   pointer `Box::into_raw` returned. `_free(NULL)` is a no-op.
//! * **Every pointer is checked** for null before use; every buffer comes with
//!   its element count, and a count whose byte size does not fit in `isize`
//!   (so `size_t` arithmetic on it could overflow) is
//!   [`RnncellStatus::SizeOverflow`] before anything is read.
//! * **Any float alignment.** `std::slice::from_raw_parts` needs a pointer
//!   aligned for `f32`; a C `float*` carved out of a byte buffer need not be.
//!   An aligned pointer becomes a slice directly (the fast path); a misaligned
//!   one is never turned into a reference: its bytes are copied with
//!   `ptr::copy_nonoverlapping::<u8>` into an aligned buffer. Step calls copy
//!   into scratch vectors that [`RnncellState`] allocated when it was made,
//!   so even the slow path of `rnncell_model_step` allocates nothing; model
//!   building and `rnncell_model_run` allocate anyway and copy into fresh
//!   vectors. The same copy handles aliasing: Rust may not hold `&[f32]` and
//!   `&mut [f32]` over overlapping memory, so an input that overlaps an output
//!   (say `x == y`, or `h0 == h_n`) is copied first, which also gives the
//!   natural in-place semantics. Two outputs that overlap each other are
//!   rejected with [`RnncellStatus::InvalidArgument`].
//! * **A failed call changes nothing**: every check (direction, state owner,
//!   every count) runs before the state or an output is written, and
//!   `Model::step` / `Model::run` themselves validate before mutating. Only a
//!   panic (a bug) can leave a state half-updated; the status then says so.
//! * **No global mutable state**: nothing here has statics other than
//!   constant strings; the crate's ISA detection is a write-once cache.
//!
//! Calling the ABI from Rust (the C tests in `tests/c/` do the same from C):
//!
//! ```
//! use rnncell::ffi::*;
//! use std::ptr;
//! let mut spec = RnncellSpec::default();
//! // SAFETY: `spec` is a valid, writable RnncellSpec.
//! let st = unsafe {
//!     rnncell_spec_init(&mut spec, size_of::<RnncellSpec>(), RnncellCell::Gru as u32, 2, 3)
//! };
//! assert_eq!(st, RnncellStatus::Ok);
//! let (w, r) = (vec![0.1f32; 3 * 3 * 2], vec![0.1f32; 3 * 3 * 3]);
//! let layer = RnncellPytorchLayer {
//!     weight_ih: RnncellTensor { data: w.as_ptr(), len: w.len() },
//!     weight_hh: RnncellTensor { data: r.as_ptr(), len: r.len() },
//!     ..RnncellPytorchLayer::default()
//! };
//! let mut model = ptr::null_mut();
//! // SAFETY: every pointer is valid for the count given with it; no message buffer.
//! let st = unsafe {
//!     rnncell_model_new_pytorch(&spec, &layer, 1, RnncellIsa::Auto as u32, &mut model,
//!                               ptr::null_mut(), 0)
//! };
//! assert_eq!(st, RnncellStatus::Ok);
//! let mut state = ptr::null_mut();
//! // SAFETY: `model` is live; `state` is a valid out pointer.
//! assert_eq!(unsafe { rnncell_state_new(model, &mut state) }, RnncellStatus::Ok);
//! let x = [0.5f32, -0.25];
//! let mut y = [0.0f32; 3];
//! // SAFETY: live handles; x holds 2 floats and y 3.
//! let st = unsafe { rnncell_model_step(model, state, x.as_ptr(), 2, y.as_mut_ptr(), 3) };
//! assert_eq!(st, RnncellStatus::Ok);
//! assert!(y.iter().all(|v| *v != 0.0));
//! // SAFETY: both handles are live and not used afterwards.
//! unsafe {
//!     rnncell_state_free(state);
//!     rnncell_model_free(model);
//! }
//! ```

use std::borrow::Cow;
use std::ffi::c_char;
use std::mem::size_of;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

mod activation;
mod detail;
mod init;
mod marshal;
mod model;
mod onnx;
mod run;
mod safetensors;
mod state;
mod status;
mod types;
mod versioned;

pub use activation::*;
pub use detail::rnncell_last_error;
pub use init::*;
pub use model::*;
pub use onnx::*;
pub use run::*;
pub use safetensors::*;
pub use state::*;
pub use status::*;
pub use types::*;

/// What a boundary-crossing body returns on failure.
pub(crate) type FfiResult<T> = Result<T, RnncellStatus>;

/// The value an exported function returns when its body panicked.
pub(crate) trait OnPanic {
    /// The stand-in value.
    fn on_panic() -> Self;
}

impl OnPanic for RnncellStatus {
    fn on_panic() -> Self {
        RnncellStatus::Panic
    }
}

impl OnPanic for *const c_char {
    fn on_panic() -> Self {
        ptr::null()
    }
}

impl OnPanic for u32 {
    fn on_panic() -> Self {
        0
    }
}

impl OnPanic for () {
    fn on_panic() -> Self {}
}

impl OnPanic for RnncellIsa {
    fn on_panic() -> Self {
        RnncellIsa::Scalar
    }
}

/// Runs `f`, turning a panic into `R::on_panic()` so that no unwind crosses
/// the C ABI (rustls-ffi's `ffi_panic_boundary!`, as a function).
///
/// `AssertUnwindSafe` is sound here in the only sense that matters: after a
/// panic, the value the closure was mutating (a state) may be half-updated,
/// and the C caller is told so by [`RnncellStatus::Panic`]; it stays a valid
/// Rust value (every field is plain floats and vectors), so freeing or
/// resetting it is safe.
pub(crate) fn boundary<R: OnPanic>(f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| R::on_panic())
}

/// [`boundary`] for bodies of the entry point `name` that return
/// `FfiResult<()>`; a failure (a panic included) leaves its error detail
/// for `rnncell_last_error`.
pub(crate) fn guarded(name: &str, f: impl FnOnce() -> FfiResult<()>) -> RnncellStatus {
    let status = boundary(|| match f() {
        Ok(()) => RnncellStatus::Ok,
        Err(s) => s,
    });
    if status != RnncellStatus::Ok {
        detail::finish(name, status);
    }
    status
}

/// Records the error detail of a failing check (see [`detail::record`]).
pub(crate) use detail::record as fail;

/// Checks that `n` elements of `T` span at most `isize::MAX` bytes, the limit
/// of one Rust (and C) object; beyond it `n * sizeof(T)` could wrap `size_t`.
pub(crate) fn check_count<T>(n: usize) -> FfiResult<()> {
    if n > isize::MAX as usize / size_of::<T>().max(1) {
        Err(fail(
            RnncellStatus::SizeOverflow,
            format_args!("an element count of {n} is more than PTRDIFF_MAX bytes"),
        ))
    } else {
        Ok(())
    }
}

/// The product of `dims` or [`RnncellStatus::SizeOverflow`], also when the product in
/// bytes of `T` would not fit in `isize`.
pub(crate) fn count_of<T>(dims: &[usize]) -> FfiResult<usize> {
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            fail(
                RnncellStatus::SizeOverflow,
                format_args!("the product of the sizes {dims:?} overflows size_t"),
            )
        })?;
    check_count::<T>(n)?;
    Ok(n)
}

/// Copies `n` floats from a possibly misaligned `src` into `dst[..n]`
/// without forming a reference to `src`.
///
/// # Safety
/// `src` must be valid for reads of `n * 4` bytes and must not overlap
/// `dst`; `n <= dst.len()`.
pub(crate) unsafe fn copy_in(src: *const f32, dst: &mut [f32], n: usize) {
    assert!(n <= dst.len());
    // SAFETY: the caller guarantees `src` is readable for n*4 bytes and
    // disjoint from `dst`; `dst` has at least n floats (asserted); a u8 copy
    // has no alignment requirement, and every bit pattern is a valid f32.
    unsafe { ptr::copy_nonoverlapping(src.cast::<u8>(), dst.as_mut_ptr().cast::<u8>(), n * 4) };
}

/// Copies `src` to a possibly misaligned `dst` without forming a reference
/// to `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `src.len() * 4` bytes and must not
/// overlap `src`.
pub(crate) unsafe fn copy_out(src: &[f32], dst: *mut f32) {
    // SAFETY: the caller guarantees `dst` is writable for the whole length
    // and disjoint from `src`; a u8 copy has no alignment requirement.
    unsafe { ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), dst.cast::<u8>(), src.len() * 4) };
}

/// A fresh vector of `n` floats, or [`RnncellStatus::Allocation`].
pub(crate) fn try_vec(n: usize) -> FfiResult<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        fail(
            RnncellStatus::Allocation,
            format_args!("cannot allocate a copy of {n} floats"),
        )
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// A C float buffer as a Rust slice: borrowed when `p` is aligned and `copy`
/// is false, else copied into a new vector. `None` when `p` is null.
///
/// # Safety
/// A non-null `p` must be valid for reads of `n` floats (any alignment) for
/// the lifetime `'a`, and not written through any other pointer meanwhile
/// unless `copy` is true.
pub(crate) unsafe fn floats_in<'a>(
    p: *const f32,
    n: usize,
    copy: bool,
) -> FfiResult<Option<Cow<'a, [f32]>>> {
    if p.is_null() {
        return Ok(None);
    }
    check_count::<f32>(n)?;
    if n == 0 {
        return Ok(Some(Cow::Borrowed(&[])));
    }
    if p.is_aligned() && !copy {
        // SAFETY: `p` is non-null and aligned (checked), valid for `n` reads
        // and not mutated during 'a (caller), and n*4 <= isize::MAX
        // (check_count).
        return Ok(Some(Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(p, n)
        })));
    }
    let mut v = try_vec(n)?;
    // SAFETY: `p` is readable for n floats (caller) and `v` is a fresh
    // allocation, so they are disjoint.
    unsafe { copy_in(p, &mut v, n) };
    Ok(Some(Cow::Owned(v)))
}

/// Writes `v` through a possibly misaligned, non-null out pointer.
///
/// # Safety
/// A non-null `p` must be valid for writes of one `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T) -> FfiResult<()> {
    if p.is_null() {
        return Err(RnncellStatus::NullPointer);
    }
    // SAFETY: `p` is non-null and writable (caller); write_unaligned has no
    // alignment requirement and does not read or drop the old value.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// Reads a `T` through a possibly misaligned, non-null pointer.
///
/// # Safety
/// A non-null `p` must be valid for reads of one initialised `T`.
pub(crate) unsafe fn read_in<T: Copy>(p: *const T) -> FfiResult<T> {
    if p.is_null() {
        return Err(RnncellStatus::NullPointer);
    }
    // SAFETY: `p` is non-null and points to an initialised T (caller);
    // read_unaligned copies it regardless of alignment.
    Ok(unsafe { p.read_unaligned() })
}

/// Copies `msg` into the caller's message buffer `buf` of `len` bytes,
/// truncated at a character boundary and always NUL-terminated. A null `buf`
/// or `len == 0` writes nothing.
///
/// # Safety
/// A non-null `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn write_msg(buf: *mut c_char, len: usize, msg: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = msg.len().min(len - 1);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` is writable for `len` bytes (caller) and n < len; the
    // source is a Rust string, disjoint from the caller's buffer.
    unsafe {
        ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
}

#[cfg(feature = "test-panic")]
mod test_panic {
    use super::*;

    /// Testing only (feature `test-panic`): panics inside the boundary of a
    /// status-returning call, which must return `RNNCELL_STATUS_PANIC`.
    /// `kind` 0 panics with a string, 1 with an index out of bounds, 2
    /// returns `RNNCELL_STATUS_OK` without panicking.
    #[unsafe(no_mangle)]
    pub extern "C" fn rnncell_test_panic(kind: u32) -> RnncellStatus {
        guarded("rnncell_test_panic", || {
            let v = [1u32, 2, 3];
            match kind {
                0 => panic!("rnncell_test_panic: deliberate panic"),
                1 => {
                    let i = std::hint::black_box(v.len() + 4);
                    if v[i] == 0 {
                        Err(RnncellStatus::InvalidArgument)
                    } else {
                        Ok(())
                    }
                }
                _ => Ok(()),
            }
        })
    }

    /// Testing only (feature `test-panic`): panics inside the boundary of a
    /// pointer-returning call, which must return NULL.
    #[unsafe(no_mangle)]
    pub extern "C" fn rnncell_test_panic_str() -> *const c_char {
        boundary(|| -> *const c_char { panic!("rnncell_test_panic_str: deliberate panic") })
    }
}

#[cfg(feature = "test-panic")]
pub use test_panic::*;
