//! HTTP options of a job (IBackgroundCopyJobHttpOptions, IBackgroundCopyJob2::SetCredentials).

use crate::boundary::{arg, call, out, owned_string, text};
use crate::types::{bits_hresult, bits_job};
use openbits_core::hresult as hr;
use std::ffi::c_char;

/// Sets extra request headers in BITS's form, `"Name: value\r\nName: value\r\n"` (UTF-8,
/// borrowed); NULL or "" removes them. Refused with BITS_E_INVALIDARG: a line that is not
/// `Name: value`, a CR or LF inside a line (it would split the request), and the headers openbits
/// sets itself (Host, Range, If-Range, Accept-Encoding, Content-Length, Transfer-Encoding,
/// Connection, Upgrade, TE, Trailer). Persisted.
///
/// Credentials are allowed, as in BITS (`Authorization: Bearer ...`, `Proxy-Authorization`,
/// `Cookie`): they are sent only to the origin (scheme, host, port) of the file's URL, never to a
/// host it redirects to; credentials set with `bits_job_set_credentials` replace an
/// `Authorization` header. No header value appears in error messages or events; see
/// `bits_job_make_custom_headers_write_only` to keep them from being read back.
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
/// and NULL when none are set, as Windows does, and BITS_E_ACCESSDENIED (and NULL) once they are
/// write-only (`bits_job_make_custom_headers_write_only`).
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_S_FALSE, BITS_E_POINTER,
/// BITS_E_ACCESSDENIED, BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_custom_headers(
    job: *mut bits_job,
    out_headers: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_custom_headers", || {
        let out_headers = out(out_headers, "out_headers")?;
        match arg(job, "job")?.inner.custom_headers()? {
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
/// refused with HRESULT_FROM_WIN32(status)). Persisted.
///
/// The BITS_SSL_* flags: BITS_SSL_ENABLE_CRL_CHECK makes the job's revocation list
/// (`bits_job_set_certificate_revocation_list`) strict: every certificate of the chain needs a
/// list from its issuer. BITS_SSL_IGNORE_CERT_CN_INVALID, _IGNORE_CERT_DATE_INVALID,
/// _IGNORE_UNKNOWN_CA and _IGNORE_CERT_WRONG_USAGE hand that certificate failure to the job's
/// server certificate callback, which decides instead (see
/// `bits_job_set_server_certificate_callback`); openbits never relaxes a check on its own, so
/// with such a flag and no callback, the failure stops the transfer in TRANSIENT_ERROR with
/// BITS_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_NOTIMPL (undefined
/// bits or redirect policy), BITS_E_INVALID_STATE.
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
/// Proxy credentials are sent to the job's proxy (see `bits_job_set_proxy_settings`).
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

/// Sets how the job reaches servers (IBackgroundCopyJob::SetProxySettings):
/// - BITS_PROXY_USAGE_PRECONFIG (default): the environment, as curl reads it: `http_proxy`,
///   `https_proxy`, `no_proxy` (upper case too). `proxy_list` and `bypass_list` must be NULL.
/// - BITS_PROXY_USAGE_NO_PROXY: always direct. Lists must be NULL.
/// - BITS_PROXY_USAGE_OVERRIDE: `proxy_list` names proxies (`host:port` or `http://host:port`,
///   separated by spaces or `;`; the first is used); `bypass_list` (may be NULL) names hosts to reach
///   directly (`host`, `*.domain`, `<local>` for names without a dot, IP ranges).
///
/// http:// requests are forwarded through the proxy; https:// ones go through a CONNECT tunnel with
/// TLS to the server inside it. Proxy credentials (`bits_job_set_credentials` with
/// BITS_AUTH_TARGET_PROXY) are sent as `Proxy-Authorization`. Persisted. Strings are borrowed.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (undefined
/// usage, a list where none belongs, OVERRIDE without a list); BITS_E_PROXY_LIST_TOO_LARGE /
/// BITS_E_PROXY_BYPASS_LIST_TOO_LARGE (over 32,000 characters); BITS_E_INVALID_PROXY_INFO (an
/// entry that is not a proxy / host); BITS_E_NOTIMPL (BITS_PROXY_USAGE_AUTODETECT);
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_proxy_settings(
    job: *mut bits_job,
    usage: i32,
    proxy_list: *const c_char,
    bypass_list: *const c_char,
) -> bits_hresult {
    call("bits_job_set_proxy_settings", || {
        let job = arg(job, "job")?;
        let list = if proxy_list.is_null() {
            None
        } else {
            Some(text(proxy_list, "proxy_list")?)
        };
        let bypass = if bypass_list.is_null() {
            None
        } else {
            Some(text(bypass_list, "bypass_list")?)
        };
        job.inner.set_proxy_settings(usage, list, bypass)?;
        Ok(hr::S_OK)
    })
}

/// The proxy settings: the usage, and the lists as set (new strings freed with
/// `bits_free_string`, NULL when not set; each out-parameter but `out_usage` may be NULL).
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE (manager
/// closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_proxy_settings(
    job: *mut bits_job,
    out_usage: *mut i32,
    out_proxy_list: *mut *mut c_char,
    out_bypass_list: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_proxy_settings", || {
        let (list_out, bypass_out) = (
            crate::boundary::out_opt(out_proxy_list),
            crate::boundary::out_opt(out_bypass_list),
        );
        let out_usage = out(out_usage, "out_usage")?;
        let rec = arg(job, "job")?.inner.record()?;
        *out_usage = rec.proxy_usage;
        let extras = rec.extras();
        if let (Some(o), Some(l)) = (list_out, &extras.proxy_list) {
            *o = owned_string(l);
        }
        if let (Some(o), Some(b)) = (bypass_out, &extras.proxy_bypass) {
            *o = owned_string(b);
        }
        Ok(hr::S_OK)
    })
}
