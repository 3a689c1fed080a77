//! The error type of every fallible call.

use std::fmt;

/// Everything that can go wrong when building or running a model.
///
/// ```
/// use rnncell::{Error, ModelSpec, CellKind};
/// let err = ModelSpec::new(CellKind::lstm(), 0, 8).validate().unwrap_err();
/// assert!(matches!(err, Error::InvalidArgument(_)));
/// println!("{err}");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer or tensor has the wrong number of elements.
    #[non_exhaustive]
    SizeMismatch {
        /// Which tensor or buffer (for example `layer 1 weight_hh`).
        what: String,
        /// Elements the model expects.
        expected: usize,
        /// Elements that were given.
        actual: usize,
        /// When the weights given all fit a spec that differs in one field,
        /// that field and its value (for example `224000 = 4 gates · 400
        /// hidden_size · 140 proj_size: set LstmOptions::proj_size =
        /// 140? (with it every tensor fits)`); shown after the counts.
        hint: Option<String>,
    },
    /// A size, option or combination of options is not valid.
    InvalidArgument(String),
    /// Valid, but not something this call can do (for example streaming a
    /// bidirectional model one step at a time).
    Unsupported(String),
    /// The requested instruction set is not available on this CPU.
    IsaUnavailable(crate::Isa),
    /// A state was used with a model it was not created for.
    StateMismatch,
    /// A weights file is malformed, truncated or inconsistent.
    Format(String),
    /// An I/O error while reading a file.
    Io(String),
    /// Memory could not be allocated: what, and how many bytes were asked
    /// for (for example `run scratch: pre-activations (16777216 bytes)`).
    Allocation(String),
}

impl Error {
    pub(crate) fn size(what: impl Into<String>, expected: usize, actual: usize) -> Error {
        Error::SizeMismatch {
            what: what.into(),
            expected,
            actual,
            hint: None,
        }
    }
    /// `self` with `hint` appended to its message: a [`Error::SizeMismatch`]
    /// gets it as its `hint`, an [`Error::InvalidArgument`] after its text;
    /// other errors are returned unchanged.
    pub(crate) fn with_hint(self, hint: Option<String>) -> Error {
        let Some(h) = hint else { return self };
        match self {
            Error::SizeMismatch {
                what,
                expected,
                actual,
                hint: None,
            } => Error::SizeMismatch {
                what,
                expected,
                actual,
                hint: Some(h),
            },
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{m}; {h}")),
            e => e,
        }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
    /// An allocation of `count` values of `elem` bytes each for `what`
    /// failed (or its size overflowed).
    pub(crate) fn alloc(what: &str, count: usize, elem: usize) -> Error {
        match count.checked_mul(elem) {
            Some(bytes) => Error::Allocation(format!("{what} ({bytes} bytes)")),
            None => Error::Allocation(format!("{what} ({count} × {elem} bytes overflows)")),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::SizeMismatch {
                what,
                expected,
                actual,
                hint,
            } => {
                write!(f, "{what}: expected {expected} elements, got {actual}")?;
                match hint {
                    Some(h) => write!(f, "; {h}"),
                    None => Ok(()),
                }
            }
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::IsaUnavailable(isa) => {
                write!(f, "instruction set {isa} is not available on this CPU")
            }
            Error::StateMismatch => f.write_str("state was created for a different model"),
            Error::Format(m) => write!(f, "malformed weights: {m}"),
            Error::Io(m) => write!(f, "i/o error: {m}"),
            Error::Allocation(m) => write!(f, "out of memory: could not allocate {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result<T, rnncell::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
