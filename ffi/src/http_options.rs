//! HTTP options of a job (IBackgroundCopyJobHttpOptions, IBackgroundCopyJob2::SetCredentials).

use crate::boundary::{arg, call, out, owned_string, text};
use crate::types::{bits_hresult, bits_job};
use openbits_core::hresult as hr;
use std::ffi::c_char;

/// Sets extra request headers in BITS's form, `"Name: value\r\nName: value\r\n"` (UTF-8,
/// borrowed); NULL or "" removes them. Refused with BITS_E_INVALIDARG: a line that is not
/// `Name: value`, a CR or LF inside a line (it would split the request), and the headers openbits
/// sets itself (Host, Range, If-Range, Accept-Encoding, Content-Length, Transfer-Encoding,
/// Connection, Upgrade, TE, Trailer, Authorization, Proxy-Authorization). Persisted.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALIDARG,
/// BITS_E_INVALID_STATE (final state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_custom_headers(
    job: *mut bits_job,
    headers: *const c_char,
) -> bits_hresult {
    call("bits_job_set_custom_headers", || {
        let job = arg(job, "job")?;
        let headers = if headers.is_null() {
            None
        } else {
            Some(text(headers, "headers")?)
        };
        job.inner.set_custom_headers(headers)?;
        Ok(hr::S_OK)
    })
}

/// The custom headers as set: a new string freed with `bits_free_string`. Returns BITS_S_FALSE
/// and NULL when none are set, as Windows does.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_S_FALSE, BITS_E_POINTER,
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_custom_headers(
    job: *mut bits_job,
    out_headers: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_custom_headers", || {
        let out_headers = out(out_headers, "out_headers")?;
        match arg(job, "job")?.inner.record()?.custom_headers {
            Some(h) => {
                *out_headers = owned_string(&h);
                Ok(hr::S_OK)
            }
            None => Ok(hr::S_FALSE),
        }
    })
}

/// Sets the security flags: the redirect policy, one of BITS_HTTP_REDIRECT_POLICY_ALLOW_SILENT
/// (default: follow), _ALLOW_REPORT (follow, and the file's remote name becomes the final URL),
/// _DISALLOW (a redirect puts the job in ERROR with HRESULT_FROM_WIN32(status)), optionally ORed
/// with BITS_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP (otherwise an HTTPS to HTTP redirect is
/// refused). The certificate-relaxing BG_SSL_* flags are not supported: BITS_E_NOTIMPL. Persisted.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_NOTIMPL,
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_security_flags(
    job: *mut bits_job,
    flags: u32,
) -> bits_hresult {
    call("bits_job_set_security_flags", || {
        arg(job, "job")?.inner.set_security_flags(flags)?;
        Ok(hr::S_OK)
    })
}

/// The security flags (default 0). Thread: any; does not block. Returns BITS_S_OK,
/// BITS_E_POINTER, BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_security_flags(
    job: *mut bits_job,
    out_flags: *mut u32,
) -> bits_hresult {
    call("bits_job_get_security_flags", || {
        let out_flags = out(out_flags, "out_flags")?;
        *out_flags = arg(job, "job")?.inner.record()?.security_flags;
        Ok(hr::S_OK)
    })
}

/// Sets credentials (IBackgroundCopyJob2::SetCredentials) for `target` BITS_AUTH_TARGET_SERVER or
/// _PROXY with `scheme` BITS_AUTH_SCHEME_BASIC; the other BITS schemes (DIGEST, NTLM, NEGOTIATE,
/// PASSPORT) are not supported here. Server credentials are sent only to the origin (scheme, host,
/// port) of the file's URL, never to a host it redirects to. Strings are UTF-8, borrowed.
///
/// Credentials are kept in memory only and never written to the state folder: set them again
/// after the manager is reopened.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_AUTH_TARGET;
/// BITS_E_INVALID_AUTH_SCHEME; BITS_E_NOTIMPL (a scheme other than BASIC);
/// BITS_E_USERNAME_TOO_LARGE (> 300 characters); BITS_E_PASSWORD_TOO_LARGE (> 65,536);
/// BITS_E_INVALID_CREDENTIALS (a ':' in a Basic user name); BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_credentials(
    job: *mut bits_job,
    target: i32,
    scheme: i32,
    user_name: *const c_char,
    password: *const c_char,
) -> bits_hresult {
    call("bits_job_set_credentials", || {
        let job = arg(job, "job")?;
        job.inner.set_credentials(
            target,
            scheme,
            text(user_name, "user_name")?,
            text(password, "password")?,
        )?;
        Ok(hr::S_OK)
    })
}

/// Removes the credentials of `target` and `scheme` (IBackgroundCopyJob2::RemoveCredentials).
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_S_FALSE (none were set);
/// BITS_E_POINTER; BITS_E_INVALID_AUTH_TARGET; BITS_E_INVALID_AUTH_SCHEME; BITS_E_NOTIMPL;
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_remove_credentials(
    job: *mut bits_job,
    target: i32,
    scheme: i32,
) -> bits_hresult {
    call("bits_job_remove_credentials", || {
        arg(job, "job")?.inner.remove_credentials(target, scheme)
    })
}
