//! The verbs that only read: `list`, `info`, `monitor`. They read the queue's database without
//! its lock (see `queue::read`), so they work while an application holds the queue, and show
//! what it has recorded: progress as of its last checkpoint.

use super::Context;
use crate::fail::{Fail, EXIT_INTERRUPTED};
use crate::format;
use crate::interrupt;
use crate::queue::{self, Holder};
use crate::resolve;
use openbits_core::JobRecord;
use serde_json::json;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// The jobs this user sees: their own, or every owner's with `--all-users` (the reader can read
/// the folder's database, so hiding other owners' jobs is a courtesy, as in BITS, not a guard).
fn visible(dir: &std::path::Path, all_users: bool) -> Result<Vec<JobRecord>, Fail> {
    let me = openbits_core::job::current_user();
    let mut jobs = queue::read(dir)?;
    if !all_users {
        jobs.retain(|j| *j.owner == *me);
    }
    Ok(jobs)
}

fn holder_line(dir: &std::path::Path, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "queue {}: held by process {} ({}); progress as of its last checkpoint",
            dir.display(),
            h.pid,
            h.name
        ),
        None => format!(
            "queue {}: not held by any process; queued jobs wait for one (`openbits run`)",
            dir.display()
        ),
    }
}

fn document(cx: &Context, jobs: &[JobRecord], holder: Option<&Holder>) -> serde_json::Value {
    json!({
        "state_dir": cx.dir.to_string_lossy(),
        "holder": format::holder_json(holder),
        "jobs": jobs.iter().map(format::job_json).collect::<Vec<_>>(),
    })
}

pub fn list(cx: &Context, all_users: bool) -> Result<i32, Fail> {
    let jobs = visible(&cx.dir, all_users)?;
    let holder = queue::holder(&cx.dir);
    if cx.global.json {
        cx.json(&document(cx, &jobs, holder.as_ref()));
        return Ok(0);
    }
    if cx.global.quiet {
        return Ok(0);
    }
    if jobs.is_empty() {
        println!("no jobs");
    } else {
        print!("{}", format::table(&jobs, all_users));
    }
    eprintln!("{}", holder_line(&cx.dir, holder.as_ref()));
    Ok(0)
}

pub fn info(cx: &Context, query: &str) -> Result<i32, Fail> {
    // Every owner's jobs: a GUID is specific enough, and `info` changes nothing.
    let jobs = visible(&cx.dir, true)?;
    let job = resolve::resolve(query, &jobs)?;
    let holder = queue::holder(&cx.dir);
    if cx.global.json {
        let mut doc = format::job_json(job);
        doc["holder"] = format::holder_json(holder.as_ref());
        cx.json(&doc);
        return Ok(0);
    }
    if !cx.global.quiet {
        print!("{}", format::info(job));
        eprintln!("{}", holder_line(&cx.dir, holder.as_ref()));
    }
    Ok(0)
}

/// Redraws the table every `interval` seconds until Ctrl-C. On a terminal the screen is
/// redrawn in place; elsewhere the table is printed again only when it changed; with `--json`
/// one document per refresh, one a line.
pub fn monitor(cx: &Context, all_users: bool, interval: f64) -> Result<i32, Fail> {
    if !(interval.is_finite() && interval > 0.0) {
        return Err(Fail::Usage(
            "--interval must be a positive number of seconds".into(),
        ));
    }
    interrupt::install();
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let jobs = visible(&cx.dir, all_users)?;
        let holder = queue::holder(&cx.dir);
        let now = format::time(openbits_core::job::now_ms());
        if cx.global.json {
            let mut doc = document(cx, &jobs, holder.as_ref());
            doc["time"] = json!(now);
            cx.json(&doc);
        } else if !cx.global.quiet {
            let body = format!(
                "{}{}\n",
                if jobs.is_empty() {
                    "no jobs\n".to_string()
                } else {
                    format::table(&jobs, all_users)
                },
                holder_line(&cx.dir, holder.as_ref())
            );
            if terminal {
                // Home, clear: the table stays in place, as bitsadmin /monitor redraws it.
                print!("\x1b[H\x1b[2J{now}  (Ctrl-C to stop)\n\n{body}");
            } else if body != last {
                print!("{now}\n{body}\n");
            }
            last = body;
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let next = Instant::now() + Duration::from_secs_f64(interval);
        while Instant::now() < next {
            if interrupt::received().is_some() {
                // Ctrl-C is the only way a monitor ends: interrupted, as the exit statuses say.
                return Ok(EXIT_INTERRUPTED);
            }
            std::thread::sleep(
                Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }
}
