//! HRESULT values with BITS's own numbers (bitsmsg.h, winerror.h), the errno → HRESULT table and the
//! text for each code. The C header re-exports these numbers; nothing here knows about C.

use std::fmt;

/// A 32-bit HRESULT: >= 0 is success, < 0 failure.
#[repr(transparent)]
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
#[must_use]
pub struct HResult(pub i32);

impl HResult {
    pub const fn from_u32(v: u32) -> Self {
        HResult(v as i32)
    }
    pub const fn as_u32(self) -> u32 {
        self.0 as u32
    }
    pub const fn succeeded(self) -> bool {
        self.0 >= 0
    }
    pub const fn failed(self) -> bool {
        self.0 < 0
    }
    /// HRESULT_FROM_WIN32: `0x8007xxxx` for a positive Win32 error code.
    pub const fn from_win32(code: u32) -> Self {
        if code == 0 {
            HResult(0)
        } else {
            HResult::from_u32((code & 0xFFFF) | (7 << 16) | 0x8000_0000)
        }
    }
    /// BG_E_HTTP_ERROR_nnn: `0x80190000 | status`.
    pub const fn http(status: u16) -> Self {
        HResult::from_u32(0x8019_0000 | status as u32)
    }
    /// The HTTP status carried by a `0x8019xxxx` code, if it is one.
    pub fn http_status(self) -> Option<u16> {
        let v = self.as_u32();
        let status = (v & 0xFFFF) as u16;
        (v & 0xFFFF_0000 == 0x8019_0000 && (100..600).contains(&status)).then_some(status)
    }
    /// The symbolic name (`BITS_E_NOT_FOUND`, `BITS_E_HTTP_ERROR(404)`, `HRESULT_FROM_WIN32(112)`), if known.
    pub fn name(self) -> Option<String> {
        if let Some(e) = TABLE.iter().find(|e| e.code == self) {
            return Some(e.name.to_string());
        }
        if let Some(s) = self.http_status() {
            return Some(format!("BITS_E_HTTP_ERROR({s})"));
        }
        let v = self.as_u32();
        (v & 0xFFFF_0000 == 0x8007_0000).then(|| format!("HRESULT_FROM_WIN32({})", v & 0xFFFF))
    }
    /// A human description of the code, as IBackgroundCopyManager::GetErrorDescription gives.
    pub fn description(self) -> String {
        if let Some(e) = TABLE.iter().find(|e| e.code == self) {
            return e.text.to_string();
        }
        if let Some(s) = self.http_status() {
            let reason = hyper::StatusCode::from_u16(s)
                .ok()
                .and_then(|c| c.canonical_reason());
            return format!(
                "The server returned HTTP status {s} {}.",
                reason.unwrap_or("")
            )
            .replace(" .", ".");
        }
        let v = self.as_u32();
        if v & 0xFFFF_0000 == 0x8007_0000 {
            if let Some(w) = WIN32_TEXT.iter().find(|w| w.0 == v & 0xFFFF) {
                return w.1.to_string();
            }
            return format!("Operating system error {}.", v & 0xFFFF);
        }
        format!("Unknown error 0x{v:08X}.")
    }
}

impl fmt::Debug for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "0x{:08X} ({n})", self.as_u32()),
            None => write!(f, "0x{:08X}", self.as_u32()),
        }
    }
}

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.as_u32())
    }
}

struct Entry {
    code: HResult,
    name: &'static str,
    text: &'static str,
}

/// Declares each code once: the constant, its name and its text come from the same line.
macro_rules! codes {
    ($( $name:ident = $value:expr, $text:expr; )*) => {
        $( pub const $name: HResult = HResult::from_u32($value); )*
        const TABLE: &[Entry] = &[ $( Entry { code: $name, name: concat!("BITS_", stringify!($name)), text: $text }, )* ];
        /// Every named code, for the C header's check and for tests.
        pub fn all_named() -> impl Iterator<Item = (&'static str, HResult)> {
            TABLE.iter().map(|e| (e.name, e.code))
        }
    };
}

codes! {
    S_OK = 0x0000_0000, "The operation completed successfully.";
    S_FALSE = 0x0000_0001, "The operation succeeded but returned no data.";
    E_NOTIMPL = 0x8000_4001, "Not implemented.";
    E_POINTER = 0x8000_4003, "A required pointer argument was NULL.";
    E_FAIL = 0x8000_4005, "Unspecified error.";
    E_UNEXPECTED = 0x8000_FFFF, "Catastrophic failure: an unexpected internal error occurred.";
    E_ACCESSDENIED = 0x8007_0005, "Access is denied.";
    E_OUTOFMEMORY = 0x8007_000E, "Not enough memory resources are available to complete this operation.";
    E_INVALIDARG = 0x8007_0057, "One or more arguments are not valid.";
    E_TIMEOUT = 0x8007_05B4, "This operation returned because the timeout period expired.";
    E_NOT_FOUND = 0x8020_0001, "The requested job was not found.";
    E_INVALID_STATE = 0x8020_0002, "The requested action is not allowed in the current job state.";
    E_EMPTY = 0x8020_0003, "There are currently no files attached to this job.";
    E_FILE_NOT_AVAILABLE = 0x8020_0004, "No file is available because no URL generated an error.";
    E_PROTOCOL_NOT_AVAILABLE = 0x8020_0005, "No protocol is available because no URL generated an error.";
    S_ERROR_CONTEXT_NONE = 0x0020_0006, "No errors have occurred.";
    E_ERROR_CONTEXT_UNKNOWN = 0x8020_0007, "The error occurred in an unknown location.";
    E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER = 0x8020_0008, "The error occurred in the queue manager.";
    E_ERROR_CONTEXT_LOCAL_FILE = 0x8020_0009, "The error occurred while the local file was being processed.";
    E_ERROR_CONTEXT_REMOTE_FILE = 0x8020_000A, "The error occurred while the remote file was being processed.";
    E_ERROR_CONTEXT_GENERAL_TRANSPORT = 0x8020_000B, "The error occurred in the transport layer.";
    E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION = 0x8020_000C, "The error occurred while the notification callback was being processed.";
    E_DESTINATION_LOCKED = 0x8020_000D, "The destination volume is locked.";
    E_VOLUME_CHANGED = 0x8020_000E, "The destination volume changed.";
    E_ERROR_INFORMATION_UNAVAILABLE = 0x8020_000F, "No error information is available: the job is not in the ERROR or TRANSIENT_ERROR state.";
    E_NETWORK_DISCONNECTED = 0x8020_0010, "No network connection is active.";
    E_MISSING_FILE_SIZE = 0x8020_0011, "The server did not return the file size (no Content-Length); the URL may point to dynamic content.";
    E_INSUFFICIENT_HTTP_SUPPORT = 0x8020_0012, "The server does not support HTTP 1.1.";
    E_INSUFFICIENT_RANGE_SUPPORT = 0x8020_0013, "The server does not support the necessary HTTP protocol: byte ranges (Content-Range) are required.";
    E_REMOTE_NOT_SUPPORTED = 0x8020_0014, "This operation cannot be used remotely.";
    E_NEW_OWNER_DIFF_MAPPING = 0x8020_0015, "The drive mapping for the job differs for the new owner.";
    E_NEW_OWNER_NO_FILE_ACCESS = 0x8020_0016, "The new owner has insufficient access to the local files of the job.";
    S_PARTIAL_COMPLETE = 0x0020_0017, "Some of the transferred files were deleted because they were incomplete.";
    E_PROXY_LIST_TOO_LARGE = 0x8020_0018, "The HTTP proxy list cannot be longer than 32,000 characters.";
    E_PROXY_BYPASS_LIST_TOO_LARGE = 0x8020_0019, "The HTTP proxy bypass list cannot be longer than 32,000 characters.";
    S_UNABLE_TO_DELETE_FILES = 0x0020_001A, "Some of the temporary files could not be deleted.";
    E_INVALID_SERVER_RESPONSE = 0x8020_001B, "The server's response was not valid.";
    E_TOO_MANY_FILES = 0x8020_001C, "No more files can be added to this job.";
    E_LOCAL_FILE_CHANGED = 0x8020_001D, "The local file was changed during the transfer.";
    E_ERROR_CONTEXT_REMOTE_APPLICATION = 0x8020_001E, "The error was reported by the server application.";
    E_SESSION_NOT_FOUND = 0x8020_001F, "The requested upload session was not found on the server.";
    E_TOO_LARGE = 0x8020_0020, "The upload file is too large for the server to accept.";
    E_STRING_TOO_LONG = 0x8020_0021, "The specified string is too long.";
    E_CLIENT_SERVER_PROTOCOL_MISMATCH = 0x8020_0022, "The client and server versions of BITS are not compatible.";
    E_SERVER_EXECUTE_ENABLE = 0x8020_0023, "Scripting or execute permissions are enabled on the server's upload directory.";
    E_NO_PROGRESS = 0x8020_0024, "The job is not making headway; the server may be misconfigured.";
    E_USERNAME_TOO_LARGE = 0x8020_0025, "The user name cannot exceed 300 characters.";
    E_PASSWORD_TOO_LARGE = 0x8020_0026, "The password cannot exceed 65,536 characters.";
    E_INVALID_AUTH_TARGET = 0x8020_0027, "The authentication target is not valid.";
    E_INVALID_AUTH_SCHEME = 0x8020_0028, "The authentication scheme is not valid.";
    E_FILE_NOT_FOUND = 0x8020_0029, "The specified file name does not match any of the files in the job.";
    S_PROXY_CHANGED = 0x0020_002A, "The proxy server was changed.";
    E_INVALID_RANGE = 0x8020_002B, "The requested byte range extends beyond the end of the web page or the initial offset is invalid.";
    E_OVERLAPPING_RANGES = 0x8020_002C, "The list of byte ranges contains overlapping or duplicate ranges.";
    E_CONNECT_FAILURE = 0x8020_002D, "A connection could not be established.";
    E_CONNECTION_CLOSED = 0x8020_002E, "The connection was closed prematurely.";
    E_BLOCKED_BY_POLICY = 0x8020_003E, "Policy forbids the transfer at this time.";
    E_INVALID_PROXY_INFO = 0x8020_003F, "The proxy list or bypass list is not valid.";
    E_INVALID_CREDENTIALS = 0x8020_0040, "The format of the supplied security credentials is not valid.";
    E_INVALID_HASH_ALGORITHM = 0x8020_0041, "The hash algorithm is not supported.";
    E_RECORD_DELETED = 0x8020_0042, "The cache record has been deleted.";
    E_COMMIT_IN_PROGRESS = 0x8020_0043, "Another thread is updating the cache record.";
    E_DISCOVERY_IN_PROGRESS = 0x8020_0044, "A search for neighbours is already running.";
    E_UPNP_ERROR = 0x8020_0045, "A UPnP error occurred.";
    E_TEST_OPTION_BLOCKED_DOWNLOAD = 0x8020_0046, "A test option blocked the download.";
    E_PEERCACHING_DISABLED = 0x8020_0047, "Peer caching is disabled.";
    E_BUSYCACHERECORD = 0x8020_0048, "The cache record is in use.";
    E_TOO_MANY_JOBS_PER_USER = 0x8020_0049, "The job count for this user has exceeded the per-user job limit.";
    E_TOO_MANY_JOBS_PER_MACHINE = 0x8020_0050, "The job count has exceeded the per-machine job limit.";
    E_TOO_MANY_FILES_IN_JOB = 0x8020_0051, "The file count has exceeded the per-job file limit.";
    E_TOO_MANY_RANGES_IN_FILE = 0x8020_0052, "The range count has exceeded the per-file range limit.";
    E_VALIDATION_FAILED = 0x8020_0053, "The response was not valid.";
    E_MAXDOWNLOAD_TIMEOUT = 0x8020_0054, "The job exceeded its maximum download time.";
    S_OVERRIDDEN_BY_POLICY = 0x0020_0055, "The preference was saved but is overridden by policy.";
    E_TOKEN_REQUIRED = 0x8020_0056, "A helper token is required but unavailable.";
    E_UNKNOWN_PROPERTY_ID = 0x8020_0057, "The property ID is not known.";
    E_READ_ONLY_PROPERTY = 0x8020_0058, "The property is read-only.";
    E_BLOCKED_BY_COST_TRANSFER_POLICY = 0x8020_0059, "The network cost policy blocks the transfer now.";
    E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY = 0x8020_0060, "The property is supported for download jobs only.";
    E_READ_ONLY_PROPERTY_AFTER_ADDFILE = 0x8020_0061, "The property cannot be changed after a file has been added to the job.";
    E_READ_ONLY_PROPERTY_AFTER_RESUME = 0x8020_0062, "The property cannot be changed after the job has been resumed for the first time.";
    E_MAX_DOWNLOAD_SIZE_INVALID_VALUE = 0x8020_0063, "The maximum download size must be between 1 and UINT64_MAX.";
    E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED = 0x8020_0064, "The download reached the job's maximum download size.";
    E_STANDBY_MODE = 0x8020_0065, "The transfer is paused because the device is in a power-saving mode.";
    E_USE_STORED_CREDENTIALS_NOT_SUPPORTED = 0x8020_0066, "Stored credentials can be used only for the proxy target.";
    E_BLOCKED_BY_BATTERY_POLICY = 0x8020_0067, "The transfer is paused because the device is on battery.";
    E_BLOCKED_BY_BATTERY_SAVER = 0x8020_0068, "The transfer is paused by Battery Saver.";
    E_WATCHDOG_TIMEOUT = 0x8020_0069, "An operation did not complete within the expected time interval.";
    E_APP_PACKAGE_NOT_FOUND = 0x8020_006A, "No app package was found for the job's owner.";
    E_APP_PACKAGE_SCENARIO_NOT_SUPPORTED = 0x8020_006B, "App packages are not supported for this scenario.";
    E_DATABASE_CORRUPT = 0x8020_006C, "The persistent state of the queue is corrupt.";
    E_RANDOM_ACCESS_NOT_SUPPORTED = 0x8020_006D, "Random access is not supported for this file.";
    E_BLOCKED_BY_BACKGROUND_ACCESS_POLICY = 0x8020_006E, "The owner's background access settings block the transfer.";
    E_BLOCKED_BY_GAME_MODE = 0x8020_006F, "The transfer is paused by Game Mode.";
    E_BLOCKED_BY_SYSTEM_POLICY = 0x8020_0070, "The transfer is paused by system resource constraints.";
    E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD = 0x8020_0071, "The operation is not allowed with a custom HTTP method.";
    E_UNSUPPORTED_JOB_CONFIGURATION = 0x8020_0072, "The job configuration is incompatible with the requested action.";
    E_REMOTE_FILE_CHANGED = 0x8020_0073, "The remote file changed during the transfer.";
    E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED = 0x8020_0074, "A server certificate validation callback is required.";
    E_READ_ONLY_WHEN_JOB_ACTIVE = 0x8020_0075, "The property can be set only when the job is SUSPENDED, ERROR or TRANSFERRED.";
    E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK = 0x8020_0076, "The error occurred in the server certificate validation callback.";
}

/// Win32 error codes this library produces through HRESULT_FROM_WIN32, with their text.
pub mod win32 {
    pub const ERROR_FILE_NOT_FOUND: u32 = 2;
    pub const ERROR_PATH_NOT_FOUND: u32 = 3;
    pub const ERROR_TOO_MANY_OPEN_FILES: u32 = 4;
    pub const ERROR_ACCESS_DENIED: u32 = 5;
    pub const ERROR_OUTOFMEMORY: u32 = 14;
    pub const ERROR_NOT_SAME_DEVICE: u32 = 17;
    pub const ERROR_WRITE_PROTECT: u32 = 19;
    pub const ERROR_SHARING_VIOLATION: u32 = 32;
    pub const ERROR_FILE_EXISTS: u32 = 80;
    pub const ERROR_INVALID_PARAMETER: u32 = 87;
    pub const ERROR_DISK_FULL: u32 = 112;
    pub const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
    pub const ERROR_DIR_NOT_EMPTY: u32 = 145;
    pub const ERROR_FILENAME_EXCED_RANGE: u32 = 206;
    pub const ERROR_FILE_TOO_LARGE: u32 = 223;
    pub const ERROR_DIRECTORY: u32 = 267;
    pub const ERROR_IO_DEVICE: u32 = 1117;
    pub const ERROR_CONNECTION_REFUSED: u32 = 1225;
    pub const ERROR_TIMEOUT: u32 = 1460;
    pub const ERROR_CANT_RESOLVE_FILENAME: u32 = 1921;
    /// WinINet: the server name could not be resolved.
    pub const ERROR_INTERNET_NAME_NOT_RESOLVED: u32 = 12007;
    /// WinINet: a TLS (secure channel) error, e.g. an untrusted certificate.
    pub const ERROR_INTERNET_SECURE_FAILURE: u32 = 12175;
    /// WinINet / WinHTTP certificate failures, as BITS reports them.
    pub const ERROR_INTERNET_SEC_CERT_DATE_INVALID: u32 = 12037;
    pub const ERROR_INTERNET_SEC_CERT_CN_INVALID: u32 = 12038;
    pub const ERROR_INTERNET_INVALID_CA: u32 = 12045;
    pub const ERROR_INTERNET_SEC_CERT_REV_FAILED: u32 = 12057;
    pub const ERROR_INTERNET_SEC_INVALID_CERT: u32 = 12169;
    pub const ERROR_INTERNET_SEC_CERT_REVOKED: u32 = 12170;
    pub const ERROR_WINHTTP_SECURE_CERT_WRONG_USAGE: u32 = 12179;
}

const WIN32_TEXT: &[(u32, &str)] = {
    use win32::*;
    &[
        (ERROR_FILE_NOT_FOUND, "The system cannot find the file specified."),
        (ERROR_PATH_NOT_FOUND, "The system cannot find the path specified."),
        (ERROR_TOO_MANY_OPEN_FILES, "The system cannot open the file: too many open files."),
        (ERROR_ACCESS_DENIED, "Access is denied."),
        (ERROR_OUTOFMEMORY, "Not enough memory resources are available to complete this operation."),
        (ERROR_NOT_SAME_DEVICE, "The system cannot move the file to a different disk drive."),
        (ERROR_WRITE_PROTECT, "The media is write protected."),
        (ERROR_SHARING_VIOLATION, "The process cannot access the file because it is being used by another process."),
        (ERROR_FILE_EXISTS, "The file exists."),
        (ERROR_INVALID_PARAMETER, "The parameter is incorrect."),
        (ERROR_DISK_FULL, "There is not enough space on the disk."),
        (ERROR_INSUFFICIENT_BUFFER, "The data area passed to a system call is too small."),
        (ERROR_DIR_NOT_EMPTY, "The directory is not empty."),
        (ERROR_FILENAME_EXCED_RANGE, "The filename or extension is too long."),
        (ERROR_FILE_TOO_LARGE, "The file size exceeds the limit allowed and cannot be saved."),
        (ERROR_DIRECTORY, "The directory name is invalid."),
        (ERROR_IO_DEVICE, "The request could not be performed because of an I/O device error."),
        (ERROR_CONNECTION_REFUSED, "The remote computer refused the network connection."),
        (ERROR_TIMEOUT, "This operation returned because the timeout period expired."),
        (ERROR_CANT_RESOLVE_FILENAME, "The name of the file cannot be resolved by the system."),
        (ERROR_INTERNET_NAME_NOT_RESOLVED, "The server name or address could not be resolved."),
        (ERROR_INTERNET_SECURE_FAILURE, "One or more errors were found in the Secure Sockets Layer (SSL) certificate sent by the server."),
        (ERROR_INTERNET_SEC_CERT_DATE_INVALID, "The SSL certificate date that was received from the server is bad. The certificate is expired."),
        (ERROR_INTERNET_SEC_CERT_CN_INVALID, "The SSL certificate common name (host name field) is incorrect."),
        (ERROR_INTERNET_INVALID_CA, "The certificate authority is invalid or incorrect."),
        (ERROR_INTERNET_SEC_CERT_REV_FAILED, "Certificate revocation check failed."),
        (ERROR_INTERNET_SEC_INVALID_CERT, "The SSL certificate is invalid."),
        (ERROR_INTERNET_SEC_CERT_REVOKED, "The SSL certificate was revoked."),
        (ERROR_WINHTTP_SECURE_CERT_WRONG_USAGE, "The SSL certificate is not valid for the requested usage."),
    ]
};

/// errno → Win32 error, the one table the HRESULT_FROM_WIN32 rule is applied to.
const ERRNO_TABLE: &[(i32, u32)] = {
    use win32::*;
    &[
        (libc::ENOENT, ERROR_FILE_NOT_FOUND),
        (libc::ENOTDIR, ERROR_PATH_NOT_FOUND),
        (libc::EMFILE, ERROR_TOO_MANY_OPEN_FILES),
        (libc::ENFILE, ERROR_TOO_MANY_OPEN_FILES),
        (libc::EACCES, ERROR_ACCESS_DENIED),
        (libc::EPERM, ERROR_ACCESS_DENIED),
        (libc::ENOMEM, ERROR_OUTOFMEMORY),
        (libc::EXDEV, ERROR_NOT_SAME_DEVICE),
        (libc::EROFS, ERROR_WRITE_PROTECT),
        (libc::EBUSY, ERROR_SHARING_VIOLATION),
        (libc::ETXTBSY, ERROR_SHARING_VIOLATION),
        (libc::EEXIST, ERROR_FILE_EXISTS),
        (libc::EINVAL, ERROR_INVALID_PARAMETER),
        (libc::ENOSPC, ERROR_DISK_FULL),
        (libc::EDQUOT, ERROR_DISK_FULL),
        (libc::ENOTEMPTY, ERROR_DIR_NOT_EMPTY),
        (libc::ENAMETOOLONG, ERROR_FILENAME_EXCED_RANGE),
        (libc::EFBIG, ERROR_FILE_TOO_LARGE),
        (libc::EISDIR, ERROR_DIRECTORY),
        (libc::EIO, ERROR_IO_DEVICE),
        (libc::ECONNREFUSED, ERROR_CONNECTION_REFUSED),
        (libc::ETIMEDOUT, ERROR_TIMEOUT),
        (libc::ELOOP, ERROR_CANT_RESOLVE_FILENAME),
    ]
};

/// Maps an errno to an HRESULT by HRESULT_FROM_WIN32 of the matching Win32 error; E_FAIL if none matches.
pub fn from_errno(errno: i32) -> HResult {
    ERRNO_TABLE
        .iter()
        .find(|(e, _)| *e == errno)
        .map(|(_, w)| HResult::from_win32(*w))
        .unwrap_or(E_FAIL)
}

/// Maps an I/O error: by its errno when it has one, else by its kind.
pub fn from_io(err: &std::io::Error) -> HResult {
    if let Some(errno) = err.raw_os_error() {
        return from_errno(errno);
    }
    use std::io::ErrorKind::*;
    match err.kind() {
        NotFound => HResult::from_win32(win32::ERROR_FILE_NOT_FOUND),
        PermissionDenied => E_ACCESSDENIED,
        OutOfMemory => E_OUTOFMEMORY,
        TimedOut => E_TIMEOUT,
        InvalidInput => E_INVALIDARG,
        _ => E_FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win32_rule() {
        assert_eq!(HResult::from_win32(5), E_ACCESSDENIED);
        assert_eq!(HResult::from_win32(112).as_u32(), 0x8007_0070);
        assert_eq!(HResult::from_win32(32).as_u32(), 0x8007_0020);
        assert_eq!(HResult::from_win32(1460), E_TIMEOUT);
        assert_eq!(HResult::from_win32(0), S_OK);
    }

    #[test]
    fn errno_table() {
        assert_eq!(from_errno(libc::ENOENT).as_u32(), 0x8007_0002);
        assert_eq!(from_errno(libc::ENOTDIR).as_u32(), 0x8007_0003);
        assert_eq!(from_errno(libc::EACCES).as_u32(), 0x8007_0005);
        assert_eq!(from_errno(libc::ENOSPC).as_u32(), 0x8007_0070);
        assert_eq!(from_errno(libc::EINVAL), E_INVALIDARG);
        assert_eq!(from_errno(libc::ENOMEM), E_OUTOFMEMORY);
        assert_eq!(from_errno(9999), E_FAIL);
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(from_io(&io).as_u32(), 0x8007_0070);
        // Every errno maps to a distinct-enough, failing HRESULT with a text.
        for (errno, _) in ERRNO_TABLE {
            let hr = from_errno(*errno);
            assert!(hr.failed());
            assert!(
                !hr.description().starts_with("Operating system error"),
                "{hr:?} lacks text"
            );
        }
    }

    #[test]
    fn http_codes() {
        assert_eq!(HResult::http(404).as_u32(), 0x8019_0194);
        assert_eq!(HResult::http(503).as_u32(), 0x8019_01F7);
        assert_eq!(HResult::http(404).http_status(), Some(404));
        assert_eq!(E_NOT_FOUND.http_status(), None);
        assert!(HResult::http(404).description().contains("404 Not Found"));
    }

    #[test]
    fn bits_values() {
        assert_eq!(E_NOT_FOUND.as_u32(), 0x8020_0001);
        assert_eq!(S_PARTIAL_COMPLETE.as_u32(), 0x0020_0017);
        assert_eq!(E_TOO_MANY_JOBS_PER_MACHINE.as_u32(), 0x8020_0050);
        assert_eq!(
            E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK.as_u32(),
            0x8020_0076
        );
        assert_eq!(E_DATABASE_CORRUPT.as_u32(), 0x8020_006C);
        assert_eq!(E_NOT_FOUND.name().as_deref(), Some("BITS_E_NOT_FOUND"));
        let n = all_named().count();
        let mut seen = std::collections::HashSet::new();
        for (name, code) in all_named() {
            assert!(seen.insert(code), "{name} duplicates a value");
        }
        assert_eq!(seen.len(), n);
    }
}
