//! Why a verb failed, and the exit status each reason maps to (documented in `--help`).

use openbits_core::hresult::HResult;
use openbits_core::{Error, JobError};
use std::fmt;

pub const EXIT_JOB: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_HELD: i32 = 3;
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug)]
pub enum Fail {
    /// The library refused a call: its HRESULT and sentence, and what we were doing.
    Call { doing: String, error: Error },
    /// A job ended in ERROR: the job's recorded error.
    Job {
        job: String,
        error: JobError,
        file: Option<String>,
        /// What the user can do next (retry, cancel).
        hint: String,
    },
    /// The command line does not say something we can do (exit 2).
    Usage(String),
    /// Another process holds the queue (exit 3).
    Held(String),
    /// Anything else on our side (a file we could not write, ...): exit 1.
    Other(String),
}

impl Fail {
    pub fn call(doing: impl Into<String>) -> impl FnOnce(Error) -> Fail {
        let doing = doing.into();
        move |error| Fail::Call { doing, error }
    }

    pub fn exit_status(&self) -> i32 {
        match self {
            Fail::Usage(_) => EXIT_USAGE,
            Fail::Held(_) => EXIT_HELD,
            Fail::Call { .. } | Fail::Job { .. } | Fail::Other(_) => EXIT_JOB,
        }
    }
}

/// `0x80190194 BITS_E_HTTP_ERROR(404)`: the code as BITS users search for it, and its name.
pub fn code_and_name(code: HResult) -> String {
    match code.name() {
        Some(name) => format!("{code} {name}"),
        None => code.to_string(),
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Call { doing, error } => {
                // The library's sentence says what was wrong with this call; the code's own
                // text says what the code means in general, which is worth a second line only
                // when it adds something.
                write!(
                    f,
                    "{doing}: {}: {}",
                    code_and_name(error.code),
                    error.message
                )?;
                let general = error.code.description();
                // "Operating system error 1306." says nothing the code did not.
                let generic = general.starts_with("Operating system error")
                    || general.starts_with("Unknown error");
                if !generic && !error.message.contains(general.trim_end_matches('.')) {
                    write!(f, "\n{general}")?;
                }
                Ok(())
            }
            Fail::Job {
                job,
                error,
                file,
                hint,
            } => {
                write!(
                    f,
                    "job {job} failed: {}: {}\n{}",
                    code_and_name(error.code),
                    error.description,
                    error.context.description()
                )?;
                if let Some(file) = file {
                    write!(f, "\nfile: {file}")?;
                }
                write!(f, "\n{hint}")
            }
            Fail::Usage(m) | Fail::Held(m) | Fail::Other(m) => f.write_str(m),
        }
    }
}
