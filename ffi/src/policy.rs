//! Background manners: rate limits (the manager's, for background jobs together; a job's own)
//! and network cost (the job's transfer policy, the network's cost as the application says).
//!
//! How they combine with priorities: a FOREGROUND job ignores the manager's limit (as in BITS) but
//! not its own; a background job is bound by both. Time slices and priorities decide which jobs
//! transfer; the limits decide how fast. The cost policy applies to every job, foreground or not.

use crate::boundary::{arg, call, out};
use crate::types::{bits_hresult, bits_job, bits_manager};
use openbits_core::hresult as hr;
use openbits_core::job;

// Literal values, so cbindgen writes them into the header; the test below ties them to core's.

/// BITS_COST_STATE_*: the network's cost (give one to `bits_manager_set_network_cost`) and the
/// bits of a job's transfer policy.
pub const BITS_COST_STATE_UNRESTRICTED: u32 = 0x1;
pub const BITS_COST_STATE_CAPPED_USAGE_UNKNOWN: u32 = 0x2;
pub const BITS_COST_STATE_BELOW_CAP: u32 = 0x4;
pub const BITS_COST_STATE_NEAR_CAP: u32 = 0x8;
pub const BITS_COST_STATE_OVERCAP_CHARGED: u32 = 0x10;
pub const BITS_COST_STATE_OVERCAP_THROTTLED: u32 = 0x20;
pub const BITS_COST_STATE_USAGE_BASED: u32 = 0x40;
pub const BITS_COST_STATE_ROAMING: u32 = 0x80;
/// BITS_COST_OPTION_IGNORE_CONGESTION (accepted in a policy; openbits does not measure congestion).
pub const BITS_COST_OPTION_IGNORE_CONGESTION: u32 = 0x8000_0000;
/// BITS_JOB_TRANSFER_POLICY_*: BITS's named policies (ALWAYS is the default).
pub const BITS_JOB_TRANSFER_POLICY_ALWAYS: u32 = 0x8000_00FF;
pub const BITS_JOB_TRANSFER_POLICY_NOT_ROAMING: u32 = 0x8000_007F;
pub const BITS_JOB_TRANSFER_POLICY_NO_SURCHARGE: u32 = 0x8000_006F;
pub const BITS_JOB_TRANSFER_POLICY_STANDARD: u32 = 0x8000_0067;
pub const BITS_JOB_TRANSFER_POLICY_UNRESTRICTED: u32 = 0x8000_0021;

/// Sets the manager-wide rate limit for background jobs together (BITS's MaxInternetBandwidth,
/// in bytes per second; 0: none, the default). FOREGROUND jobs are exempt. Kept in the state
/// folder, so a manager opened later on the same folder has it too. Transfers in flight follow a
/// change within a quarter of a second. The average rate over any 5 s stays within 5% of the
/// limit; no burst exceeds one second's worth.
///
/// Thread: any. Blocks for one database write.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (manager closed); a disk error (the
/// limit is then unchanged).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_set_max_bandwidth(
    manager: *mut bits_manager,
    bytes_per_second: u64,
) -> bits_hresult {
    call("bits_manager_set_max_bandwidth", || {
        arg(manager, "manager")?
            .inner
            .set_max_bandwidth(bytes_per_second)?;
        Ok(hr::S_OK)
    })
}

/// The manager-wide rate limit in bytes per second (0: none) into `*out_bytes_per_second`
/// (written 0 on failure).
///
/// Thread: any. Does not block. Returns BITS_S_OK, BITS_E_POINTER.
#[no_mangle]
pub unsafe extern "C" fn bits_manager_get_max_bandwidth(
    manager: *mut bits_manager,
    out_bytes_per_second: *mut u64,
) -> bits_hresult {
    call("bits_manager_get_max_bandwidth", || {
        let out_value = out(out_bytes_per_second, "out_bytes_per_second")?;
        *out_value = arg(manager, "manager")?.inner.max_bandwidth();
        Ok(hr::S_OK)
    })
}

/// Sets the job's own rate limit in bytes per second (0: none, the default), beyond BITS: it
/// bounds this job whatever its priority, beside the manager's limit for background jobs.
/// Persisted with the job; a transfer in flight follows a change within a quarter of a second.
///
/// Thread: any. Blocks for one database write.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (final state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_max_bandwidth(
    job: *mut bits_job,
    bytes_per_second: u64,
) -> bits_hresult {
    call("bits_job_set_max_bandwidth", || {
        arg(job, "job")?.inner.set_max_bandwidth(bytes_per_second)?;
        Ok(hr::S_OK)
    })
}

/// The job's own rate limit in bytes per second (0: none) into `*out_bytes_per_second` (written
/// 0 on failure).
///
/// Thread: any. Does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE (manager
/// closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_max_bandwidth(
    job: *mut bits_job,
    out_bytes_per_second: *mut u64,
) -> bits_hresult {
    call("bits_job_get_max_bandwidth", || {
        let out_value = out(out_bytes_per_second, "out_bytes_per_second")?;
        *out_value = arg(job, "job")?.inner.record()?.extras().max_bandwidth;
        Ok(hr::S_OK)
    })
}

/// BITS_JOB_PROPERTY_ID_COST_FLAGS: the network costs the job may transfer on, as a mask of
/// BITS_COST_STATE_* bits (optionally with BITS_COST_OPTION_IGNORE_CONGESTION), or one of the
/// BITS_JOB_TRANSFER_POLICY_* values. The default is BITS_JOB_TRANSFER_POLICY_ALWAYS. When the
/// network's cost (`bits_manager_set_network_cost`) is not in the mask, the job waits in
/// TRANSIENT_ERROR with BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY (a transfer in flight stops) and
/// starts again as soon as the cost is one it allows; the wait counts neither as a retry nor
/// against the no-progress timeout. Persisted with the job.
///
/// Thread: any. Blocks for one database write.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (no cost bit, or a bit outside
/// 0x800000FF); BITS_E_INVALID_STATE (final state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_transfer_policy(
    job: *mut bits_job,
    cost_flags: u32,
) -> bits_hresult {
    call("bits_job_set_transfer_policy", || {
        arg(job, "job")?.inner.set_transfer_policy(cost_flags)?;
        Ok(hr::S_OK)
    })
}

/// The job's transfer policy (BITS_COST_STATE_* mask) into `*out_cost_flags` (written 0 on
/// failure).
///
/// Thread: any. Does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE (manager
/// closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_transfer_policy(
    job: *mut bits_job,
    out_cost_flags: *mut u32,
) -> bits_hresult {
    call("bits_job_get_transfer_policy", || {
        let out_value = out(out_cost_flags, "out_cost_flags")?;
        *out_value = arg(job, "job")?
            .inner
            .record()?
            .extras()
            .transfer_policy
            .unwrap_or(job::TRANSFER_POLICY_ALWAYS);
        Ok(hr::S_OK)
    })
}

/// Tells the manager what the network costs now: one BITS_COST_STATE_* value. The manager starts
/// from BITS_COST_STATE_UNRESTRICTED and does not keep the value (it describes the network, not
/// the queue). openbits does not watch the system's network cost itself (NetworkManager's
/// metered flag is not read): the application says when it changes. Jobs whose transfer policy
/// excludes the cost stop and wait (see `bits_job_set_transfer_policy`); jobs waiting for a cost
/// they allow start again at once.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (not exactly one of the eight cost
/// states); BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_set_network_cost(
    manager: *mut bits_manager,
    cost_state: u32,
) -> bits_hresult {
    call("bits_manager_set_network_cost", || {
        arg(manager, "manager")?.inner.set_network_cost(cost_state)?;
        Ok(hr::S_OK)
    })
}

/// The network cost the manager works with (one BITS_COST_STATE_* value) into `*out_cost_state`
/// (written 0 on failure).
///
/// Thread: any. Does not block. Returns BITS_S_OK, BITS_E_POINTER.
#[no_mangle]
pub unsafe extern "C" fn bits_manager_get_network_cost(
    manager: *mut bits_manager,
    out_cost_state: *mut u32,
) -> bits_hresult {
    call("bits_manager_get_network_cost", || {
        let out_value = out(out_cost_state, "out_cost_state")?;
        *out_value = arg(manager, "manager")?.inner.network_cost();
        Ok(hr::S_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_cores() {
        let pairs = [
            (BITS_COST_STATE_UNRESTRICTED, job::COST_STATE_UNRESTRICTED),
            (BITS_COST_STATE_CAPPED_USAGE_UNKNOWN, job::COST_STATE_CAPPED_USAGE_UNKNOWN),
            (BITS_COST_STATE_BELOW_CAP, job::COST_STATE_BELOW_CAP),
            (BITS_COST_STATE_NEAR_CAP, job::COST_STATE_NEAR_CAP),
            (BITS_COST_STATE_OVERCAP_CHARGED, job::COST_STATE_OVERCAP_CHARGED),
            (BITS_COST_STATE_OVERCAP_THROTTLED, job::COST_STATE_OVERCAP_THROTTLED),
            (BITS_COST_STATE_USAGE_BASED, job::COST_STATE_USAGE_BASED),
            (BITS_COST_STATE_ROAMING, job::COST_STATE_ROAMING),
            (BITS_COST_OPTION_IGNORE_CONGESTION, job::COST_OPTION_IGNORE_CONGESTION),
            (BITS_JOB_TRANSFER_POLICY_ALWAYS, job::TRANSFER_POLICY_ALWAYS),
            (BITS_JOB_TRANSFER_POLICY_NOT_ROAMING, job::TRANSFER_POLICY_NOT_ROAMING),
            (BITS_JOB_TRANSFER_POLICY_NO_SURCHARGE, job::TRANSFER_POLICY_NO_SURCHARGE),
            (BITS_JOB_TRANSFER_POLICY_STANDARD, job::TRANSFER_POLICY_STANDARD),
            (BITS_JOB_TRANSFER_POLICY_UNRESTRICTED, job::TRANSFER_POLICY_UNRESTRICTED),
        ];
        for (c, core) in pairs {
            assert_eq!(c, core);
        }
    }
}
