//! openbits-core: the BITS job model on tokio and hyper. It knows nothing about C; `openbits-ffi`
//! wraps it.
//!
//! Where things are:
//! - `state`: the job state machine (every rule that changes a job's state).
//! - `manager`: the manager and job handles (the API the C boundary calls).
//! - `scheduler`: who transfers when.
//! - `transfer`: the engine; `transfer::http` is the HTTP resume logic.
//! - `localfile`: temporary files, positioned writes, atomic commit.
//! - `settle`: the file side of complete and cancel, and what reopening repairs.
//! - `store`: where job records are kept (`store::sqlite`: the durable store).
//! - `checkpoint`: batched writes of durable progress.
//! - `events`: the event queue applications pull from.
//! - `hresult`: BITS's codes and the errno mapping.

mod config;
mod error;
pub mod events {
    //! The event types (`queue/events.rs`) and the callback type (`manager`), at their
    //! historical path.
    pub use crate::manager::Callback;
    pub use crate::queue::events::*;
}
pub mod hresult;
pub mod http_options;
pub mod job;
mod localfile;
pub mod manager;
mod queue;
mod scheduler;
mod settle;
pub mod state;
pub mod store;
mod transfer;

pub use config::Config;
pub use error::{Error, Result};
pub use events::{Event, EventKind};
pub use hresult::HResult;
pub use job::{FileRecord, JobError, JobId, JobRecord, Progress, SIZE_UNKNOWN};
pub use manager::{Events, Job, Manager};
pub use state::{ErrorContext, JobState, JobType, Priority};
