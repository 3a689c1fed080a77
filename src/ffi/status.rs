//! The status every C call returns, and its names.

use std::ffi::{CStr, c_char};

use crate::error::Error;

/// The result of every fallible `rnncell_*` call. `RNNCELL_STATUS_OK` is
/// zero; the values are stable and new ones are only ever appended.
/// `rnncell_status_str` describes each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnncellStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL (or a tensor had `data == NULL`
    /// with `len > 0`).
    NullPointer = 1,
    /// A buffer's element count does not match what the model expects.
    SizeMismatch = 2,
    /// An element count whose size in bytes exceeds `PTRDIFF_MAX`, or a
    /// product of dimensions that overflows `size_t`.
    SizeOverflow = 3,
    /// A size, option, enum value or combination that is not valid (for
    /// example `hidden_size == 0`, a negative clip, a layer index out of
    /// range, two outputs that overlap).
    InvalidArgument = 4,
    /// Valid, but not something this call can do (for example stepping a
    /// bidirectional model one time step at a time).
    Unsupported = 5,
    /// The requested instruction set is not available on this CPU.
    IsaUnavailable = 6,
    /// A state was used with a model it was not created for.
    StateMismatch = 7,
    /// Memory could not be allocated.
    Allocation = 8,
    /// A weights file or buffer is malformed.
    Format = 9,
    /// A file could not be read.
    Io = 10,
    /// A panic (a bug in rnncell) was caught at the boundary. The call's
    /// outputs and the state it was given are unspecified but valid: they
    /// may be reset or freed.
    Panic = 11,
}

impl RnncellStatus {
    /// Every status, in value order.
    const ALL: [RnncellStatus; 12] = [
        RnncellStatus::Ok,
        RnncellStatus::NullPointer,
        RnncellStatus::SizeMismatch,
        RnncellStatus::SizeOverflow,
        RnncellStatus::InvalidArgument,
        RnncellStatus::Unsupported,
        RnncellStatus::IsaUnavailable,
        RnncellStatus::StateMismatch,
        RnncellStatus::Allocation,
        RnncellStatus::Format,
        RnncellStatus::Io,
        RnncellStatus::Panic,
    ];

    fn describe(v: u32) -> &'static CStr {
        match Self::ALL.get(v as usize) {
            Some(RnncellStatus::Ok) => c"RNNCELL_STATUS_OK: success",
            Some(RnncellStatus::NullPointer) => {
                c"RNNCELL_STATUS_NULL_POINTER: a required pointer argument was NULL"
            }
            Some(RnncellStatus::SizeMismatch) => {
                c"RNNCELL_STATUS_SIZE_MISMATCH: a buffer's element count does not match the model"
            }
            Some(RnncellStatus::SizeOverflow) => {
                c"RNNCELL_STATUS_SIZE_OVERFLOW: an element count overflows size_t in bytes"
            }
            Some(RnncellStatus::InvalidArgument) => {
                c"RNNCELL_STATUS_INVALID_ARGUMENT: an invalid size, option or argument"
            }
            Some(RnncellStatus::Unsupported) => {
                c"RNNCELL_STATUS_UNSUPPORTED: not supported by this call or model"
            }
            Some(RnncellStatus::IsaUnavailable) => {
                c"RNNCELL_STATUS_ISA_UNAVAILABLE: the instruction set is not available on this CPU"
            }
            Some(RnncellStatus::StateMismatch) => {
                c"RNNCELL_STATUS_STATE_MISMATCH: the state belongs to a different model"
            }
            Some(RnncellStatus::Allocation) => {
                c"RNNCELL_STATUS_ALLOCATION: memory allocation failed"
            }
            Some(RnncellStatus::Format) => c"RNNCELL_STATUS_FORMAT: malformed weights",
            Some(RnncellStatus::Io) => c"RNNCELL_STATUS_IO: i/o error",
            Some(RnncellStatus::Panic) => {
                c"RNNCELL_STATUS_PANIC: internal panic caught (a bug in rnncell)"
            }
            None => c"unknown rnncell status",
        }
    }
}

impl RnncellStatus {
    /// The description `rnncell_status_str` returns, as a Rust string.
    pub(crate) fn describe_str(self) -> &'static str {
        RnncellStatus::describe(self as u32).to_str().unwrap_or("")
    }
}

/// The status of a Rust error; its message becomes the call's error detail
/// (`rnncell_last_error`).
impl From<Error> for RnncellStatus {
    fn from(e: Error) -> RnncellStatus {
        let status = match &e {
            Error::SizeMismatch { .. } => RnncellStatus::SizeMismatch,
            Error::InvalidArgument(_) => RnncellStatus::InvalidArgument,
            Error::Unsupported(_) => RnncellStatus::Unsupported,
            Error::IsaUnavailable(_) => RnncellStatus::IsaUnavailable,
            Error::StateMismatch => RnncellStatus::StateMismatch,
            Error::Format(_) => RnncellStatus::Format,
            Error::Io(_) => RnncellStatus::Io,
            Error::Allocation(_) => RnncellStatus::Allocation,
        };
        super::detail::record(status, format_args!("{e}"))
    }
}

/// A static, NUL-terminated description of `status` (an `RnncellStatus`
/// value), beginning with its name, e.g.
/// `"RNNCELL_STATUS_SIZE_MISMATCH: ..."`; `"unknown rnncell status"` for a
/// value that is not a status. Never NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_status_str(status: u32) -> *const c_char {
    // Not `boundary`: its stand-in for a string is NULL, and this one is
    // documented never to be NULL.
    std::panic::catch_unwind(|| RnncellStatus::describe(status).as_ptr())
        .unwrap_or(c"unknown rnncell status (internal panic caught)".as_ptr())
}
