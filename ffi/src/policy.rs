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
use openbits_core::{BandwidthSchedule, Error, Window};

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
/// BITS_COST_STATE_RESERVED: BITS reserves this bit; a transfer policy carrying it is refused
/// (BITS_E_INVALIDARG), as is every bit outside 0x800000FF.
pub const BITS_COST_STATE_RESERVED: u32 = 0x4000_0000;
/// BITS_JOB_TRANSFER_POLICY_*: BITS's named policies (ALWAYS is the default).
pub const BITS_JOB_TRANSFER_POLICY_ALWAYS: u32 = 0x8000_00FF;
pub const BITS_JOB_TRANSFER_POLICY_NOT_ROAMING: u32 = 0x8000_007F;
pub const BITS_JOB_TRANSFER_POLICY_NO_SURCHARGE: u32 = 0x8000_006F;
pub const BITS_JOB_TRANSFER_POLICY_STANDARD: u32 = 0x8000_0067;
pub const BITS_JOB_TRANSFER_POLICY_UNRESTRICTED: u32 = 0x8000_0021;
/// BITS_COST_STATE_TRANSFER_*: bits.h's names for the same masks as the
/// BITS_JOB_TRANSFER_POLICY_* values (both spellings are in BITS's headers).
pub const BITS_COST_STATE_TRANSFER_ALWAYS: u32 = 0x8000_00FF;
pub const BITS_COST_STATE_TRANSFER_NOT_ROAMING: u32 = 0x8000_007F;
pub const BITS_COST_STATE_TRANSFER_NO_SURCHARGE: u32 = 0x8000_006F;
pub const BITS_COST_STATE_TRANSFER_STANDARD: u32 = 0x8000_0067;
pub const BITS_COST_STATE_TRANSFER_UNRESTRICTED: u32 = 0x8000_0021;

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

/// Tells the manager what the network costs now: one BITS_COST_STATE_* value, or 0 to follow
/// the system again. Jobs whose transfer policy excludes the cost stop and wait (see
/// `bits_job_set_transfer_policy`); jobs waiting for a cost they allow start again at once.
///
/// Where the cost comes from, first that applies:
/// 1. the value the application set last (not 0): an explicit choice outranks the system's,
///    which only guesses (the user may know the hotspot is free, or want a cable treated as
///    metered); it holds until the application sets another value or 0;
/// 2. on Linux, NetworkManager's `Metered` property, read from the system D-Bus (the bus
///    `DBUS_SYSTEM_BUS_ADDRESS` names, else the standard socket) when the manager opens and
///    followed through its PropertiesChanged signal: NM_METERED_YES and NM_METERED_GUESS_YES give
///    BITS_COST_STATE_CAPPED_USAGE_UNKNOWN (NetworkManager knows neither cap nor usage),
///    NM_METERED_NO and NM_METERED_GUESS_NO give BITS_COST_STATE_UNRESTRICTED, and
///    NM_METERED_UNKNOWN says nothing (the next rule applies). NetworkManager starting later or
///    restarting is noticed; while it is stopped it says nothing;
/// 3. BITS_COST_STATE_UNRESTRICTED: with no system bus, no NetworkManager on it, and on other
///    systems, openbits reads no system cost at all and this is what a job sees unless the
///    application says otherwise.
///
/// The manager does not keep the application's value (it describes the network, not the queue):
/// a new manager starts at rule 2.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (neither 0 nor exactly one of the eight
/// cost states); BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_set_network_cost(
    manager: *mut bits_manager,
    cost_state: u32,
) -> bits_hresult {
    call("bits_manager_set_network_cost", || {
        arg(manager, "manager")?
            .inner
            .set_network_cost(cost_state)?;
        Ok(hr::S_OK)
    })
}

/// The network cost the manager works with (one BITS_COST_STATE_* value, chosen as
/// `bits_manager_set_network_cost` describes) into `*out_cost_state` (written 0 on failure).
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

/// A schedule limit: no background transfer at all (BITS's MaxInternetBandwidth of 0). The
/// background jobs of that priority wait in TRANSIENT_ERROR with BITS_E_BLOCKED_BY_POLICY until
/// the schedule allows them again.
pub const BITS_BANDWIDTH_BLOCKED: u64 = u64::MAX;

/// BITS's bandwidth schedule (Group Policy's EnableBandwidthLimits and EnableMaintenanceLimits),
/// for background jobs: a limit per background priority inside the work hours and another outside
/// them, and an optional maintenance window whose limits override both. Times are the machine's
/// local time (its time zone, daylight saving time included).
///
/// Limits are in bytes per second, indexed HIGH 0, NORMAL 1, LOW 2; 0 is no limit and
/// BITS_BANDWIDTH_BLOCKED is no transfer. The jobs of one priority share their limit, and all
/// background jobs share the manager's own (`bits_manager_set_max_bandwidth`) besides; FOREGROUND
/// jobs are exempt. A window is the minutes [start, end) of the days in its mask; an end before
/// the start runs past midnight into the next day, an end equal to the start is the whole day.
///
/// Size-prefixed like `bits_manager_options`: set `struct_size` to sizeof(bits_bandwidth_schedule);
/// the struct grows at its end.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct bits_bandwidth_schedule {
    pub struct_size: u32,
    /// Days the work hours start on: bit 0 Sunday ... bit 6 Saturday.
    pub work_days: u32,
    /// Minutes after local midnight, 0-1439.
    pub work_start_minute: u32,
    pub work_end_minute: u32,
    pub work_limits: [u64; 3],
    /// Limits outside the work hours.
    pub other_limits: [u64; 3],
    /// Non-zero: the maintenance window below is in force.
    pub maintenance_enabled: u32,
    pub maintenance_days: u32,
    pub maintenance_start_minute: u32,
    pub maintenance_end_minute: u32,
    pub maintenance_limits: [u64; 3],
}

fn window(days: u32, start: u32, end: u32, limits: [u64; 3]) -> Result<Window, Error> {
    let narrow = |v: u32, what: &str| {
        u16::try_from(v)
            .map_err(|_| Error::new(hr::E_INVALIDARG, format!("{what} {v} is out of range")))
    };
    Ok(Window {
        days: u8::try_from(days)
            .map_err(|_| Error::new(hr::E_INVALIDARG, format!("days {days:#x}: bits 0-6 only")))?,
        start_minute: narrow(start, "start minute")?,
        end_minute: narrow(end, "end minute")?,
        limits,
    })
}

/// Sets the bandwidth schedule (`schedule` NULL: none, the default: no limit by time). Kept in the
/// state folder. Takes effect at once, on transfers in flight too (within a quarter of a second),
/// and at every change of window while the manager is open. `schedule` is borrowed for the call.
///
/// Thread: any. Blocks for one database write.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (struct_size too small, a day mask beyond
/// bit 6, a minute beyond 1439); BITS_E_INVALID_STATE (manager closed); a disk error.
#[no_mangle]
pub unsafe extern "C" fn bits_manager_set_bandwidth_schedule(
    manager: *mut bits_manager,
    schedule: *const bits_bandwidth_schedule,
) -> bits_hresult {
    call("bits_manager_set_bandwidth_schedule", || {
        let manager = arg(manager, "manager")?;
        let value = if schedule.is_null() {
            None
        } else {
            let size = schedule.cast::<u32>().read_unaligned() as usize;
            let needed = std::mem::size_of::<bits_bandwidth_schedule>();
            if size < needed {
                return Err(Error::new(
                    hr::E_INVALIDARG,
                    format!("schedule.struct_size is {size}; {needed} is needed"),
                ));
            }
            let s = schedule.read_unaligned();
            Some(BandwidthSchedule {
                work: window(
                    s.work_days,
                    s.work_start_minute,
                    s.work_end_minute,
                    s.work_limits,
                )?,
                other_limits: s.other_limits,
                maintenance: if s.maintenance_enabled != 0 {
                    Some(window(
                        s.maintenance_days,
                        s.maintenance_start_minute,
                        s.maintenance_end_minute,
                        s.maintenance_limits,
                    )?)
                } else {
                    None
                },
            })
        };
        manager.inner.set_bandwidth_schedule(value)?;
        Ok(hr::S_OK)
    })
}

/// Reads the bandwidth schedule into `*out_schedule`, whose `struct_size` the caller sets (the
/// library writes at most that many bytes and leaves `struct_size` as it was). With no schedule
/// set: BITS_S_FALSE and every other field 0.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_S_FALSE (no schedule); BITS_E_POINTER; BITS_E_INVALIDARG
/// (struct_size below 4).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_get_bandwidth_schedule(
    manager: *mut bits_manager,
    out_schedule: *mut bits_bandwidth_schedule,
) -> bits_hresult {
    call("bits_manager_get_bandwidth_schedule", || {
        if out_schedule.is_null() {
            return Err(crate::boundary::null("out_schedule"));
        }
        let size = out_schedule.cast::<u32>().read_unaligned() as usize;
        if size < 4 {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("out_schedule->struct_size is {size}"),
            ));
        }
        let size = size.min(std::mem::size_of::<bits_bandwidth_schedule>());
        let mut s = bits_bandwidth_schedule {
            struct_size: size as u32,
            ..Default::default()
        };
        let current = arg(manager, "manager")?.inner.bandwidth_schedule();
        if let Some(c) = &current {
            s.work_days = c.work.days.into();
            s.work_start_minute = c.work.start_minute.into();
            s.work_end_minute = c.work.end_minute.into();
            s.work_limits = c.work.limits;
            s.other_limits = c.other_limits;
            if let Some(m) = &c.maintenance {
                s.maintenance_enabled = 1;
                s.maintenance_days = m.days.into();
                s.maintenance_start_minute = m.start_minute.into();
                s.maintenance_end_minute = m.end_minute.into();
                s.maintenance_limits = m.limits;
            }
        }
        // Only the bytes the caller's struct has; its struct_size stays its own.
        std::ptr::copy_nonoverlapping(
            (&s as *const bits_bandwidth_schedule).cast::<u8>().add(4),
            out_schedule.cast::<u8>().add(4),
            size - 4,
        );
        Ok(if current.is_some() {
            hr::S_OK
        } else {
            hr::S_FALSE
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_cores() {
        let pairs = [
            (BITS_COST_STATE_UNRESTRICTED, job::COST_STATE_UNRESTRICTED),
            (
                BITS_COST_STATE_CAPPED_USAGE_UNKNOWN,
                job::COST_STATE_CAPPED_USAGE_UNKNOWN,
            ),
            (BITS_COST_STATE_BELOW_CAP, job::COST_STATE_BELOW_CAP),
            (BITS_COST_STATE_NEAR_CAP, job::COST_STATE_NEAR_CAP),
            (
                BITS_COST_STATE_OVERCAP_CHARGED,
                job::COST_STATE_OVERCAP_CHARGED,
            ),
            (
                BITS_COST_STATE_OVERCAP_THROTTLED,
                job::COST_STATE_OVERCAP_THROTTLED,
            ),
            (BITS_COST_STATE_USAGE_BASED, job::COST_STATE_USAGE_BASED),
            (BITS_COST_STATE_ROAMING, job::COST_STATE_ROAMING),
            (
                BITS_COST_OPTION_IGNORE_CONGESTION,
                job::COST_OPTION_IGNORE_CONGESTION,
            ),
            (BITS_JOB_TRANSFER_POLICY_ALWAYS, job::TRANSFER_POLICY_ALWAYS),
            (
                BITS_JOB_TRANSFER_POLICY_NOT_ROAMING,
                job::TRANSFER_POLICY_NOT_ROAMING,
            ),
            (
                BITS_JOB_TRANSFER_POLICY_NO_SURCHARGE,
                job::TRANSFER_POLICY_NO_SURCHARGE,
            ),
            (
                BITS_JOB_TRANSFER_POLICY_STANDARD,
                job::TRANSFER_POLICY_STANDARD,
            ),
            (
                BITS_JOB_TRANSFER_POLICY_UNRESTRICTED,
                job::TRANSFER_POLICY_UNRESTRICTED,
            ),
        ];
        for (c, core) in pairs {
            assert_eq!(c, core);
        }
    }

    #[test]
    fn reserved_bit_and_transfer_aliases_have_bits_values() {
        // bits-api.md §2.3: RESERVED, and the TRANSFER_* masks as the ORs bits-cost-state.md lists.
        use super::{
            BITS_COST_STATE_BELOW_CAP as BELOW, BITS_COST_STATE_CAPPED_USAGE_UNKNOWN as CAPPED,
            BITS_COST_STATE_NEAR_CAP as NEAR, BITS_COST_STATE_OVERCAP_CHARGED as CHARGED,
            BITS_COST_STATE_OVERCAP_THROTTLED as THROTTLED, BITS_COST_STATE_ROAMING as ROAMING,
            BITS_COST_STATE_UNRESTRICTED as FREE, BITS_COST_STATE_USAGE_BASED as USAGE,
        };
        let ignore = BITS_COST_OPTION_IGNORE_CONGESTION;
        assert_eq!(BITS_COST_STATE_RESERVED, 0x4000_0000);
        let cases = [
            (BITS_COST_STATE_TRANSFER_ALWAYS, 0x8000_00FF),
            (BITS_COST_STATE_TRANSFER_NOT_ROAMING, 0x8000_007F),
            (BITS_COST_STATE_TRANSFER_NO_SURCHARGE, 0x8000_006F),
            (BITS_COST_STATE_TRANSFER_STANDARD, 0x8000_0067),
            (BITS_COST_STATE_TRANSFER_UNRESTRICTED, 0x8000_0021),
        ];
        for (c, v) in cases {
            assert_eq!(c, v);
        }
        let all = FREE | CAPPED | BELOW | NEAR | CHARGED | THROTTLED | USAGE | ROAMING;
        assert_eq!(BITS_COST_STATE_TRANSFER_ALWAYS, ignore | all);
        assert_eq!(
            BITS_COST_STATE_TRANSFER_NOT_ROAMING,
            ignore | (all & !ROAMING)
        );
        assert_eq!(
            BITS_COST_STATE_TRANSFER_NO_SURCHARGE,
            ignore | (all & !ROAMING & !CHARGED)
        );
        assert_eq!(
            BITS_COST_STATE_TRANSFER_STANDARD,
            ignore | FREE | CAPPED | BELOW | THROTTLED | USAGE
        );
        assert_eq!(
            BITS_COST_STATE_TRANSFER_UNRESTRICTED,
            ignore | FREE | THROTTLED
        );
        // The reserved bit is no cost a policy may name.
        assert_eq!(all & BITS_COST_STATE_RESERVED, 0);
    }
}
