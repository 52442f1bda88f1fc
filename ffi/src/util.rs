//! Ids, strings and versions.

use crate::boundary::{self, arg, call, call_void, out};
use crate::types::{bits_guid, bits_hresult};
use openbits_core::hresult::{self as hr, HResult};
use openbits_core::{Error, JobId};
use std::ffi::{c_char, CString};

/// Bytes `bits_guid_to_string` writes: `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` and a NUL.
pub const BITS_GUID_STRING_LEN: usize = 39;

/// Formats `id` as `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` (upper case, as Windows does) into the
/// caller's `buffer` of `buffer_len` bytes, NUL included. Both pointers are borrowed. On failure the
/// buffer holds an empty string (if `buffer_len` > 0).
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER) 0x8007007A
/// when `buffer_len` < BITS_GUID_STRING_LEN.
#[no_mangle]
pub unsafe extern "C" fn bits_guid_to_string(
    id: *const bits_guid,
    buffer: *mut c_char,
    buffer_len: usize,
) -> bits_hresult {
    call("bits_guid_to_string", || {
        if buffer.is_null() {
            return Err(boundary::null("buffer"));
        }
        if buffer_len > 0 {
            *buffer = 0;
        }
        let id: JobId = (*arg(id, "id")?).into();
        if buffer_len < BITS_GUID_STRING_LEN {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_INSUFFICIENT_BUFFER),
                format!("buffer_len is {buffer_len}; {BITS_GUID_STRING_LEN} bytes are needed"),
            ));
        }
        let s = format!("{}\0", openbits_core::job::braced(&id));
        std::ptr::copy_nonoverlapping(s.as_ptr(), buffer.cast::<u8>(), s.len());
        Ok(hr::S_OK)
    })
}

/// Parses a job id written as `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` or without the braces,
/// in any case. `text` is borrowed; `out_id` is zeroed on failure.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (not a GUID).
#[no_mangle]
pub unsafe extern "C" fn bits_guid_from_string(
    text: *const c_char,
    out_id: *mut bits_guid,
) -> bits_hresult {
    call("bits_guid_from_string", || {
        let out_id = out(out_id, "out_id")?;
        let s = boundary::text(text, "text")?;
        let inner = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s);
        if inner.len() != 36 {
            return Err(Error::new(hr::E_INVALIDARG, format!("not a GUID: {s:?}")));
        }
        let id = JobId::try_parse(inner)
            .map_err(|e| Error::new(hr::E_INVALIDARG, format!("not a GUID: {s:?} ({e})")))?;
        *out_id = id.into();
        Ok(hr::S_OK)
    })
}

/// Frees a string the library returned. NULL does nothing.
///
/// Thread: any. Does not block.
#[no_mangle]
pub unsafe extern "C" fn bits_free_string(text: *mut c_char) {
    call_void("bits_free_string", || {
        if !text.is_null() {
            drop(CString::from_raw(text));
        }
    })
}

/// The detail of this thread's last failed call, e.g. `bits_add_file: local name must be an
/// absolute path: "x"`. Never NULL (empty if no call failed yet). Owned by the library; valid
/// until the next failing call on this thread, so read it before the next call (in particular,
/// not as another argument of the same function call as the failing one: C leaves the order of
/// evaluation of arguments unspecified).
///
/// Thread: any; each thread has its own. Does not block.
#[no_mangle]
pub extern "C" fn bits_last_error_message() -> *const c_char {
    boundary::last_error()
}

/// The library's version, e.g. "0.1.0". A static string; never freed.
///
/// Thread: any. Does not block.
#[no_mangle]
pub extern "C" fn bits_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Frees an array the library returned (e.g. by `bits_enum_jobs`). NULL does nothing.
///
/// Thread: any. Does not block.
#[no_mangle]
pub unsafe extern "C" fn bits_free(memory: *mut std::ffi::c_void) {
    call_void("bits_free", || libc::free(memory))
}

/// The library's version as numbers (same as BITS_VERSION_MAJOR/MINOR/PATCH of the header it was
/// built with). Each pointer may be NULL. Thread: any; does not block. Returns BITS_S_OK.
#[no_mangle]
pub unsafe extern "C" fn bits_get_version(
    out_major: *mut u32,
    out_minor: *mut u32,
    out_patch: *mut u32,
) -> bits_hresult {
    call("bits_get_version", || {
        let mut parts = env!("CARGO_PKG_VERSION")
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        for target in [out_major, out_minor, out_patch] {
            let value = parts.next().unwrap_or(0);
            if let Some(t) = crate::boundary::out_opt(target) {
                *t = value;
            }
        }
        Ok(hr::S_OK)
    })
}

/// A sentence describing any code the library returns (IBackgroundCopyManager::GetErrorDescription):
/// a new UTF-8 string freed with `bits_free_string`. Unknown codes get a generic text with the
/// number. Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER.
#[no_mangle]
pub unsafe extern "C" fn bits_get_error_description(
    code: bits_hresult,
    out_text: *mut *mut c_char,
) -> bits_hresult {
    call("bits_get_error_description", || {
        let out_text = out(out_text, "out_text")?;
        *out_text = crate::boundary::owned_string(&HResult(code).description());
        Ok(hr::S_OK)
    })
}
