//! SetNotifyCmdLine: a program the library runs when a job becomes TRANSFERRED or goes to ERROR
//! and no callback is registered. As in BITS (≥ 2.0) a non-zero exit code runs it again after the
//! job's minimum retry delay, unless the job was completed or cancelled meanwhile.

use super::Shared;
use crate::hresult::{self as hr, HResult};
use crate::job::{JobId, MAX_NOTIFY_PARAMETERS_CHARS};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Splits BITS's parameter string: words separated by spaces, double quotes group words.
pub(crate) fn split(parameters: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut started) = (String::new(), false, false);
    for c in parameters.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ' ' | '\t' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// BITS's rules: the program is a full path; the parameters are at most 4,000 characters and
/// start with the program.
pub(crate) fn check(program: &str, parameters: Option<&str>) -> Result<(), (HResult, String)> {
    if !Path::new(program).is_absolute() {
        return Err((
            hr::E_INVALIDARG,
            format!("the notification program must be a full path: {program:?}"),
        ));
    }
    if let Some(p) = parameters {
        if p.chars().count() > MAX_NOTIFY_PARAMETERS_CHARS {
            return Err((
                hr::E_INVALIDARG,
                format!("parameters are limited to {MAX_NOTIFY_PARAMETERS_CHARS} characters"),
            ));
        }
        if split(p).first().map(String::as_str) != Some(program) {
            return Err((
                hr::E_INVALIDARG,
                "the parameters must start with the program name".into(),
            ));
        }
    }
    Ok(())
}

/// Runs the command line for `job` on a thread of its own, and again after the retry delay while
/// it exits non-zero and the job still waits for its owner (TRANSFERRED or ERROR).
pub(crate) fn launch(
    shared: Arc<Shared>,
    job: JobId,
    program: Box<str>,
    parameters: Option<Box<str>>,
) {
    let args: Vec<String> = parameters
        .as_deref()
        .map(split)
        .unwrap_or_default()
        .into_iter()
        .skip(1)
        .collect();
    let _ = std::thread::Builder::new()
        .name("openbits-notify-cmd".into())
        .spawn(move || loop {
            let ok = std::process::Command::new(&*program)
                .args(&args)
                .stdin(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            let delay = {
                let cell = shared.jobs.lock().get(&job).cloned();
                match cell.map(|c| c.slot.lock().rec.clone()) {
                    Some(rec) if rec.state.ends_wait() && !rec.state.is_final() => {
                        rec.minimum_retry_delay_s
                    }
                    _ => return,
                }
            };
            if shared.closing.wait(Duration::from_secs(delay.into()))
                || shared.closed.load(Ordering::SeqCst)
            {
                return;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        assert_eq!(
            split(r#"/bin/prog a "b c"  d"#),
            vec!["/bin/prog", "a", "b c", "d"]
        );
        assert_eq!(split(r#""""#), vec![""]);
        assert!(check("/bin/prog", Some("/bin/prog x")).is_ok());
        assert!(check("/bin/prog", None).is_ok());
        assert_eq!(check("prog", None).unwrap_err().0, hr::E_INVALIDARG);
        assert_eq!(
            check("/bin/prog", Some("other x")).unwrap_err().0,
            hr::E_INVALIDARG
        );
        assert_eq!(
            check(
                "/bin/prog",
                Some(&format!("/bin/prog {}", "x".repeat(4000)))
            )
            .unwrap_err()
            .0,
            hr::E_INVALIDARG
        );
    }
}
