//! The scheduler: one task per manager. It turns TRANSIENT_ERROR jobs back into QUEUED when their
//! retry delay has passed (or into ERROR when their no-progress timeout has), cancels inactive
//! jobs, and gives transfer slots by BITS's rules (`plan`, a pure function): FOREGROUND jobs at
//! once, background jobs strictly by priority, equal priorities in turns of `time_slice`.
//!
//! `plan.rs` holds the pure slot rules and their tests; this file applies them to the queue.
//!
//! It sleeps until woken (`Shared::wake`) or until the next retry or timeout is due.

mod plan;
mod window;

use crate::config::BANDWIDTH_BLOCKED;
use crate::hresult as hr;
use crate::hresult::HResult;
use crate::job::now_ms;
use crate::job::{JobError, JobRecord, TRANSFER_POLICY_ALWAYS};
use crate::policy::bandwidth::Bucket;
use crate::policy::priority_index;
use crate::queue::{needs_scheduler, publish, JobCell, JobSlot, Runner, Shared, Touch, Waiting};
use crate::settle;
use crate::state::ErrorContext;
use crate::state::{engine, JobState, Priority};
use crate::transfer::{self, http::Clients};
use plan::{plan, Candidate};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) async fn run(shared: Arc<Shared>) {
    // The connection pools serve every transfer task this scheduler starts, and go with it.
    let clients = Arc::new(Clients::new(shared.limits.hosts.connections()));
    let mut gates_seen = None;
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let next_due_ms = pass(&shared, &clients, &mut gates_seen);
        for c in std::mem::take(&mut *shared.cancel_sessions.lock()) {
            tokio::spawn(transfer::cancel_session(shared.clone(), clients.clone(), c));
        }
        shared
            .next_due_ms
            .store(next_due_ms.unwrap_or(u64::MAX), Ordering::SeqCst);
        let notified = shared.wake.notified();
        // Creating a job wakes the scheduler only if its inactivity deadline is the earliest, which
        // races with a pass publishing `next_due_ms`; a bounded sleep makes a missed wake cost at
        // most this much delay on an inactivity cancel.
        let cap = shared
            .config
            .inactivity_timeout
            .min(Duration::from_secs(60));
        let wait = next_due_ms.map_or(cap, |due| {
            Duration::from_millis(due.saturating_sub(now_ms())).min(cap)
        });
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What the gates of a pass were: the network is up, its cost, and the priorities the
/// bandwidth schedule blocks. A parked job passed them; when they change, it must be looked at
/// again.
type Gates = (bool, u32, [bool; 3]);

/// One scheduling pass. Returns when the next time-based decision is due.
fn pass(
    shared: &Arc<Shared>,
    clients: &Arc<Clients>,
    gates_seen: &mut Option<Gates>,
) -> Option<u64> {
    let now = now_ms();
    let mut next_due: Option<u64> = None;
    let mut due = |t: u64| next_due = Some(next_due.map_or(t, |n| n.min(t)));
    let cost = shared.cost_now();
    let blocked = apply_schedule(shared, now, &mut due);
    let online = shared.network_up.load(Ordering::SeqCst);
    // Every job when an inactivity deadline may have come (the earliest one is learnt again on
    // the way) or a gate changed; else the jobs in motion and the parked ones whose turn may
    // come.
    let gates = (online, cost, blocked);
    let full = shared.idle_due_ms.load(Ordering::SeqCst) <= now || *gates_seen != Some(gates);
    *gates_seen = Some(gates);
    // The network came back: every job waiting in TRANSIENT_ERROR retries now (as in BITS), not
    // when its retry delay ends.
    let reconnects = shared.reconnects.load(Ordering::SeqCst);
    let reconnected = shared.reconnects_seen.swap(reconnects, Ordering::SeqCst) != reconnects;
    let mut cells: Vec<Arc<JobCell>> = if full {
        shared.idle_due_ms.store(u64::MAX, Ordering::SeqCst);
        // Each parked job is among all jobs, and is unparked when visited.
        shared.waiting.lock().clear();
        shared.jobs.lock().values().cloned().collect()
    } else {
        shared.scheduled.lock().values().cloned().collect()
    };
    // A job that no longer needs the scheduler leaves its set, and its inactivity deadline
    // joins the earliest one (under its slot lock, so it cannot miss a concurrent resume).
    let leave = |slot: &JobSlot, idle_until: Option<u64>| {
        shared.scheduled.lock().remove(&slot.rec.id);
        if let Some(t) = idle_until {
            shared.idle_due_ms.fetch_min(t, Ordering::SeqCst);
        }
    };
    // Sized once for the pass: growing them push by push was a fifth of a pass's time.
    let room = cells.len() + peek_limit(shared);
    let mut candidates = Vec::with_capacity(room);
    // Candidates name their cell by its index in `cells`: no second reference count per job
    // and pass (a pass over a queue of thousands is mostly this loop).
    let mut by_key: Vec<usize> = Vec::with_capacity(room);
    let inactive_after = shared.config.inactivity_timeout.as_millis() as u64;
    // The candidates a pass may park if they do not start (indexes into `by_key`).
    let mut parkable: Vec<usize> = Vec::with_capacity(cells.len());
    for (at, cell) in cells.iter().enumerate() {
        let mut slot = cell.slot.lock();
        if slot.parked {
            unpark(shared, cell, &mut slot);
        }
        if slot.rec.state.is_final() {
            leave(&slot, None);
            continue;
        }
        if slot.settling {
            continue;
        }
        // A policy that forbids the transfer now: the job's cost policy against the network's
        // cost, or the bandwidth schedule against background transfers.
        let gate = if !online {
            Some(hr::E_NETWORK_DISCONNECTED)
        } else if !cost_allows(&slot.rec, cost) {
            Some(hr::E_BLOCKED_BY_COST_TRANSFER_POLICY)
        } else if priority_index(slot.rec.priority).is_some_and(|i| blocked[i]) {
            Some(hr::E_BLOCKED_BY_POLICY)
        } else {
            None
        };
        if let (Some(code), true) = (gate, slot.rec.state.is_active()) {
            // It waits (its task, if any, stops).
            block(shared, cell, &mut slot, code);
            continue;
        }
        if let Some(ran) = slot.runner.as_ref().map(|r| r.started.elapsed()) {
            let limit_ms = slot.rec.max_download_time_s as u64 * 1000;
            let ran_ms = ran.as_millis() as u64;
            let used_ms = slot.rec.active_ms.saturating_add(ran_ms);
            if limit_ms > 0 && used_ms >= limit_ms {
                out_of_time(shared, cell, &mut slot);
                continue;
            }
            if limit_ms > 0 {
                due(now.saturating_add(limit_ms - used_ms));
            }
            candidates.push(Candidate {
                key: by_key.len(),
                priority: slot.rec.priority,
                running_for: Some(ran),
                order: (slot.last_ran, slot.rec.seq),
            });
            by_key.push(at);
            continue;
        }
        let rec = &slot.rec;
        let idle_until = rec.modified_ms.saturating_add(inactive_after);
        if idle_until <= now {
            // Abandoned (BITS's JobInactivityTimeout): cancel it. Cancel blocks, so not here.
            drop(slot);
            let (shared, cell) = (shared.clone(), cell.clone());
            tokio::task::spawn_blocking(move || settle::cancel(&shared, &cell));
            continue;
        }
        due(idle_until);
        let mut waiting = rec.state.is_active();
        let policy_blocked = rec.error.as_ref().is_some_and(|e| {
            e.code == hr::E_BLOCKED_BY_COST_TRANSFER_POLICY
                || e.code == hr::E_BLOCKED_BY_POLICY
                || e.code == hr::E_NETWORK_DISCONNECTED
        });
        if rec.state == JobState::TransientError && !online && !policy_blocked {
            // A job waiting out its retry delay when the network went away: it now waits for
            // the network instead, so the outage neither runs down its no-progress timeout nor
            // brings its retry on before a link is back (the pass that sees one queues it).
            wait_for_network(shared, cell, &mut slot);
        } else if rec.state == JobState::TransientError && (policy_blocked || reconnected) {
            // Waiting for a policy (or the network) to allow it: no retry timer, no no-progress
            // timeout.
            if gate.is_none() {
                waiting = retry(shared, cell, &mut slot);
            }
        } else if rec.state == JobState::TransientError {
            let give_up_at = rec.no_progress_since_ms.map(|s| {
                s.get()
                    .saturating_add(rec.no_progress_timeout_s as u64 * 1000)
            });
            let retry_at = rec.retry_at_ms.map_or(now, |v| v.get());
            if give_up_at.is_some_and(|g| g <= now && g <= retry_at) {
                // A store failure leaves the job as it was; the next pass tries again.
                let _ = publish(shared, cell, &mut slot, Touch::Job, |next| {
                    if let Some(s) = engine::no_progress_timeout(next.state) {
                        next.state = s;
                    }
                    Ok(())
                });
            } else if retry_at <= now {
                waiting = retry(shared, cell, &mut slot);
            } else {
                due(retry_at);
                if let Some(g) = give_up_at {
                    due(g);
                }
            }
        }
        if !needs_scheduler(slot.rec.state) {
            leave(&slot, Some(idle_until));
        }
        // An active job without a task (queued, or its task ended while it stayed active) waits.
        if waiting {
            if slot.rec.state == JobState::Queued && gate.is_none() {
                parkable.push(by_key.len());
            }
            candidates.push(Candidate {
                key: by_key.len(),
                priority: slot.rec.priority,
                running_for: None,
                order: (slot.last_ran, slot.rec.seq),
            });
            by_key.push(at);
        }
    }
    // Parked jobs join the plan where they wait (a full pass has unparked them all).
    let peeked = if full {
        Vec::new()
    } else {
        peek_turns(shared, &mut cells, &mut candidates, &mut by_key)
    };
    let plan = plan(
        &candidates,
        shared.config.max_concurrent_jobs,
        shared.config.time_slice,
    );
    for key in plan.preempt {
        preempt(shared, &cells[by_key[key]]);
    }
    let mut starting = vec![false; by_key.len()];
    for &key in &plan.start {
        starting[key] = true;
    }
    for key in parkable.into_iter().filter(|&k| !starting[k]) {
        park(shared, &cells[by_key[key]], inactive_after);
    }
    for key in plan.start {
        let cell = &cells[by_key[key]];
        let started = start(shared, clients, cell);
        let place = peeked.iter().find(|(k, _)| *k == key).map(|&(_, p)| p);
        if let (true, Some(place)) = (started, place) {
            // Its place is stale once it started (`publish` unparked it); dropped now rather
            // than by a later pass, which would step over it.
            let mut waiting = shared.waiting.lock();
            if waiting.get(&place).is_some_and(|c| Arc::ptr_eq(c, cell)) {
                waiting.remove(&place);
            }
        }
        if started {
            // Its maximum download time is now running: the next pass must come by its end.
            let rec = &cell.slot.lock().rec;
            let limit_ms = rec.max_download_time_s as u64 * 1000;
            if limit_ms > 0 {
                due(now.saturating_add(limit_ms.saturating_sub(rec.active_ms)));
            }
        }
    }
    if let Some(d) = plan.next_slice_end {
        due(now.saturating_add(d.as_millis() as u64));
    }
    match shared.idle_due_ms.load(Ordering::SeqCst) {
        u64::MAX => {}
        idle => due(idle),
    }
    next_due
}

/// Makes candidates of the parked jobs in `Shared::waiting` whose turn may come in this pass:
/// every FOREGROUND one and, of the first background priority, twice the slots and one more
/// (enough to fill every slot, and to tell whether more of them wait than there are slots, when
/// they take turns). A job of a lower priority cannot get a slot while one of these waits.
///
/// They are looked at where they wait and stay parked: only those the plan starts leave (`start`
/// unparks them). Taking them out and parking them again cost each pass two map insertions and
/// two removals per job looked at, most of the scheduler's time in a queue of small jobs.
///
/// Stale entries are dropped on the way: their job is no longer parked, or is parked again under
/// another key (its priority changed, and a pass parked it anew), so an old place never counts for
/// the job's current one. Returns the candidates' keys with their places.
fn peek_turns(
    shared: &Shared,
    cells: &mut Vec<Arc<JobCell>>,
    candidates: &mut Vec<Candidate>,
    by_key: &mut Vec<usize>,
) -> Vec<(usize, Waiting)> {
    use std::ops::Bound::{Excluded, Unbounded};
    let want = peek_limit(shared);
    let mut top = None;
    let mut taken = 0;
    let mut peeked = Vec::with_capacity(want);
    cells.reserve(want);
    let mut after: Option<Waiting> = None;
    loop {
        // One entry at a time: the waiting list's lock is not held across a slot lock (the
        // lock order is slot, then list). Only a pass parks, so the entries after `after` are
        // still the ones to look at.
        let next = {
            let waiting = shared.waiting.lock();
            let mut from = match after {
                None => waiting.range(..),
                Some(k) => waiting.range((Excluded(k), Unbounded)),
            };
            from.next().map(|(k, c)| (*k, c.clone()))
        };
        let Some((key, cell)) = next else {
            break;
        };
        after = Some(key);
        let slot = cell.slot.lock();
        if !slot.parked || key != waiting_key(&slot) {
            drop(slot);
            let mut waiting = shared.waiting.lock();
            if waiting.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                waiting.remove(&key);
            }
            continue;
        }
        // Being completed or cancelled: it must not take a slot from a job that could use it
        // (its entry stays current; settling unparks it, or leaves it parked if that fails).
        if slot.settling {
            continue;
        }
        let priority = key.0;
        if priority != Priority::Foreground {
            if top.is_some_and(|t| t != priority) || taken >= want {
                break;
            }
            top = Some(priority);
            taken += 1;
        }
        peeked.push((by_key.len(), key));
        candidates.push(Candidate {
            key: by_key.len(),
            priority,
            running_for: None,
            order: (slot.last_ran, slot.rec.seq),
        });
        drop(slot);
        by_key.push(cells.len());
        cells.push(cell);
    }
    peeked
}

/// How many parked background jobs a pass looks at (`peek_turns`).
fn peek_limit(shared: &Shared) -> usize {
    shared
        .config
        .max_concurrent_jobs
        .saturating_mul(2)
        .saturating_add(1)
}

/// The job goes back among those every pass visits.
fn unpark(shared: &Shared, cell: &Arc<JobCell>, slot: &mut JobSlot) {
    slot.parked = false;
    shared.scheduled.lock().insert(slot.rec.id, cell.clone());
}

/// A QUEUED job that did not get a slot waits in `Shared::waiting` until its turn may come
/// (unless it changed since the pass looked at it). Its inactivity deadline joins the earliest
/// one, as a job leaving `scheduled` does.
fn park(shared: &Shared, cell: &Arc<JobCell>, inactive_after: u64) {
    let mut slot = cell.slot.lock();
    if slot.parked || slot.settling || slot.runner.is_some() || slot.rec.state != JobState::Queued {
        return;
    }
    slot.parked = true;
    let key = waiting_key(&slot);
    shared.scheduled.lock().remove(&slot.rec.id);
    shared.waiting.lock().insert(key, cell.clone());
    let idle_until = slot.rec.modified_ms.saturating_add(inactive_after);
    shared.idle_due_ms.fetch_min(idle_until, Ordering::SeqCst);
}

/// A parked job's place in `Shared::waiting`, from what it is now.
fn waiting_key(slot: &JobSlot) -> Waiting {
    (slot.rec.priority, slot.last_ran, slot.rec.seq)
}

/// SetMaximumDownloadTime ran out: the job goes to ERROR with BITS_E_MAXDOWNLOAD_TIMEOUT and its
/// transfer stops.
fn out_of_time(shared: &Arc<Shared>, cell: &Arc<JobCell>, slot: &mut JobSlot) {
    let Some(state) = engine::fatal_failure(slot.rec.state) else {
        return;
    };
    let _ = publish(shared, cell, slot, Touch::Job, |next| {
        next.state = state;
        next.error_count = next.error_count.saturating_add(1);
        next.error = Some(Box::new(JobError {
            context: ErrorContext::GeneralQueueManager,
            code: hr::E_MAXDOWNLOAD_TIMEOUT,
            description: format!(
                "the job transferred for longer than its maximum download time ({} s)",
                next.max_download_time_s
            ),
            file_index: None,
        }));
        Ok(())
    });
    JobCell::signal_stop(slot);
}

/// Puts the bandwidth schedule's limits for `now` in force (the buckets by priority) and returns
/// which background priorities may not transfer at all; the pass must come again when the
/// schedule changes them.
fn apply_schedule(shared: &Shared, now: u64, due: &mut impl FnMut(u64)) -> [bool; 3] {
    let schedule = *shared.schedule.lock();
    let (limits, change) = match &schedule {
        Some(s) => {
            let local = shared
                .config
                .local_clock
                .map_or_else(window::local_now, |c| c());
            window::limits_at(s, local)
        }
        None => ([0; 3], None),
    };
    if let Some(minutes) = change {
        // From the start of the current minute.
        due(now - now % 60_000 + minutes as u64 * 60_000);
    }
    let mut blocked = [false; 3];
    for (i, limit) in limits.into_iter().enumerate() {
        blocked[i] = limit == BANDWIDTH_BLOCKED;
        let rate = if blocked[i] { 0 } else { limit };
        let bucket = &shared.limits.by_priority[i];
        if bucket.rate() != rate {
            bucket.set_rate(rate);
        }
    }
    blocked
}

/// A TRANSIENT_ERROR job goes back to QUEUED now. False if the store refused (the next pass
/// tries again).
fn retry(shared: &Arc<Shared>, cell: &Arc<JobCell>, slot: &mut JobSlot) -> bool {
    publish(shared, cell, slot, Touch::Job, |next| {
        if let Some(s) = engine::retry_due(next.state) {
            next.state = s;
            next.retry_at_ms = None;
        }
        Ok(())
    })
    .is_ok()
}

/// Whether the job's transfer policy (BITS's cost flags) allows the network's cost `cost`.
fn cost_allows(rec: &JobRecord, cost: u32) -> bool {
    rec.extras()
        .transfer_policy
        .unwrap_or(TRANSFER_POLICY_ALWAYS)
        & cost
        != 0
}

/// A policy forbids the job's transfer now: it goes to TRANSIENT_ERROR with `code` (no retry
/// time: the pass that sees the policy allow it again queues it) and its task, if any, stops.
fn block(shared: &Arc<Shared>, cell: &Arc<JobCell>, slot: &mut JobSlot, code: HResult) {
    let _ = publish(shared, cell, slot, Touch::Job, |next| {
        if let Some(s) = engine::transient_failure(next.state, false) {
            next.state = s;
            next.retry_at_ms = None;
            next.no_progress_since_ms = None;
            next.error = Some(Box::new(JobError {
                context: ErrorContext::GeneralQueueManager,
                code,
                description: code.description(),
                file_index: None,
            }));
        }
        Ok(())
    });
    JobCell::signal_stop(slot);
}

/// A job in TRANSIENT_ERROR when the network went away: its error becomes
/// BITS_E_NETWORK_DISCONNECTED (what it waits for now), without a retry time, and its no-progress
/// clock stops as `block`'s does (it starts again at the next failure after the network returns).
fn wait_for_network(shared: &Arc<Shared>, cell: &Arc<JobCell>, slot: &mut JobSlot) {
    let _ = publish(shared, cell, slot, Touch::Job, |next| {
        next.retry_at_ms = None;
        next.no_progress_since_ms = None;
        let code = hr::E_NETWORK_DISCONNECTED;
        let file_index = next.error.as_ref().and_then(|e| e.file_index);
        next.error = Some(Box::new(JobError {
            context: ErrorContext::GeneralTransport,
            code,
            description: code.description(),
            file_index,
        }));
        Ok(())
    });
}

/// Takes the job's slot away: it goes back to QUEUED and its task stops; it resumes from its
/// bytes on disk when its turn comes again.
fn preempt(shared: &Arc<Shared>, cell: &Arc<JobCell>) {
    let mut slot = cell.slot.lock();
    // No task, or already asked to stop: nothing to take.
    if slot.runner.as_ref().is_none_or(|r| *r.stop.borrow()) {
        return;
    }
    if let Some(s) = engine::preempted(slot.rec.state) {
        let _ = publish(shared, cell, &mut slot, Touch::Job, |next| {
            next.state = s;
            Ok(())
        });
    }
    JobCell::signal_stop(&slot);
}

/// Gives the job a transfer task. False if the job changed since the pass looked at it.
fn start(shared: &Arc<Shared>, clients: &Arc<Clients>, cell: &Arc<JobCell>) -> bool {
    let mut slot = cell.slot.lock();
    if slot.runner.is_some() || slot.settling {
        return false;
    }
    let Some(state) = engine::start(slot.rec.state) else {
        return false;
    };
    let started = publish(shared, cell, &mut slot, Touch::Job, |next| {
        next.state = state;
        Ok(())
    });
    if started.is_err() {
        return false;
    }
    let (tx, rx) = watch::channel(false);
    slot.runner = Some(Box::new(Runner {
        stop: tx,
        started: Instant::now(),
        bucket: Arc::new(Bucket::new(slot.rec.extras().max_bandwidth)),
    }));
    slot.last_ran = shared.starts.fetch_add(1, Ordering::Relaxed) + 1;
    drop(slot);
    tokio::spawn(transfer::run_job(
        shared.clone(),
        clients.clone(),
        cell.clone(),
        rx,
    ));
    true
}
