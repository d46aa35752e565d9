//! The library's error type. Every fallible operation in the safe core returns
//! [`Result`]; the C boundary turns an [`Error`] into a status code plus the
//! message that `mamba_last_error()` returns.

use std::fmt;

/// What kind of failure happened. Mirrors the C status codes one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A NULL pointer, a size that does not fit, an out-of-range token, ...
    InvalidArgument,
    /// A file could not be opened or read.
    Io,
    /// A file was read but its contents are not a valid model/tokenizer/state.
    Format,
    /// The file is valid but uses something this build does not support.
    Unsupported,
    /// An allocation would be larger than the input justifies, or failed.
    OutOfMemory,
    /// A state blob does not belong to this model.
    StateMismatch,
    /// A Rust panic was caught at the C boundary (a bug: please report it).
    Internal,
}

/// An error with a human-readable message that names the file and the problem.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn io(path: &str, err: &std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{path}: {err}"))
    }
    /// Prefixes the message with some context, e.g. the file path.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an early return with a format error.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)*)))
    };
}
