//! What a fold of the operation log may leave out: a step whose effect a later step of the same
//! fold replaces. The tables end exactly as if every step had run.
//!
//! A job's row is written whole by every `UpdateJob`, so every write of the row before the last
//! such update counts for nothing (another update, a checkpoint's `JobProgress`, an engine's
//! `UpdateJobUnlessNewer`), and an `InsertJob` before it can insert its columns at once. A `DeleteJob`
//! (which takes the job's files with it) makes every earlier step of its job moot, and itself
//! too when the job was inserted in the same fold. A one-file job created, given its file and
//! resumed between two folds then costs two statements instead of five; a job created and
//! completed between two folds costs none.

use super::oplog::{Record, Step, Stmt};
use rusqlite::types::ValueRef;
use std::collections::HashMap;

/// What the fold does with one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Run,
    Skip,
    /// An `InsertJob` run with the job columns of the `UpdateJob` at this index instead of its
    /// own (that update is skipped).
    InsertWith(usize),
}

/// The steps of `records`, in order, each with what to do with it.
pub(super) fn plan<'a, 'r: 'a>(
    records: impl Iterator<Item = &'a Record<'r>>,
) -> Vec<(&'a Step<'r>, Action)> {
    let mut steps: Vec<(&Step, Action)> = records
        .flat_map(|r| r.steps.iter())
        .map(|s| (s, Action::Run))
        .collect();
    // Each job's steps, by index, in order.
    let mut jobs: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, (step, _)) in steps.iter().enumerate() {
        if let Some(seq) = job_of(step) {
            jobs.entry(seq).or_default().push(i);
        }
    }
    for mine in jobs.values() {
        let of = |stmt: Stmt| -> Vec<usize> {
            mine.iter()
                .copied()
                .filter(|&i| steps[i].0.stmt == stmt)
                .collect()
        };
        let (deletes, inserts) = (of(Stmt::DeleteJob), of(Stmt::InsertJob));
        let Some((&last, before)) = mine.split_last() else {
            continue;
        };
        match deletes[..] {
            // Deleted last: what came before is moot, and so is the delete if the row was
            // inserted in this fold.
            [d] if d == last => {
                for &i in before {
                    steps[i].1 = Action::Skip;
                }
                if inserts.len() == 1 {
                    steps[last].1 = Action::Skip;
                }
            }
            // Only the last whole row counts; an insert before it takes its columns.
            [] => {
                let Some(&newest) = of(Stmt::UpdateJob).last() else {
                    continue;
                };
                for &u in mine.iter().take_while(|&&u| u < newest) {
                    if writes_row(steps[u].0.stmt) {
                        steps[u].1 = Action::Skip;
                    }
                }
                if let [i] = inserts[..] {
                    if i < newest {
                        steps[i].1 = Action::InsertWith(newest);
                        steps[newest].1 = Action::Skip;
                    }
                }
            }
            // Deleted more than once, or written after its delete: left as it is.
            _ => {}
        }
    }
    steps
}

/// Writes a job's row without inserting it: moot before a later `UpdateJob`.
fn writes_row(stmt: Stmt) -> bool {
    matches!(
        stmt,
        Stmt::UpdateJob | Stmt::JobProgress | Stmt::UpdateJobUnlessNewer
    )
}

/// The job (by `seq`) a step writes; None for a setting.
fn job_of(step: &Step<'_>) -> Option<i64> {
    let at = match step.stmt {
        Stmt::InsertJob | Stmt::InsertFile | Stmt::DeleteJob => 0,
        Stmt::UpdateJob | Stmt::JobProgress | Stmt::UpdateJobUnlessNewer => {
            step.values.len().checked_sub(1)?
        }
        Stmt::UpdateFileNames => 8,
        Stmt::Checkpoint => 6,
        Stmt::PutSetting | Stmt::DeleteSetting => return None,
    };
    match step.values.get(at) {
        Some(ValueRef::Integer(seq)) => Some(*seq),
        _ => None,
    }
}
