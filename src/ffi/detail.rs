//! Per-call error detail: what the last failed call on this thread said.
//!
//! Every entry point that returns an [`RnncellStatus`] other than
//! `RNNCELL_STATUS_OK` leaves a NUL-terminated message in a buffer owned by
//! the calling thread, which `rnncell_last_error` returns: the function's
//! name, then what was wrong (which argument or buffer, the count given and
//! the count the model expects, and where that count comes from). Calls that
//! succeed leave it alone, so the text is only meaningful right after a call
//! that failed.
//!
//! No allocation, ever: the buffer is a fixed array in a `thread_local!`
//! with a `const` initialiser and no destructor, and messages are formatted
//! straight into it (truncated at a character boundary past
//! [`CAPACITY`] − 1 bytes). The success path of a step does not touch it.

use std::cell::Cell;
use std::ffi::c_char;
use std::fmt::{self, Write};

use super::RnncellStatus;

/// Bytes of the per-thread message buffer, NUL included.
pub(crate) const CAPACITY: usize = 1024;

thread_local! {
    /// The message, NUL-terminated.
    static TEXT: Cell<[u8; CAPACITY]> = const { Cell::new([0; CAPACITY]) };
    /// Whether a message was recorded by the call in progress (set by
    /// [`record`], consumed by [`finish`]).
    static FRESH: Cell<bool> = const { Cell::new(false) };
}

/// A truncating, allocation-free `fmt::Write` over a fixed array.
struct Buf {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; CAPACITY],
            len: 0,
        }
    }

    /// Stores the text (NUL-terminated) as this thread's message.
    fn store(mut self) {
        self.bytes[self.len] = 0;
        TEXT.with(|t| t.set(self.bytes));
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = CAPACITY - 1 - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Records what went wrong in the call in progress and returns `status`, so
/// that a check reads `return Err(record(RnncellStatus::SizeMismatch,
/// format_args!(...)))`. The entry point's name is prefixed by [`finish`].
pub(crate) fn record(status: RnncellStatus, what: fmt::Arguments<'_>) -> RnncellStatus {
    let mut b = Buf::new();
    // Buf::write_str never fails; a Display impl that fails leaves what it
    // wrote so far, which is still the best description available.
    let _ = b.write_fmt(what);
    b.store();
    FRESH.with(|f| f.set(true));
    status
}

/// The message a check of the call in progress recorded (not yet
/// finished), if any, for a builder's `err_msg` buffer. Allocates: only for
/// the builders and loaders, never a step.
pub(crate) fn fresh_text() -> Option<String> {
    if !FRESH.with(Cell::get) {
        return None;
    }
    let t = TEXT.with(Cell::get);
    let n = t.iter().position(|&c| c == 0).unwrap_or(0);
    std::str::from_utf8(&t[..n]).ok().map(str::to_owned)
}

/// Ends a failed call of the entry point `name`: its recorded message gets
/// the name in front (`"rnncell_model_step: x_len is 5, ..."`); a failure
/// that recorded nothing gets the status's description, so the text never
/// describes an earlier call.
pub(crate) fn finish(name: &str, status: RnncellStatus) {
    let fresh = FRESH.with(|f| f.replace(false));
    let mut b = Buf::new();
    let _ = b.write_str(name);
    let _ = b.write_str(": ");
    if fresh {
        let old = TEXT.with(Cell::get);
        let n = old.iter().position(|&c| c == 0).unwrap_or(0);
        // The old text is whole characters of a str (Buf only stores those).
        let _ = b.write_str(std::str::from_utf8(&old[..n]).unwrap_or(""));
    } else {
        let _ = b.write_str(status.describe_str());
    }
    b.store();
}

/// The message of the most recent call on this thread that returned a
/// status other than `RNNCELL_STATUS_OK`: the function's name and what was
/// wrong, e.g. `"rnncell_model_step: y_len is 3 floats, the model's state
/// size (Hr, lstm_proj_size or hidden_size) is 4"`. The empty string if no
/// call on this thread has failed yet. Never NULL.
///
/// The pointer is to storage owned by the calling thread: valid until the
/// thread exits, and its text is replaced by the thread's next failing call
/// (copy it to keep it). Successful calls do not change it, so read it only
/// right after a call that failed. The builders and loaders also write the
/// same text (without the function name) to their `err_msg` buffer.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_last_error() -> *const c_char {
    // The thread-local's address is stable for the thread's lifetime and it
    // has no destructor; Cell::as_ptr does not read or write it.
    std::panic::catch_unwind(|| TEXT.with(|t| t.as_ptr().cast::<c_char>().cast_const()))
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: rnncell_last_error never returns NULL and the text is
        // NUL-terminated; nothing on this thread writes it meanwhile.
        unsafe { CStr::from_ptr(rnncell_last_error()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn record_then_finish_prefixes_the_name() {
        let s = record(RnncellStatus::SizeMismatch, format_args!("x_len is {}", 5));
        assert_eq!(s, RnncellStatus::SizeMismatch);
        finish("rnncell_model_step", s);
        assert_eq!(last(), "rnncell_model_step: x_len is 5");
        // A failure without a recorded message describes the status.
        finish("rnncell_state_reset", RnncellStatus::NullPointer);
        assert!(last().starts_with("rnncell_state_reset: RNNCELL_STATUS_NULL_POINTER"));
    }

    #[test]
    fn long_messages_are_truncated_at_a_character_boundary() {
        let long = "é".repeat(CAPACITY);
        record(RnncellStatus::Format, format_args!("{long}"));
        finish("f", RnncellStatus::Format);
        let t = last();
        assert!(t.len() < CAPACITY && t.len() > CAPACITY - 8);
        assert!(t.starts_with("f: éé"));
    }
}
