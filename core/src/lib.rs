//! openbits-core: the BITS job model on tokio and hyper. It knows nothing about C; `openbits-ffi`
//! wraps it.
//!
//! The layering rule: a module may use only its own layer or a lower one; inside a folder,
//! children may use what the folder's `mod.rs` defines. Nothing uses `manager`; this file (the
//! re-exports) is the only one above it. `tests/layers.rs` checks the rule on the source text.
//!
//! Layer 0, data and rules:
//! - `error`: `Error` (an HRESULT and a sentence) and `Result`.
//! - `config`: `Config`, the manager's settings.
//! - `hresult`: BITS's codes, their texts, and the errno mapping (uses nothing in core).
//! - `job`: the job and file records (`JobRecord`, `FileRecord`, `FileRange`, `JobError`), limits.
//! - `state`: the job state machine (every rule that changes a job's state), error contexts.
//!
//! Layer 1, adapters (one outside thing each):
//! - `store`: where job records are kept (`store::sqlite`: the durable store).
//! - `localfile`: temporary files, positioned writes, atomic commit.
//! - `http_options`: custom headers, credentials, redirect and proxy settings: validation.
//! - `network`: whether the machine has a network, and a netlink watcher of changes.
//! - `metered`: NetworkManager's metered flag over the system D-Bus, as a BITS cost state.
//! - `tls`: a job's TLS settings, the rustls configuration and certificate verifier built from
//!   them, and BITS's codes for certificate failures.
//!
//! Layer 2, the kernel:
//! - `queue`: `Shared` (the state everything below the API shares: field owners and the lock
//!   order are documented there), `JobCell`/`JobSlot`, `publish`/`emit`; `queue::events` (the
//!   event queue and the callback thread), `queue::checkpoint` (batched durable progress),
//!   `queue::cmdline` (the notification command line).
//! - `policy`: the limits `Shared` and running tasks hold and the engines consult
//!   (`policy::bandwidth`: token buckets).
//!
//! Layer 3, engines (scheduler -> transfer, settle; never the other way):
//! - `scheduler`: who transfers when (`scheduler::plan`: the pure slot rules).
//! - `transfer`: one task per active job; `transfer::file` (one file: progress, flushes,
//!   checkpoints), `transfer::download` (the HTTP download loops), `transfer::http` (requests,
//!   decisions, connection pools), `transfer::local` (file:// sources).
//! - `settle`: complete and cancel (intent, files, retire), and what reopening repairs.
//!
//! Layer 4, the public API:
//! - `manager`: `Manager`, `Job` (`manager::job`), and the argument checks (`manager::validate`).
//! - `manager::fuzzing` (re-exported as `fuzzing`, hidden; not an API): the parsers and decisions
//!   the fuzz targets reach, a door beside the public API at its layer.

mod config;
mod error;
#[doc(hidden)]
pub use manager::fuzzing;
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
mod metered;
mod network;
mod policy;
mod queue;
mod scheduler;
mod settle;
pub mod state;
pub mod store;
pub mod tls;
mod transfer;

pub use config::{BandwidthSchedule, Config, LocalTime, Window, BANDWIDTH_BLOCKED};
pub use error::{Error, Result};
pub use events::{Event, EventKind};
pub use hresult::HResult;
pub use job::{FileRecord, JobError, JobId, JobRecord, Progress, SIZE_UNKNOWN};
pub use manager::{Events, Job, Manager, ServerCertificateCheck};
pub use state::{ErrorContext, JobState, JobType, Priority};
