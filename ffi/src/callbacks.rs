//! Push notifications (IBackgroundCopyJob::SetNotifyInterface / SetNotifyFlags): a C function
//! called on the manager's notification thread.

use crate::boundary::{arg, call};
use crate::types::{bits_event, bits_hresult, bits_job};
use openbits_core::hresult as hr;
use openbits_core::{Event, Job};
use std::ffi::c_void;
use std::sync::Arc;

/// A notification callback. `job` is a borrowed reference valid for the call only (call
/// `bits_get_job` to keep one; do not release it); `event` is borrowed likewise. It runs on the
/// manager's notification thread, never while the library holds a lock: it may call any function,
/// including `bits_complete`, `bits_cancel` or `bits_job_release` of the same job (even
/// `bits_manager_close`, which then does not wait for the notification thread). It must not unwind
/// (no C++ exception, no longjmp) out of the call.
#[allow(non_camel_case_types)]
pub type bits_notify_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, job: *mut bits_job, event: *const bits_event),
>;

/// Frees the `user_data` of a callback registration.
#[allow(non_camel_case_types)]
pub type bits_free_user_data = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The caller's function `C` and data; dropping it (once no call uses it) frees the data. Shared
/// by the callbacks that take `user_data` and `free_user_data`.
pub(crate) struct Registered<C> {
    pub(crate) callback: C,
    pub(crate) user_data: *mut c_void,
    pub(crate) free_user_data: bits_free_user_data,
}

// SAFETY: the caller promises (in the header) that the callback and free function may be called
// from the library's threads with this user data.
unsafe impl<C> Send for Registered<C> {}
unsafe impl<C> Sync for Registered<C> {}

impl<C> Drop for Registered<C> {
    fn drop(&mut self) {
        if let Some(free) = self.free_user_data {
            // SAFETY: the function and data the caller gave, called exactly once.
            unsafe { free(self.user_data) }
        }
    }
}

/// Registers `callback` for the job's events that `flags` selects (BITS_NOTIFY_JOB_TRANSFERRED,
/// _JOB_ERROR, _JOB_MODIFICATION, _FILE_TRANSFERRED; BITS_NOTIFY_DISABLE silences it); the flags
/// become the job's notify flags. NULL `callback` removes the registration.
///
/// As in BITS: the last registration wins; an event that already happened (the job is TRANSFERRED
/// or in ERROR) is delivered right after registration; MODIFICATION calls come at most once per
/// minimum notification interval (default 500 ms); registrations are not persisted (register again
/// after reopening). Events of a job arrive in order, on one thread per manager.
///
/// Ownership: `user_data` passes to the library in every call, failing ones included;
/// `free_user_data` (may be NULL) is called with it exactly once: at once if this call fails or
/// `callback` is NULL; otherwise when the registration is replaced or removed, when the last
/// reference to the job is released, or when the manager closes; always after the last call of
/// `callback` with it.
///
/// Thread: any; does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER (`job` NULL); BITS_E_NOTIMPL (undefined flags);
/// BITS_E_INVALID_STATE (final state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_notify_callback(
    job: *mut bits_job,
    flags: u32,
    callback: bits_notify_callback,
    user_data: *mut c_void,
    free_user_data: bits_free_user_data,
) -> bits_hresult {
    // Owned from here on: every return path drops it (freeing the data) unless it is registered.
    let registered = Arc::new(Registered {
        callback,
        user_data,
        free_user_data,
    });
    call("bits_job_set_notify_callback", move || {
        let job = arg(job, "job")?;
        let deliver = registered.callback.is_some().then(|| {
            let r = registered.clone();
            let f: openbits_core::events::Callback = Arc::new(move |job: &Job, event: &Event| {
                let Some(cb) = r.callback else { return };
                let mut handle = bits_job {
                    inner: job.borrowed(),
                };
                let e: bits_event = event.clone().into();
                // SAFETY: the caller's function with its own data; the handle and event outlive the call.
                unsafe { cb(r.user_data, &mut handle, &e) }
            });
            f
        });
        drop(registered);
        job.inner.set_notify_callback(flags, deliver)?;
        Ok(hr::S_OK)
    })
}
