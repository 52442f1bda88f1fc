//! The C boundary's one guard: every export runs its body through `call` (or `call_void`), which
//! catches panics (→ BITS_E_UNEXPECTED), records the thread's last error message, and returns the
//! HRESULT. The helpers below turn C arguments into Rust values without trusting them.

use openbits_core::hresult as hr;
use openbits_core::{Error, HResult};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) type Outcome = Result<HResult, Error>;

fn set_last_error(function: &str, message: &str) {
    let text = format!("{function}: {message}").replace('\0', "\\0");
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The message of this thread's last failed call; valid until the next failing call on this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an export's body. Failures (and panics) set the last error message.
pub(crate) fn call(function: &str, body: impl FnOnce() -> Outcome) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code.0,
        Ok(Err(e)) => {
            set_last_error(function, &e.message);
            e.code.0
        }
        Err(payload) => {
            // Formatting the payload is guarded too: nothing may unwind into C.
            let text = catch_unwind(AssertUnwindSafe(|| panic_text(payload.as_ref())))
                .unwrap_or_else(|_| "panic while reporting a panic".into());
            let _ = catch_unwind(|| {
                set_last_error(function, &format!("internal error (panic): {text}"))
            });
            hr::E_UNEXPECTED.0
        }
    }
}

/// For exports that return nothing (release, close, free): a panic is swallowed, never propagated.
pub(crate) fn call_void(function: &str, body: impl FnOnce()) {
    let _ = call(function, || {
        body();
        Ok(hr::S_OK)
    });
}

pub(crate) fn null(what: &str) -> Error {
    Error::new(hr::E_POINTER, format!("{what} is NULL"))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(null(what));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|e| Error::new(hr::E_INVALIDARG, format!("{what} is not valid UTF-8 ({e})")))
}

/// A reference through a pointer argument.
///
/// # Safety
/// `p` is NULL or points to a valid `T` that stays valid (and unaliased if written) for `'a`.
pub(crate) unsafe fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    p.as_ref().ok_or_else(|| null(what))
}

/// An out-parameter: checked for NULL, and set to its zero value at once so that it reads zero (or
/// NULL) if the call then fails.
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn out<'a, T: Zero>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    let r = p.as_mut().ok_or_else(|| null(what))?;
    p.write(T::zero());
    Ok(r)
}

/// Like `out`, for out-parameters that may be NULL (the caller does not want that value).
///
/// # Safety
/// As `out`.
pub(crate) unsafe fn out_opt<'a, T: Zero>(p: *mut T) -> Option<&'a mut T> {
    let r = p.as_mut()?;
    p.write(T::zero());
    Some(r)
}

/// The value an out-parameter holds after a failed call.
pub(crate) trait Zero {
    fn zero() -> Self;
}

impl<T> Zero for *mut T {
    fn zero() -> Self {
        std::ptr::null_mut()
    }
}

macro_rules! zero_is_default {
    ($($t:ty),*) => { $( impl Zero for $t { fn zero() -> Self { <$t>::default() } } )* };
}
zero_is_default!(
    i32,
    u32,
    u64,
    crate::types::bits_guid,
    crate::types::bits_job_progress,
    crate::types::bits_job_reply_progress,
    crate::types::bits_event,
    crate::types::bits_job_times,
    crate::types::bits_file_progress,
    crate::types::bits_file_range
);

/// A string the caller frees with `bits_free_string`.
pub(crate) fn owned_string(s: &str) -> *mut c_char {
    CString::new(s.replace('\0', "\\0"))
        .unwrap_or_default()
        .into_raw()
}

/// Copies `items` into memory from `malloc`, which `bits_free` releases: arrays need no length to
/// be freed, so the caller cannot pass a wrong one.
pub(crate) fn alloc_array<T: Copy>(items: &[T]) -> Result<*mut T, Error> {
    let bytes = std::mem::size_of_val(items);
    // SAFETY: malloc of a non-zero size; the copy writes exactly `bytes` into it.
    unsafe {
        let p = libc::malloc(bytes.max(1)).cast::<T>();
        if p.is_null() {
            return Err(Error::new(hr::E_OUTOFMEMORY, "out of memory"));
        }
        std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
        Ok(p)
    }
}
