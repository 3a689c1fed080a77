//! Versioned structs: the `struct_size` rule of the C ABI.
//!
//! Every struct a caller passes by pointer and that may grow
//! ([`RnncellSpec`], [`RnncellSequence`], [`RnncellModelInfo`],
//! [`RnncellSafetensorsOptions`], [`RnncellOnnxOptions`],
//! [`RnncellOnnxNodeInfo`]) starts with `size_t struct_size`, which the
//! caller sets to `sizeof` the struct as *its* header declares it (the init
//! functions write it from their `struct_size` argument). New fields are
//! only ever appended, and 0 is their default, so:
//!
//! * an input struct from an **older** header (smaller, but at least
//!   [`Versioned::MIN_SIZE`]) is read up to its `struct_size`, every field
//!   past it taking its default;
//! * an input struct from a **newer** header (larger) is accepted when every
//!   byte past the fields this library knows is zero (its new options are at
//!   their defaults), else it is `RNNCELL_STATUS_INVALID_ARGUMENT` naming
//!   `struct_size` and this library's version: a new option must never be
//!   silently ignored;
//! * an output struct gets at most `min(struct_size, known size)` bytes
//!   written; fields this library does not know are left as the caller
//!   initialised them.
//!
//! Nothing is read or written past `struct_size` bytes.

use std::mem::size_of;
use std::ptr;

use super::{
    FfiResult, RnncellModelInfo, RnncellOnnxNodeInfo, RnncellOnnxOptions,
    RnncellSafetensorsOptions, RnncellSequence, RnncellSpec, RnncellStatus, fail,
};

/// The largest `struct_size` accepted at all: a struct of a future header
/// stays far below it, and a larger value is an uninitialised field, not a
/// size (its "tail" would be read or written far out of bounds).
pub(crate) const MAX_STRUCT_SIZE: usize = 4096;

/// A versioned C struct.
///
/// # Safety
/// `Self` is `#[repr(C)]`, starts with a `usize` `struct_size` field at
/// offset 0, and every bit pattern of each of its bytes is a valid value for
/// the fields in them (integers, floats, raw pointers, nested such
/// structs), so that a value may be assembled from caller bytes.
pub(crate) unsafe trait Versioned: Copy + Default {
    /// The C name, for messages (`"RnncellSpec"`).
    const C_NAME: &'static str;
    /// The smallest `struct_size` this library accepts: the size of the
    /// struct in rnncell 0.5, the first versioned release. Fields appended
    /// later lower-bound nothing; this stays.
    const MIN_SIZE: usize;
    /// What fills the struct in (for messages).
    const INIT: &'static str;
    /// Sets `struct_size`.
    fn set_struct_size(&mut self, n: usize);
}

macro_rules! versioned {
    ($t:ty, $min:expr, $init:expr) => {
        // SAFETY: `$t` is #[repr(C)] with `struct_size: usize` first (asserted
        // below) and holds only integers, floats, raw pointers and structs of
        // them (see types.rs / onnx.rs).
        unsafe impl Versioned for $t {
            const C_NAME: &'static str = stringify!($t);
            const MIN_SIZE: usize = $min;
            const INIT: &'static str = $init;
            fn set_struct_size(&mut self, n: usize) {
                self.struct_size = n;
            }
        }
        const _: () = assert!(std::mem::offset_of!($t, struct_size) == 0);
        const _: () = assert!(<$t as Versioned>::MIN_SIZE <= size_of::<$t>());
    };
}

// The 0.5 sizes (64-bit and 32-bit targets differ: they are written as
// the 0.5 struct's size on this target).
versioned!(
    RnncellSpec,
    size_of::<RnncellSpec>(),
    "rnncell_spec_init (or _pytorch, _onnx, _keras)"
);
versioned!(
    RnncellSequence,
    size_of::<RnncellSequence>(),
    "rnncell_sequence_init"
);
versioned!(
    RnncellSafetensorsOptions,
    size_of::<RnncellSafetensorsOptions>(),
    "rnncell_safetensors_options_init"
);
versioned!(
    RnncellOnnxOptions,
    size_of::<RnncellOnnxOptions>(),
    "rnncell_onnx_options_init"
);
versioned!(
    RnncellModelInfo,
    size_of::<RnncellModelInfo>(),
    "rnncell_model_info_init"
);
versioned!(
    RnncellOnnxNodeInfo,
    size_of::<RnncellOnnxNodeInfo>(),
    "rnncell_onnx_node_info_init"
);

/// Checks the `struct_size` of `what` against the sizes this library
/// accepts (not the tail: see [`read`]).
fn check_size<T: Versioned>(n: usize, what: &str) -> FfiResult<()> {
    if n < T::MIN_SIZE {
        return Err(fail(
            RnncellStatus::InvalidArgument,
            format_args!(
                "{what}.struct_size is {n}, expected {} (sizeof({}); call {} first, or set it)",
                size_of::<T>(),
                T::C_NAME,
                T::INIT
            ),
        ));
    }
    if n > MAX_STRUCT_SIZE {
        return Err(fail(
            RnncellStatus::InvalidArgument,
            format_args!(
                "{what}.struct_size is {n}: not a size of {} (this library, rnncell {}, knows \
                 {} bytes; was {what} initialised with {}?)",
                T::C_NAME,
                env!("CARGO_PKG_VERSION"),
                size_of::<T>(),
                T::INIT
            ),
        ));
    }
    Ok(())
}

/// The caller's `struct_size` of the struct at `p`.
///
/// # Safety
/// `p` non-null and readable for one `usize` (any alignment).
unsafe fn struct_size_at<T>(p: *const T) -> usize {
    // SAFETY: struct_size is the first field (Versioned), readable (caller);
    // read_unaligned has no alignment requirement.
    unsafe { p.cast::<usize>().read_unaligned() }
}

/// Reads the input struct `what` at `p` by the `struct_size` rule: fields
/// past the caller's `struct_size` take their defaults; bytes past the
/// fields this library knows must be zero. The value returned has
/// `struct_size == size_of::<T>()`.
///
/// # Safety
/// `p` null or readable for its own `struct_size` bytes (any alignment).
pub(crate) unsafe fn read<T: Versioned>(p: *const T, what: &str) -> FfiResult<T> {
    if p.is_null() {
        return Err(fail(
            RnncellStatus::NullPointer,
            format_args!("{what} is NULL"),
        ));
    }
    // SAFETY: non-null; every versioned struct starts with struct_size
    // (caller: readable).
    let n = unsafe { struct_size_at(p) };
    check_size::<T>(n, what)?;
    let known = size_of::<T>();
    if n > known {
        // SAFETY: `p` is readable for n bytes (caller), n <= MAX_STRUCT_SIZE;
        // u8 has no alignment requirement. Padding of the caller's struct
        // is read as bytes only (a newer header's struct is zero-initialised
        // by its init function, padding included).
        let tail = unsafe { std::slice::from_raw_parts(p.cast::<u8>().add(known), n - known) };
        if let Some(i) = tail.iter().position(|&b| b != 0) {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!(
                    "{what}.struct_size is {n}, but this library (rnncell {}) knows {known} \
                     bytes of {} and byte {} is not zero: {what} sets an option this library \
                     does not have (link the library of the header you compile with)",
                    env!("CARGO_PKG_VERSION"),
                    T::C_NAME,
                    known + i
                ),
            ));
        }
    }
    let mut v = T::default();
    // SAFETY: `p` is readable for n >= min(n, known) bytes (caller), `v` is
    // a local of `known` bytes, disjoint; every byte pattern is valid for T's
    // fields (Versioned).
    unsafe {
        ptr::copy_nonoverlapping(
            p.cast::<u8>(),
            ptr::from_mut(&mut v).cast::<u8>(),
            n.min(known),
        );
    }
    v.set_struct_size(known);
    Ok(v)
}

/// Writes the output struct `v` to `p` by the `struct_size` rule: the
/// caller's `struct_size` is checked and kept, at most
/// `min(struct_size, known)` bytes are written.
///
/// # Safety
/// `p` null or readable and writable for its own `struct_size` bytes (any
/// alignment).
pub(crate) unsafe fn write<T: Versioned>(p: *mut T, mut v: T, what: &str) -> FfiResult<()> {
    if p.is_null() {
        return Err(fail(
            RnncellStatus::NullPointer,
            format_args!("{what} is NULL"),
        ));
    }
    // SAFETY: non-null, readable (caller).
    let n = unsafe { struct_size_at(p.cast_const()) };
    check_size::<T>(n, what)?;
    v.set_struct_size(n);
    // SAFETY: `p` is writable for n >= min(n, known) bytes (caller), `v` is
    // a local, disjoint; a byte copy has no alignment requirement.
    unsafe {
        ptr::copy_nonoverlapping(
            ptr::from_ref(&v).cast::<u8>(),
            p.cast::<u8>(),
            n.min(size_of::<T>()),
        );
    }
    Ok(())
}

/// The body of every `rnncell_*_init`: writes `v` (the defaults) for a
/// caller struct of `struct_size` bytes: the fields this library knows
/// (at most `struct_size` bytes of them), zeros past them (the default of
/// every field a newer header appends), and `struct_size`.
///
/// # Safety
/// `p` null or writable for `struct_size` bytes (any alignment).
pub(crate) unsafe fn init<T: Versioned>(
    p: *mut T,
    struct_size: usize,
    mut v: T,
    what: &str,
) -> FfiResult<()> {
    if p.is_null() {
        return Err(fail(
            RnncellStatus::NullPointer,
            format_args!("{what} is NULL"),
        ));
    }
    if struct_size < T::MIN_SIZE || struct_size > MAX_STRUCT_SIZE {
        return Err(fail(
            RnncellStatus::InvalidArgument,
            format_args!(
                "struct_size is {struct_size}, expected sizeof({}) = {} (this library, rnncell \
                 {}, accepts {} to {MAX_STRUCT_SIZE})",
                T::C_NAME,
                size_of::<T>(),
                env!("CARGO_PKG_VERSION"),
                T::MIN_SIZE
            ),
        ));
    }
    let known = size_of::<T>();
    v.set_struct_size(struct_size);
    // SAFETY: `p` is writable for struct_size bytes (caller); `v` is a
    // local, disjoint; byte copies and writes have no alignment requirement.
    unsafe {
        let dst = p.cast::<u8>();
        ptr::copy_nonoverlapping(ptr::from_ref(&v).cast::<u8>(), dst, struct_size.min(known));
        if struct_size > known {
            ptr::write_bytes(dst.add(known), 0, struct_size - known);
        }
    }
    Ok(())
}
