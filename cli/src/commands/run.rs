//! `run [--until-idle]`: hold the queue so its jobs transfer, for cron and systemd timers.
//! A line per state change (a JSON document per line with `--json`).

use super::Context;
use crate::fail::{Fail, EXIT_INTERRUPTED};
use crate::format;
use crate::interrupt;
use crate::queue;
use openbits_core::{JobId, JobState};
use std::collections::HashMap;
use std::time::Duration;

pub fn run(cx: &Context, until_idle: bool) -> Result<i32, Fail> {
    interrupt::install();
    let manager = queue::open(&cx.dir, queue::Hold::ToTransfer)?;
    cx.note(format!(
        "holding the queue {} (process {}); {}",
        cx.dir.display(),
        std::process::id(),
        if until_idle {
            "until no job is queued or transferring"
        } else {
            "until Ctrl-C or SIGTERM"
        }
    ));
    let mut seen: HashMap<JobId, JobState> = HashMap::new();
    let mut signal = None;
    loop {
        // Every owner's jobs transfer while we hold the queue; we report the ones we may see.
        let jobs = manager.jobs().map_err(Fail::call("cannot list the jobs"))?;
        let records: Vec<_> = jobs.iter().filter_map(|j| j.record().ok()).collect();
        for rec in &records {
            if seen.insert(rec.id, rec.state) == Some(rec.state) {
                continue;
            }
            if cx.global.json {
                cx.json(&format::job_json(rec));
            } else {
                let p = rec.progress();
                let mut line = format!(
                    "{} {}: {} {}",
                    format::braced(&rec.id),
                    rec.display_name,
                    rec.state.name(),
                    format::progress(p.bytes_transferred, p.bytes_total)
                );
                if let Some(e) = rec
                    .error
                    .as_ref()
                    .filter(|_| matches!(rec.state, JobState::Error | JobState::TransientError))
                {
                    line.push_str(&format!(
                        ": {} {}",
                        crate::fail::code_and_name(e.code),
                        e.description
                    ));
                }
                cx.say(line);
            }
        }
        if until_idle && !records.iter().any(|r| format::is_busy(r.state)) {
            break;
        }
        if let Some(s) = interrupt::received() {
            signal = Some(s);
            break;
        }
        // The event queue wakes us at once on a change; the timeout bounds the signal's delay.
        let _ = manager.next_event(Some(Duration::from_millis(200)));
    }
    // Closing stops the transfers and records their progress; the next holder continues them.
    manager.close();
    // Ctrl-C interrupted the work: 130, as for every verb. SIGTERM is how systemd and other
    // supervisors stop a service they started on purpose: a clean stop, 0, so the unit does not
    // count it as a failure.
    Ok(match signal {
        Some(libc::SIGINT) => EXIT_INTERRUPTED,
        _ => 0,
    })
}
