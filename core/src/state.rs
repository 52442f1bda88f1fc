//! The BITS job state machine (bits-api.md §4): the states, and every rule that moves a job between them.
//!
//! Each rule is a pure function of the current state (and what the rule needs to know), returning the
//! next state or the HRESULT BITS gives. The manager applies them; the transfer engine reports events
//! through them. Nothing else decides a state.

use crate::hresult::{self as hr, HResult};

/// BG_JOB_STATE, with BITS's values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued = 0,
    Connecting = 1,
    Transferring = 2,
    Suspended = 3,
    Error = 4,
    TransientError = 5,
    Transferred = 6,
    Acknowledged = 7,
    Cancelled = 8,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Connecting,
        JobState::Transferring,
        JobState::Suspended,
        JobState::Error,
        JobState::TransientError,
        JobState::Transferred,
        JobState::Acknowledged,
        JobState::Cancelled,
    ];

    pub fn from_i32(v: i32) -> Option<JobState> {
        JobState::ALL.iter().copied().find(|s| *s as i32 == v)
    }
    /// ACKNOWLEDGED and CANCELLED never leave and are read-only.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Acknowledged | JobState::Cancelled)
    }
    /// States in which the scheduler owns the job (it is waiting for, or holding, a transfer slot).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Connecting | JobState::Transferring
        )
    }
    /// States that end `bits_job_wait`: a transient error does not.
    pub fn ends_wait(self) -> bool {
        matches!(
            self,
            JobState::Transferred | JobState::Error | JobState::Acknowledged | JobState::Cancelled
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Connecting => "CONNECTING",
            JobState::Transferring => "TRANSFERRING",
            JobState::Suspended => "SUSPENDED",
            JobState::Error => "ERROR",
            JobState::TransientError => "TRANSIENT_ERROR",
            JobState::Transferred => "TRANSFERRED",
            JobState::Acknowledged => "ACKNOWLEDGED",
            JobState::Cancelled => "CANCELLED",
        }
    }
}

/// BG_JOB_TYPE.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobType {
    Download = 0,
    Upload = 1,
    UploadReply = 2,
}

impl JobType {
    pub fn from_i32(v: i32) -> Option<JobType> {
        [JobType::Download, JobType::Upload, JobType::UploadReply]
            .into_iter()
            .find(|t| *t as i32 == v)
    }
}

/// BG_JOB_PRIORITY. NORMAL is the default.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Foreground = 0,
    High = 1,
    Normal = 2,
    Low = 3,
}

impl Priority {
    pub fn from_i32(v: i32) -> Option<Priority> {
        [
            Priority::Foreground,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ]
        .into_iter()
        .find(|p| *p as i32 == v)
    }
}

/// BG_ERROR_CONTEXT.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorContext {
    None = 0,
    Unknown = 1,
    GeneralQueueManager = 2,
    QueueManagerNotification = 3,
    LocalFile = 4,
    RemoteFile = 5,
    GeneralTransport = 6,
    RemoteApplication = 7,
    ServerCertificateCallback = 8,
}

impl ErrorContext {
    pub fn from_i32(v: i32) -> Option<ErrorContext> {
        use ErrorContext::*;
        [
            None,
            Unknown,
            GeneralQueueManager,
            QueueManagerNotification,
            LocalFile,
            RemoteFile,
            GeneralTransport,
            RemoteApplication,
            ServerCertificateCallback,
        ]
        .into_iter()
        .find(|c| *c as i32 == v)
    }

    /// The text of an error context (IBackgroundCopyError::GetErrorContextDescription): BITS keeps
    /// these as the BG_E_ERROR_CONTEXT_* codes' texts.
    pub fn description(self) -> String {
        use ErrorContext::*;
        let code = match self {
            None => hr::S_ERROR_CONTEXT_NONE,
            Unknown => hr::E_ERROR_CONTEXT_UNKNOWN,
            GeneralQueueManager => hr::E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER,
            QueueManagerNotification => hr::E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION,
            LocalFile => hr::E_ERROR_CONTEXT_LOCAL_FILE,
            RemoteFile => hr::E_ERROR_CONTEXT_REMOTE_FILE,
            GeneralTransport => hr::E_ERROR_CONTEXT_GENERAL_TRANSPORT,
            RemoteApplication => hr::E_ERROR_CONTEXT_REMOTE_APPLICATION,
            ServerCertificateCallback => hr::E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK,
        };
        code.description()
    }
}

/// Why a rule refused: the HRESULT plus a sentence for `bits_last_error_message`.
pub type Refusal = (HResult, String);

fn invalid_state(action: &str, state: JobState) -> Refusal {
    (
        hr::E_INVALID_STATE,
        format!("cannot {action} a job in state {}", state.name()),
    )
}

/// Rule for any call that changes a job (properties, add file): refused only in final states.
pub fn modify(state: JobState, action: &str) -> Result<(), Refusal> {
    if state.is_final() {
        return Err(invalid_state(action, state));
    }
    Ok(())
}

/// Resume: SUSPENDED / ERROR / TRANSIENT_ERROR → QUEUED; active states unchanged; TRANSFERRED with
/// files still to transfer (added after the transfer) → QUEUED, else unchanged.
pub fn resume(
    state: JobState,
    file_count: usize,
    all_files_done: bool,
) -> Result<JobState, Refusal> {
    if state.is_final() {
        return Err(invalid_state("resume", state));
    }
    if file_count == 0 {
        return Err((hr::E_EMPTY, "cannot resume a job that has no files".into()));
    }
    Ok(match state {
        JobState::Suspended | JobState::Error | JobState::TransientError => JobState::Queued,
        JobState::Transferred if !all_files_done => JobState::Queued,
        s => s,
    })
}

/// Suspend: any non-final state → SUSPENDED.
pub fn suspend(state: JobState) -> Result<JobState, Refusal> {
    if state.is_final() {
        return Err(invalid_state("suspend", state));
    }
    Ok(JobState::Suspended)
}

/// Cancel: any non-final state → CANCELLED.
pub fn cancel(state: JobState) -> Result<JobState, Refusal> {
    if state.is_final() {
        return Err(invalid_state("cancel", state));
    }
    Ok(JobState::Cancelled)
}

/// Complete (download): any non-final state → ACKNOWLEDGED. The result code is S_OK when every file
/// was transferred, BITS_S_PARTIAL_COMPLETE when incomplete ones were dropped.
pub fn complete(state: JobState, all_files_done: bool) -> Result<(JobState, HResult), Refusal> {
    if state.is_final() {
        return Err(invalid_state("complete", state));
    }
    Ok((
        JobState::Acknowledged,
        if all_files_done {
            hr::S_OK
        } else {
            hr::S_PARTIAL_COMPLETE
        },
    ))
}

/// Reopen after a restart or crash: jobs that were queued, transferring or waiting to retry come
/// back QUEUED and continue; a TRANSFERRED job whose files did not all survive transfers again;
/// everything else stays as it was.
pub fn reopen(state: JobState, all_files_done: bool) -> JobState {
    match state {
        JobState::Queued
        | JobState::Connecting
        | JobState::Transferring
        | JobState::TransientError => JobState::Queued,
        JobState::Transferred if !all_files_done => JobState::Queued,
        s => s,
    }
}

/// Events the transfer engine reports. `None` means the event does not apply in this state (a
/// stale report from a transfer that was stopped) and must be ignored.
pub mod engine {
    use super::JobState;

    /// The scheduler gave the job a transfer slot (an active job whose task ended restarts too).
    pub fn start(state: JobState) -> Option<JobState> {
        state.is_active().then_some(JobState::Connecting)
    }
    /// The scheduler took the job's slot (a higher priority, or the end of its time slice).
    pub fn preempted(state: JobState) -> Option<JobState> {
        state.is_active().then_some(JobState::Queued)
    }
    /// The first response bytes arrived.
    pub fn receiving(state: JobState) -> Option<JobState> {
        matches!(state, JobState::Connecting | JobState::Transferring)
            .then_some(JobState::Transferring)
    }
    /// Every file of the job is transferred.
    pub fn all_done(state: JobState) -> Option<JobState> {
        state.is_active().then_some(JobState::Transferred)
    }
    /// A recoverable failure: retried after the minimum retry delay, unless the job has made no
    /// progress for longer than its no-progress timeout, which makes it fatal.
    pub fn transient_failure(state: JobState, no_progress_expired: bool) -> Option<JobState> {
        state.is_active().then_some(if no_progress_expired {
            JobState::Error
        } else {
            JobState::TransientError
        })
    }
    /// An unrecoverable failure.
    pub fn fatal_failure(state: JobState) -> Option<JobState> {
        state.is_active().then_some(JobState::Error)
    }
    /// The retry delay of a TRANSIENT_ERROR job elapsed.
    pub fn retry_due(state: JobState) -> Option<JobState> {
        (state == JobState::TransientError).then_some(JobState::Queued)
    }
    /// A TRANSIENT_ERROR job passed its no-progress timeout while waiting to retry.
    pub fn no_progress_timeout(state: JobState) -> Option<JobState> {
        (state == JobState::TransientError).then_some(JobState::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn values_match_bits() {
        assert_eq!(Queued as i32, 0);
        assert_eq!(Cancelled as i32, 8);
        for s in JobState::ALL {
            assert_eq!(JobState::from_i32(s as i32), Some(s));
        }
        assert_eq!(JobState::from_i32(9), None);
        assert_eq!(JobType::from_i32(2), Some(JobType::UploadReply));
        assert_eq!(JobType::from_i32(3), None);
        assert_eq!(JobType::from_i32(-1), None);
        assert_eq!(Priority::from_i32(2), Some(Priority::Normal));
        assert_eq!(Priority::from_i32(4), None);
        assert_eq!(
            ErrorContext::from_i32(8),
            Some(ErrorContext::ServerCertificateCallback)
        );
    }

    #[test]
    fn resume_rules() {
        assert_eq!(resume(Suspended, 0, false).unwrap_err().0, hr::E_EMPTY);
        for s in [Acknowledged, Cancelled] {
            assert_eq!(resume(s, 1, true).unwrap_err().0, hr::E_INVALID_STATE);
        }
        for s in [Suspended, Error, TransientError] {
            assert_eq!(resume(s, 1, false).unwrap(), Queued);
        }
        for s in [Queued, Connecting, Transferring] {
            assert_eq!(resume(s, 1, false).unwrap(), s);
        }
        assert_eq!(resume(Transferred, 2, false).unwrap(), Queued);
        assert_eq!(resume(Transferred, 2, true).unwrap(), Transferred);
    }

    #[test]
    fn suspend_cancel_complete_rules() {
        for s in JobState::ALL {
            if s.is_final() {
                assert_eq!(suspend(s).unwrap_err().0, hr::E_INVALID_STATE);
                assert_eq!(cancel(s).unwrap_err().0, hr::E_INVALID_STATE);
                assert_eq!(complete(s, true).unwrap_err().0, hr::E_INVALID_STATE);
                assert_eq!(modify(s, "x").unwrap_err().0, hr::E_INVALID_STATE);
            } else {
                assert_eq!(suspend(s).unwrap(), Suspended);
                assert_eq!(cancel(s).unwrap(), Cancelled);
                assert_eq!(complete(s, true).unwrap(), (Acknowledged, hr::S_OK));
                assert_eq!(
                    complete(s, false).unwrap(),
                    (Acknowledged, hr::S_PARTIAL_COMPLETE)
                );
                assert!(modify(s, "x").is_ok());
            }
        }
    }

    #[test]
    fn reopen_rules() {
        for s in [Queued, Connecting, Transferring, TransientError] {
            assert_eq!(reopen(s, false), Queued);
        }
        for s in [Suspended, Error, Acknowledged, Cancelled] {
            assert_eq!(reopen(s, false), s);
        }
        assert_eq!(reopen(Transferred, true), Transferred);
        assert_eq!(reopen(Transferred, false), Queued);
    }

    #[test]
    fn engine_rules() {
        assert_eq!(engine::start(Queued), Some(Connecting));
        assert_eq!(engine::start(Suspended), None);
        assert_eq!(engine::receiving(Connecting), Some(Transferring));
        assert_eq!(engine::receiving(Suspended), None);
        assert_eq!(engine::all_done(Transferring), Some(Transferred));
        assert_eq!(engine::all_done(Cancelled), None);
        assert_eq!(
            engine::transient_failure(Transferring, false),
            Some(TransientError)
        );
        assert_eq!(engine::transient_failure(Connecting, true), Some(Error));
        assert_eq!(engine::transient_failure(Suspended, false), None);
        assert_eq!(engine::fatal_failure(Connecting), Some(Error));
        assert_eq!(engine::fatal_failure(Acknowledged), None);
        assert_eq!(engine::retry_due(TransientError), Some(Queued));
        assert_eq!(engine::retry_due(Error), None);
        assert_eq!(engine::no_progress_timeout(TransientError), Some(Error));
        for s in JobState::ALL {
            assert_eq!(
                s.ends_wait(),
                matches!(s, Transferred | Error | Acknowledged | Cancelled)
            );
        }
    }
}
