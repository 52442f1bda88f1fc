//! A job's TLS: trusted roots and revocation lists (beyond BITS), client certificates
//! (IBackgroundCopyJobHttpOptions, with PEM files in place of certificate stores), and the server
//! certificate callback (IBackgroundCopyJobHttpOptions3).

use crate::boundary::{arg, call, out, owned_string, text};
use crate::callbacks::{bits_free_user_data, Registered};
use crate::types::{bits_hresult, bits_job};
use openbits_core::hresult as hr;
use openbits_core::HResult;
use std::ffi::{c_char, c_void};

/// Borrowed text that may be NULL.
unsafe fn optional_text<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, openbits_core::Error> {
    if p.is_null() {
        Ok(None)
    } else {
        text(p, what).map(Some)
    }
}

/// Beyond BITS: the job trusts the root certificates of the PEM file `pem_path` (an absolute
/// path, UTF-8, borrowed) instead of the platform's; NULL gives it the platform's again. Nothing
/// in the process's environment changes, and other jobs are not affected. The file is checked
/// now; the path (not the certificates) is persisted, and the file is read again when it changes.
///
/// Thread: any; blocks only to read the file. Returns BITS_S_OK; BITS_E_POINTER (`job` NULL);
/// BITS_E_INVALIDARG (a relative path, no PEM certificate in the file, or one that cannot be a
/// trust anchor); the file's error as HRESULT_FROM_WIN32 (e.g. 0x80070002, not found);
/// BITS_E_INVALID_STATE (final state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_trusted_roots(
    job: *mut bits_job,
    pem_path: *const c_char,
) -> bits_hresult {
    call("bits_job_set_trusted_roots", || {
        let job = arg(job, "job")?;
        job.inner
            .set_trusted_roots(optional_text(pem_path, "pem_path")?)?;
        Ok(hr::S_OK)
    })
}

/// Beyond BITS: the server's certificate chain is checked against the certificate revocation
/// lists of the PEM file `pem_path` (absolute, UTF-8, borrowed); NULL removes the check. There is
/// no system revocation service to ask, so the application provides the lists (and renews the
/// file; it is read again when it changes). A revoked certificate stops the job in ERROR with
/// HRESULT_FROM_WIN32(ERROR_INTERNET_SEC_CERT_REVOKED) (0x80072F8A). By default a certificate
/// whose issuer has no list in the file passes; with BITS_SSL_ENABLE_CRL_CHECK in the security
/// flags it fails with 0x80072F19 (ERROR_INTERNET_SEC_CERT_REV_FAILED). Persisted (the path).
///
/// Thread: any; blocks only to read the file. Returns BITS_S_OK; BITS_E_POINTER;
/// BITS_E_INVALIDARG (a relative path, no PEM X509 CRL in the file); the file's error as
/// HRESULT_FROM_WIN32; BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_certificate_revocation_list(
    job: *mut bits_job,
    pem_path: *const c_char,
) -> bits_hresult {
    call("bits_job_set_certificate_revocation_list", || {
        let job = arg(job, "job")?;
        job.inner
            .set_certificate_revocation_list(optional_text(pem_path, "pem_path")?)?;
        Ok(hr::S_OK)
    })
}

/// The client certificate the job presents when a server asks for one
/// (IBackgroundCopyJobHttpOptions::SetClientCertificateByName, with PEM files in place of a
/// certificate store): `cert_pem_path`, the certificate (then any intermediates), and
/// `key_pem_path`, its private key (PKCS#8, PKCS#1 or SEC1, unencrypted). Absolute paths, UTF-8,
/// borrowed. Both are checked now (the key must match the certificate). The paths are persisted,
/// not the key: keep the key file readable only by the application's user.
///
/// Thread: any; blocks only to read the files. Returns BITS_S_OK; BITS_E_POINTER;
/// BITS_E_INVALIDARG (relative paths, no certificate, no key, a key that does not match); a
/// file's error as HRESULT_FROM_WIN32; BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_client_certificate_file(
    job: *mut bits_job,
    cert_pem_path: *const c_char,
    key_pem_path: *const c_char,
) -> bits_hresult {
    call("bits_job_set_client_certificate_file", || {
        let job = arg(job, "job")?;
        job.inner.set_client_certificate_file(
            text(cert_pem_path, "cert_pem_path")?,
            text(key_pem_path, "key_pem_path")?,
        )?;
        Ok(hr::S_OK)
    })
}

/// Removes the job's client certificate (IBackgroundCopyJobHttpOptions::RemoveClientCertificate).
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_S_FALSE (the job had none);
/// BITS_E_POINTER; BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_remove_client_certificate(job: *mut bits_job) -> bits_hresult {
    call("bits_job_remove_client_certificate", || {
        arg(job, "job")?.inner.remove_client_certificate()
    })
}

/// The job's client certificate files (GetClientCertificate's analogue): new strings freed with
/// `bits_free_string`, both NULL and BITS_S_FALSE when none is set.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_S_FALSE, BITS_E_POINTER,
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_client_certificate_file(
    job: *mut bits_job,
    out_cert_pem_path: *mut *mut c_char,
    out_key_pem_path: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_client_certificate_file", || {
        let out_cert = out(out_cert_pem_path, "out_cert_pem_path")?;
        let out_key = out(out_key_pem_path, "out_key_pem_path")?;
        match arg(job, "job")?.inner.client_certificate_file()? {
            Some((cert, key)) => {
                *out_cert = owned_string(&cert);
                *out_key = owned_string(&key);
                Ok(hr::S_OK)
            }
            None => Ok(hr::S_FALSE),
        }
    })
}

/// Makes the job's custom headers write-only (IBackgroundCopyJobHttpOptions3::
/// MakeCustomHeadersWriteOnly): they are still sent, but `bits_job_get_custom_headers` answers
/// BITS_E_ACCESSDENIED from now on, for these headers and any set later. It cannot be undone.
/// As BITS does, the headers are kept in the state folder (the database is readable only by its
/// user); they never appear in error descriptions or events.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE (final
/// state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_make_custom_headers_write_only(
    job: *mut bits_job,
) -> bits_hresult {
    call("bits_job_make_custom_headers_write_only", || {
        arg(job, "job")?.inner.make_custom_headers_write_only()?;
        Ok(hr::S_OK)
    })
}

/// One certificate of a chain, DER-encoded, borrowed for the duration of a callback.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct bits_certificate {
    pub der: *const u8,
    pub len: usize,
}

/// A server certificate check (IBackgroundCopyServerCertificateValidationCallback::
/// ValidateServerCertificate). `job` is a borrowed reference valid for the call only (do not
/// release it); `host_name` is the name or address connected to (UTF-8); `chain` holds
/// `chain_len` certificates as the server sent them, its own first; `library_result` is
/// BITS_S_OK, or the certificate failure a BITS_SSL_IGNORE_* flag handed over (e.g. 0x80072F06
/// for a wrong host name). All are borrowed for the call. Return BITS_S_OK to accept; any other
/// value refuses the certificate.
///
/// It runs on one of the library's transfer threads during the TLS handshake: return quickly,
/// and do not wait there for this job (`bits_job_wait`). It must not unwind (no C++ exception,
/// no longjmp) out of the call.
#[allow(non_camel_case_types)]
pub type bits_server_certificate_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        job: *mut bits_job,
        host_name: *const c_char,
        chain: *const bits_certificate,
        chain_len: usize,
        library_result: bits_hresult,
    ) -> bits_hresult,
>;

/// Sets the job's server certificate callback
/// (IBackgroundCopyJobHttpOptions3::SetServerCertificateValidationInterface); NULL `callback`
/// removes it. As in BITS: the callback runs after the library's own checks pass (chain to a
/// trusted root, dates, host name, usage, and the job's revocation list) and can only add to
/// them; a failure of those checks stops the job without calling it, unless a BITS_SSL_IGNORE_*
/// security flag hands that failure to the callback, which then decides instead (the library's
/// checks stop at that failure: the callback answers for the rest). Without a callback an IGNORE
/// flag relaxes nothing. When the callback refuses, the job goes to TRANSIENT_ERROR with context
/// BITS_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK and the callback's code (BITS_E_FAIL for a
/// non-failure value other than BITS_S_OK); fix the cause and resume.
///
/// Not persisted (as in BITS): the job remembers that it had a callback, and after the manager
/// is reopened its HTTPS transfers stop in TRANSIENT_ERROR with
/// BITS_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED until the application sets one again
/// (suspend the job, set it, resume). Removing it (NULL) clears that. A pooled connection that
/// passed the callback may be reused by the job without calling it again.
///
/// Ownership: `user_data` passes to the library in every call, failing ones included;
/// `free_user_data` (may be NULL) is called with it exactly once: at once if this call fails or
/// `callback` is NULL; otherwise when the callback is replaced or removed, when the job is
/// completed or cancelled and released, or when the manager closes; always after the last call
/// of `callback` with it (so possibly on a library thread).
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER (`job` NULL);
/// BITS_E_READ_ONLY_WHEN_JOB_ACTIVE (the job is QUEUED, CONNECTING or TRANSFERRING: suspend it
/// first); BITS_E_INVALID_STATE (final state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_server_certificate_callback(
    job: *mut bits_job,
    callback: bits_server_certificate_callback,
    user_data: *mut c_void,
    free_user_data: bits_free_user_data,
) -> bits_hresult {
    // Owned from here on: every return path drops it (freeing the data) unless it is registered.
    let registered = std::sync::Arc::new(Registered {
        callback,
        user_data,
        free_user_data,
    });
    call("bits_job_set_server_certificate_callback", move || {
        let job = arg(job, "job")?;
        let check = registered.callback.is_some().then(|| {
            let r = registered.clone();
            let f: openbits_core::ServerCertificateCheck = Box::new(
                move |job: &openbits_core::Job, c: &openbits_core::tls::CertificateCheck<'_>| {
                    let Some(cb) = r.callback else {
                        return hr::E_UNEXPECTED;
                    };
                    let mut handle = bits_job {
                        inner: job.borrowed(),
                    };
                    let host = std::ffi::CString::new(c.host.replace('\0', "")).unwrap_or_default();
                    let chain: Vec<bits_certificate> = c
                        .chain
                        .iter()
                        .map(|d| bits_certificate {
                            der: d.as_ptr(),
                            len: d.len(),
                        })
                        .collect();
                    // SAFETY: the caller's function with its own data; every pointer outlives the call.
                    HResult(unsafe {
                        cb(
                            r.user_data,
                            &mut handle,
                            host.as_ptr(),
                            chain.as_ptr(),
                            chain.len(),
                            c.library_result.0,
                        )
                    })
                },
            );
            f
        });
        drop(registered);
        job.inner.set_server_certificate_callback(check)?;
        Ok(hr::S_OK)
    })
}
