//! The error every public call returns: an HRESULT and a sentence. Layer 0: knows only `hresult`
//! and the state machine's `Refusal`.

use crate::hresult::{self as hr, HResult};
use crate::state::Refusal;
use std::path::Path;

/// A failed call: the HRESULT and a sentence saying what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: HResult,
    pub message: String,
}

impl Error {
    pub fn new(code: HResult, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn io(what: &str, path: &Path, e: &std::io::Error) -> Error {
        Error::new(hr::from_io(e), format!("{what} {}: {e}", path.display()))
    }
}

impl From<Refusal> for Error {
    fn from((code, message): Refusal) -> Error {
        Error { code, message }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
