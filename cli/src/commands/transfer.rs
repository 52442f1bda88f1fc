//! `transfer`: Start-BitsTransfer. One job, live progress, wait, complete. Also the loop that
//! waits on a job with progress, shared with `resume --wait`.

use super::{apply_credentials, read_credentials, Context};
use crate::cli::{Kind, PriorityArg, TransferArgs};
use crate::fail::{Fail, EXIT_INTERRUPTED};
use crate::format;
use crate::interrupt;
use crate::progress::Display;
use crate::queue;
use openbits_core::hresult as hr;
use openbits_core::{Job, JobRecord, JobState, JobType, Manager, Priority};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Start-BitsTransfer's display name for the jobs it creates.
const DEFAULT_NAME: &str = "BITS Transfer";

pub fn transfer(cx: &Context, args: TransferArgs) -> Result<i32, Fail> {
    if !args.pairs.len().is_multiple_of(2) {
        return Err(Fail::Usage(format!(
            "SOURCE and DEST come in pairs; {:?} has no DEST",
            args.pairs.last().map(String::as_str).unwrap_or("")
        )));
    }
    let max_bandwidth = args
        .max_bandwidth
        .as_deref()
        .map(parse_bandwidth)
        .transpose()?;
    let job_type = job_type(args.kind);
    if job_type != JobType::Download && args.pairs.len() != 2 {
        return Err(Fail::Usage(
            "an upload job has exactly one file: one SOURCE (local) and one DEST (URL)".into(),
        ));
    }
    let files = args
        .pairs
        .chunks(2)
        .map(|pair| match job_type {
            JobType::Download => {
                let url = remote(&pair[0])?;
                Ok((url.clone(), local(&pair[1], Some(&url))?))
            }
            // An upload's SOURCE is the local file and its DEST the URL; BITS's AddFile takes
            // them as (remote, local) all the same.
            _ => Ok((remote(&pair[1])?, local(&pair[0], None)?)),
        })
        .collect::<Result<Vec<(String, String)>, Fail>>()?;
    // Everything the command line says is checked before the queue is touched: a transfer that
    // fails here must not leave a job behind.
    let headers = headers(&args.headers);
    if let Some(h) = &headers {
        openbits_core::http_options::parse_headers(h)
            .map_err(|refusal| Fail::call("--header")(openbits_core::Error::from(refusal)))?;
    }
    let credentials = read_credentials(&args.credentials)?;

    interrupt::install();
    let manager = queue::open(&cx.dir, queue::Hold::ToTransfer)?;
    let (job, created) = match same_transfer(&manager, job_type, &files) {
        Some((job, rec)) => {
            let p = rec.progress();
            cx.note(format!(
                "continuing job {} ({}, {} already here)",
                format::braced(&rec.id),
                rec.state.name(),
                format::size(p.bytes_transferred)
            ));
            (job, false)
        }
        None => {
            let name = args.name.as_deref().unwrap_or(DEFAULT_NAME);
            let job = manager
                .create_job(name, job_type)
                .map_err(Fail::call("cannot create the job"))?;
            let pairs: Vec<(&str, &str)> = files
                .iter()
                .map(|(r, l)| (r.as_str(), l.as_str()))
                .collect();
            if let Err(e) = job.add_file_set(&pairs) {
                // A job that cannot have its files is of no use to anyone: do not leave it behind.
                let _ = job.cancel();
                return Err(Fail::call("cannot add the files")(e));
            }
            (job, true)
        }
    };
    let set_up = || -> Result<(), Fail> {
        job.set_priority(priority(args.priority))
            .map_err(Fail::call("cannot set the priority"))?;
        if let Some(bytes) = max_bandwidth {
            job.set_max_bandwidth(bytes)
                .map_err(Fail::call("--max-bandwidth"))?;
        }
        if let Some(h) = &headers {
            job.set_custom_headers(Some(h))
                .map_err(Fail::call("--header"))?;
        }
        // Credentials live only in memory: a continued job needs them again, and gets them here.
        apply_credentials(&job, credentials.as_ref())?;
        start(&job)
    };
    if let Err(fail) = set_up() {
        // Whatever was checked above, the library has the last word; a job we made for this
        // command and could not start is removed, while a continued one is the user's and stays.
        if created {
            let _ = job.cancel();
        }
        return Err(fail);
    }
    watch(cx, &job, true, continue_command())
}

/// The `Start-BitsTransfer` job type of the flags.
pub fn job_type(kind: Kind) -> JobType {
    if kind.upload_reply {
        JobType::UploadReply
    } else if kind.upload {
        JobType::Upload
    } else {
        JobType::Download
    }
}

fn priority(p: PriorityArg) -> Priority {
    match p {
        PriorityArg::Foreground => Priority::Foreground,
        PriorityArg::High => Priority::High,
        PriorityArg::Normal => Priority::Normal,
        PriorityArg::Low => Priority::Low,
    }
}

pub fn parse_priority(text: &str) -> Option<Priority> {
    use clap::ValueEnum;
    PriorityArg::from_str(text, true).ok().map(priority)
}

/// A job's own rate limit, in bytes per second (0: none).
pub fn parse_bandwidth(rate: &str) -> Result<u64, Fail> {
    format::parse_rate(rate).ok_or_else(|| {
        Fail::Usage(format!(
            "{rate:?} is not a rate: give bytes per second, e.g. 500k, 2MiB or 1.5M/s"
        ))
    })
}

/// A URL as the library stores it (so a rerun finds the job it made), or a local path made a
/// file:// URL, as Start-BitsTransfer accepts paths.
fn remote(source: &str) -> Result<String, Fail> {
    if let Ok(url) = url::Url::parse(source) {
        // "C:/x" parses with scheme "c"; a real scheme is longer than a drive letter.
        if url.scheme().len() > 1 {
            return Ok(url.to_string());
        }
    }
    let path = absolute(source)?;
    url::Url::from_file_path(&path)
        .map(|u| u.to_string())
        .map_err(|_| Fail::Usage(format!("{source:?} is neither a URL nor a usable path")))
}

/// The absolute local name for DEST; a folder takes the URL's last segment as the file name.
fn local(dest: &str, url: Option<&str>) -> Result<String, Fail> {
    let mut path = absolute(dest)?;
    if let Some(url) = url.filter(|_| dest.ends_with('/') || path.is_dir()) {
        let name = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(percent_decode))
            })
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .ok_or_else(|| {
                Fail::Usage(format!(
                    "{dest} is a folder and {url} names no file: give DEST as a file name"
                ))
            })?;
        path.push(name);
    }
    Ok(path.to_string_lossy().into_owned())
}

/// Absolute, with `.` removed, as the library normalises local names.
pub fn absolute(path: &str) -> Result<PathBuf, Fail> {
    let p = Path::new(path);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Fail::Other(format!("cannot read the current folder: {e}")))?
            .join(p)
    };
    Ok(p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `--header 'K: V'`s in BITS's `"K: V\r\n…"` form; the library validates them.
fn headers(given: &[String]) -> Option<String> {
    if given.is_empty() {
        return None;
    }
    Some(given.iter().map(|h| format!("{}\r\n", h.trim())).collect())
}

/// The user's job that is this same transfer (same type, same files in the same order) and not
/// final: running a transfer again continues it instead of starting over.
fn same_transfer(
    manager: &Manager,
    job_type: JobType,
    files: &[(String, String)],
) -> Option<(Job, JobRecord)> {
    let jobs = manager.jobs().ok()?;
    jobs.into_iter().rev().find_map(|job| {
        let rec = job.record().ok()?;
        let same = rec.job_type == job_type
            && !rec.state.is_final()
            && rec.files.len() == files.len()
            && rec
                .files
                .iter()
                .zip(files)
                .all(|(f, (r, l))| *f.remote_url == **r && *f.local_path == **l);
        same.then_some((job, rec))
    })
}

/// Queues the job unless the scheduler already has it or it is already transferred.
pub fn start(job: &Job) -> Result<(), Fail> {
    let state = job.state().map_err(Fail::call("cannot read the job"))?;
    if state.is_active() || state == JobState::Transferred {
        return Ok(());
    }
    job.resume().map_err(Fail::call("cannot resume the job"))
}

/// This command line, quoted for a POSIX shell: what continues a suspended transfer.
fn continue_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!("openbits {}", args.join(" "))
}

pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,{}".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Waits on `job` with live progress until it is TRANSFERRED (then completes it if `complete`),
/// in ERROR, or Ctrl-C (then suspends it and prints `continue_with`).
pub fn watch(cx: &Context, job: &Job, complete: bool, continue_with: String) -> Result<i32, Fail> {
    let mut display = Display::new(cx.global.quiet, cx.global.json);
    let id = format::braced(&job.id());
    loop {
        if interrupt::received().is_some() {
            display.finish();
            // Already TRANSFERRED or in ERROR: nothing to stop, and the refusal says nothing new.
            let _ = job.suspend();
            cx.note(format!(
                "interrupted: job {id} is suspended; continue it with:\n  {continue_with}"
            ));
            return Ok(EXIT_INTERRUPTED);
        }
        let rec = job.record().map_err(Fail::call("cannot read the job"))?;
        display.update(&rec);
        match rec.state {
            JobState::Transferred => {
                display.finish();
                return finished(cx, job, &rec, complete, display.started());
            }
            JobState::Error => {
                display.finish();
                if cx.global.json {
                    cx.json(&format::job_json(&rec));
                }
                return Err(job_failure(cx, &rec, &continue_with));
            }
            JobState::Suspended | JobState::Acknowledged | JobState::Cancelled => {
                display.finish();
                return Err(Fail::Other(format!(
                    "job {id} became {} while we waited on it",
                    rec.state.name()
                )));
            }
            _ => {}
        }
        // Wakes early on a state change; otherwise ten looks a second keep the bars moving.
        let _ = job.wait(Some(Duration::from_millis(100)));
    }
}

fn job_failure(cx: &Context, rec: &JobRecord, continue_with: &str) -> Fail {
    let Some(error) = rec.error.as_deref().cloned() else {
        return Fail::Other(format!(
            "job {} is in ERROR with no error recorded",
            format::braced(&rec.id)
        ));
    };
    let file = error
        .file_index
        .and_then(|i| rec.files.get(i as usize))
        .map(|f| format!("{} -> {}", f.remote_url, f.local_path));
    let id = format::braced(&rec.id);
    Fail::Job {
        job: id.clone(),
        error,
        file,
        hint: format!(
            "The job is kept: retry with `{continue_with}`, or remove it with `{} cancel {id}`.",
            cx.openbits()
        ),
    }
}

fn finished(
    cx: &Context,
    job: &Job,
    rec: &JobRecord,
    complete: bool,
    started: std::time::Instant,
) -> Result<i32, Fail> {
    let id = format::braced(&rec.id);
    let p = rec.progress();
    let seconds = started.elapsed().as_secs_f64();
    let where_to = match rec.files.as_slice() {
        [one] => one.local_path.to_string(),
        files => format!("{} files", files.len()),
    };
    if !complete {
        if cx.global.json {
            cx.json(&format::job_json(rec));
        } else {
            cx.say(format!(
                "transferred {} ({where_to}); `{} complete {id}` puts the files in place",
                format::size(p.bytes_transferred),
                cx.openbits()
            ));
        }
        return Ok(0);
    }
    let code = job
        .complete()
        .map_err(Fail::call(format!("cannot complete job {id}")))?;
    if cx.global.json {
        let mut doc = format::job_json(&job.record().unwrap_or_else(|_| rec.clone()));
        doc["result"] = serde_json::json!(crate::fail::code_and_name(code));
        cx.json(&doc);
    } else {
        cx.say(format!(
            "transferred {} in {:.1} s ({}): {where_to}",
            format::size(p.bytes_transferred),
            seconds,
            format::rate(p.bytes_transferred as f64 / seconds.max(0.001))
        ));
    }
    if code != hr::S_OK {
        cx.note(format!("complete: {}", crate::fail::code_and_name(code)));
    }
    if let Some(reply) = rec.reply_path() {
        cx.note(format!("reply: {}", reply.display()));
    }
    Ok(0)
}
