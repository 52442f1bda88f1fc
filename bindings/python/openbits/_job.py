"""Job: a reference to one BITS job of a manager."""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import threading
import uuid
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _bindings as b
from . import _callbacks as _cb
from ._bindings import HResult
from ._callbacks import CertificateCallback, NotifyCallback
from ._enums import (
    AuthScheme,
    AuthTarget,
    ErrorContext,
    JobPriority,
    JobState,
    JobType,
    NotifyFlags,
    SecurityFlags,
    enum_or_int,
)
from ._errors import InvalidArgument, Timeout
from ._ffi import (
    E_ERROR_INFORMATION_UNAVAILABLE_SIGNED,
    E_TIMEOUT_SIGNED,
    PathArg,
    check,
    lib,
    path_arg,
    take_string,
    text_arg,
)
from ._handle import Handle
from ._types import (
    Deadline,
    FileInfo,
    FileProgress,
    JobError,
    JobTimes,
    Progress,
    ReplyProgress,
    Seconds,
    milliseconds,
    whole_seconds,
)

if TYPE_CHECKING:
    from ._manager import Manager


class _Abandoned(Exception):
    """An asyncio wait whose awaiting task went away: the worker thread stops."""


_NO_ERROR_DETAIL = {
    ctypes.c_int32(code).value
    for code in (
        HResult.E_FILE_NOT_AVAILABLE,
        HResult.E_PROTOCOL_NOT_AVAILABLE,
        HResult.E_ERROR_INFORMATION_UNAVAILABLE,
    )
}


def _utc(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)


def _uint32(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(f"{what} out of range: {value}", HResult.E_INVALIDARG)
    return int(value)


def _int32(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not -(2**31) <= value < 2**31:
        raise InvalidArgument(f"{what} out of range: {value}", HResult.E_INVALIDARG)
    return int(value)


def _result(code: int) -> Union[HResult, int]:
    try:
        return HResult(code)
    except ValueError:
        return code


class Job(Handle):
    """A reference to a job (``bits_job``). Obtained from Manager.create_job, get_job or jobs().

    Closing the reference (close(), a ``with`` block, or garbage collection) does not stop the job:
    it lives in its manager's queue until complete() or cancel(). Several Job objects may refer
    to the same job; they compare equal. After the manager is closed every call raises
    InvalidState.
    """

    _kind = "job reference"

    def __init__(self, manager: "Manager", ptr: Any, job_id: uuid.UUID) -> None:
        super().__init__(ptr)
        self._manager = manager  # keeps the manager from being collected (and closed) under the job
        self._id = job_id

    def _free(self, ptr: Any) -> None:
        lib.bits_job_release(ptr)

    # -- identity -----------------------------------------------------------------------------
    @property
    def id(self) -> uuid.UUID:
        """The job's id."""
        return self._id

    @property
    def manager(self) -> "Manager":
        return self._manager

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return self._id == other._id and self._manager is other._manager

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        if self.closed:
            return f"<openbits.Job {self._id} closed>"
        try:
            state = self.state.name
        except Exception:  # e.g. the manager was closed
            state = "?"
        return f"<openbits.Job {self._id} {state}>"

    # -- files and state changes ---------------------------------------------------------------
    def add_file(self, url: str, path: PathArg) -> None:
        """Adds a file: `url` (http, https or file) is downloaded to `path` (str or os.PathLike;
        a relative path is taken from the current folder, as open() does). The destination is
        written only by complete(); until then bytes go to a BIT*.tmp file beside it."""
        url_b = text_arg(url, "url")
        path_b = path_arg(path, "path")
        with self._use() as ptr:
            check(lib.bits_add_file(ptr, url_b, path_b))

    def resume(self) -> None:
        """Starts or restarts the transfer: SUSPENDED, ERROR and TRANSIENT_ERROR become QUEUED."""
        with self._use() as ptr:
            check(lib.bits_resume(ptr))

    def suspend(self) -> None:
        """Suspends the job; bytes already written are kept for a later resume()."""
        with self._use() as ptr:
            check(lib.bits_suspend(ptr))

    def cancel(self) -> Union[HResult, int]:
        """Cancels the job and deletes its temporary files (blocks for milliseconds).

        Returns HResult.S_OK, or HResult.S_UNABLE_TO_DELETE_FILES if a temporary file remains."""
        with self._use() as ptr:
            return _result(check(lib.bits_cancel(ptr)))

    def complete(self) -> Union[HResult, int]:
        """Completes the job: flushes each fully transferred file and renames it onto its
        destination (blocks while it does); the job becomes ACKNOWLEDGED.

        Returns HResult.S_OK, or HResult.S_PARTIAL_COMPLETE when the job was not TRANSFERRED
        (whole files were kept, partial ones deleted): compare the result, as a success code
        is not an exception. Raises InvalidState if the job is already ACKNOWLEDGED or CANCELLED.
        """
        with self._use() as ptr:
            return _result(check(lib.bits_complete(ptr)))

    # -- what the job reports -------------------------------------------------------------------
    @property
    def state(self) -> JobState:
        """The job's state."""
        value = ctypes.c_int32()
        with self._use() as ptr:
            check(lib.bits_job_get_state(ptr, ctypes.byref(value)))
        return enum_or_int(JobState, value.value)  # type: ignore[return-value]

    @property
    def progress(self) -> Progress:
        """The job's progress, as a frozen dataclass."""
        p = b.bits_job_progress()
        with self._use() as ptr:
            check(lib.bits_job_get_progress(ptr, ctypes.byref(p)))
        total = None if p.bytes_total == b.BITS_SIZE_UNKNOWN else int(p.bytes_total)
        return Progress(
            total, int(p.bytes_transferred), int(p.files_total), int(p.files_transferred)
        )

    @property
    def reply_progress(self) -> ReplyProgress:
        """An upload-reply job's reply (IBackgroundCopyJob2::GetReplyProgress); other job types
        raise NotSupported."""
        p = b.bits_job_reply_progress()
        with self._use() as ptr:
            check(lib.bits_job_get_reply_progress(ptr, ctypes.byref(p)))
        total = None if p.bytes_total == b.BITS_SIZE_UNKNOWN else int(p.bytes_total)
        return ReplyProgress(total, int(p.bytes_transferred))

    @property
    def reply_data(self) -> bytes:
        """The whole reply of an upload-reply job once it is TRANSFERRED (GetReplyData). Over
        1 MiB raises BitsError E_TOO_LARGE: read ``reply_file_name`` after ``complete()``."""
        data = ctypes.POINTER(ctypes.c_uint8)()
        length = ctypes.c_uint64()
        with self._use() as ptr:
            check(lib.bits_job_get_reply_data(ptr, ctypes.byref(data), ctypes.byref(length)))
        try:
            return ctypes.string_at(data, length.value)
        finally:
            lib.bits_free(ctypes.cast(data, ctypes.c_void_p))

    @property
    def reply_file_name(self) -> Optional[str]:
        """Where ``complete()`` puts an upload-reply job's reply: the name set, else
        ``<uploaded file>.<job id>.reply`` beside the upload once the job has its file (None
        before). Assign a path before ``resume()``; None goes back to the default."""
        text = ctypes.POINTER(ctypes.c_char)()
        with self._use() as ptr:
            check(lib.bits_job_get_reply_file_name(ptr, ctypes.byref(text)))
        return take_string(text) if text else None

    @reply_file_name.setter
    def reply_file_name(self, value: Optional[PathArg]) -> None:
        arg = None if value is None else path_arg(value, "reply_file_name")
        self._set(lib.bits_job_set_reply_file_name, arg)

    @property
    def error(self) -> Optional[JobError]:
        """The job's error in ERROR and TRANSIENT_ERROR (IBackgroundCopyJob::GetError and the
        IBackgroundCopyError detail); None in the other states."""
        context = ctypes.c_int32()
        code = ctypes.c_int32()
        text = ctypes.POINTER(ctypes.c_char)()
        index = ctypes.c_uint32()
        protocol = ctypes.POINTER(ctypes.c_char)()
        context_text = ctypes.POINTER(ctypes.c_char)()
        with self._use() as ptr:
            hr = lib.bits_job_get_error(
                ptr, ctypes.byref(context), ctypes.byref(code), ctypes.byref(text)
            )
            if hr == E_ERROR_INFORMATION_UNAVAILABLE_SIGNED:
                return None
            check(hr)
            description = take_string(text)
            # The detail: the context text always; the file and protocol only for errors that
            # belong to a file (asking for them otherwise fails with E_FILE_NOT_AVAILABLE).
            detail = lib.bits_job_get_error_detail(ptr, None, None, ctypes.byref(context_text))
            if detail < 0 and detail not in _NO_ERROR_DETAIL:
                check(detail)
            context_s = take_string(context_text)
            detail = lib.bits_job_get_error_detail(
                ptr, ctypes.byref(index), ctypes.byref(protocol), None
            )
            if detail < 0 and detail not in _NO_ERROR_DETAIL:
                check(detail)
            has_file = detail >= 0
            protocol_s = take_string(protocol)
        return JobError(
            context=enum_or_int(ErrorContext, context.value),
            code=enum_or_int(HResult, code.value & 0xFFFFFFFF),
            description=description,
            file_index=int(index.value) if has_file else None,
            protocol=protocol_s or None,
            context_description=context_s or None,
        )

    # -- properties ---------------------------------------------------------------------------
    def _get_u32(self, fn: Any) -> int:
        value = ctypes.c_uint32()
        with self._use() as ptr:
            check(fn(ptr, ctypes.byref(value)))
        return int(value.value)

    def _get_i32(self, fn: Any) -> int:
        value = ctypes.c_int32()
        with self._use() as ptr:
            check(fn(ptr, ctypes.byref(value)))
        return int(value.value)

    def _get_text(self, fn: Any) -> str:
        text = ctypes.POINTER(ctypes.c_char)()
        with self._use() as ptr:
            check(fn(ptr, ctypes.byref(text)))
        return take_string(text)

    def _set(self, fn: Any, value: Any) -> None:
        with self._use() as ptr:
            check(fn(ptr, value))

    @property
    def job_type(self) -> JobType:
        """The job's type (JobType.DOWNLOAD)."""
        return enum_or_int(JobType, self._get_i32(lib.bits_job_get_type))  # type: ignore[return-value]

    @property
    def display_name(self) -> str:
        """The job's display name (at most 256 characters; need not be unique)."""
        return self._get_text(lib.bits_job_get_display_name)

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._set(lib.bits_job_set_display_name, text_arg(value, "display_name"))

    @property
    def description(self) -> str:
        """The job's description (at most 1,024 characters; empty by default)."""
        return self._get_text(lib.bits_job_get_description)

    @description.setter
    def description(self, value: str) -> None:
        self._set(lib.bits_job_set_description, text_arg(value, "description"))

    @property
    def owner(self) -> str:
        """The user the job belongs to (the manager's ``owner`` option, or the OS user name)."""
        return self._get_text(lib.bits_job_get_owner)

    @property
    def priority(self) -> JobPriority:
        """The job's priority (default NORMAL); the scheduler applies a change at once."""
        return enum_or_int(JobPriority, self._get_i32(lib.bits_job_get_priority))  # type: ignore[return-value]

    @priority.setter
    def priority(self, value: JobPriority) -> None:
        self._set(lib.bits_job_set_priority, _int32(value, "priority"))

    @property
    def notify_flags(self) -> NotifyFlags:
        """The NotifyFlags of the job (default JOB_TRANSFERRED | JOB_ERROR). They select the
        events of push callbacks; Manager.events() gets every event whatever the flags."""
        return NotifyFlags(self._get_u32(lib.bits_job_get_notify_flags))

    @notify_flags.setter
    def notify_flags(self, value: NotifyFlags) -> None:
        self._set(lib.bits_job_set_notify_flags, _uint32(value, "notify_flags"))

    @property
    def max_bandwidth(self) -> int:
        """The job's own rate limit in bytes per second (0: none, the default), whatever its
        priority; background jobs are also bound by ``Manager.max_bandwidth``."""
        value = ctypes.c_uint64()
        with self._use() as ptr:
            check(lib.bits_job_get_max_bandwidth(ptr, ctypes.byref(value)))
        return int(value.value)

    @max_bandwidth.setter
    def max_bandwidth(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
            raise InvalidArgument(f"max_bandwidth must be an int in 0..2**64-1, not {value!r}")
        self._set(lib.bits_job_set_max_bandwidth, value)

    @property
    def transfer_policy(self) -> int:
        """The network costs the job may transfer on (BITS_COST_STATE_* bits, or a
        TransferPolicy value; default TransferPolicy.ALWAYS). While ``Manager.network_cost`` is not
        in it the job waits in TRANSIENT_ERROR with BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY."""
        return self._get_u32(lib.bits_job_get_transfer_policy)

    @transfer_policy.setter
    def transfer_policy(self, value: int) -> None:
        self._set(lib.bits_job_set_transfer_policy, _uint32(value, "transfer_policy"))

    @property
    def minimum_retry_delay(self) -> int:
        """Seconds a job in TRANSIENT_ERROR waits before it retries (default 600; 0 retries at
        once). Set it with a number of seconds or a timedelta (rounded up to whole seconds)."""
        return self._get_u32(lib.bits_job_get_minimum_retry_delay)

    @minimum_retry_delay.setter
    def minimum_retry_delay(self, value: Seconds) -> None:
        self._set(lib.bits_job_set_minimum_retry_delay, whole_seconds(value, "minimum_retry_delay"))

    @property
    def no_progress_timeout(self) -> int:
        """Seconds transient errors may last without progress before the job goes to ERROR
        (default 1,209,600: 14 days; 0 makes every error fatal). Set as minimum_retry_delay."""
        return self._get_u32(lib.bits_job_get_no_progress_timeout)

    @no_progress_timeout.setter
    def no_progress_timeout(self, value: Seconds) -> None:
        self._set(lib.bits_job_set_no_progress_timeout, whole_seconds(value, "no_progress_timeout"))

    @property
    def minimum_notification_interval(self) -> float:
        """Seconds between two progress events of the job, at least (default 0.5). Set it with
        seconds or a timedelta (kept to the millisecond)."""
        return self._get_u32(lib.bits_job_get_minimum_notification_interval) / 1000.0

    @minimum_notification_interval.setter
    def minimum_notification_interval(self, value: Seconds) -> None:
        self._set(
            lib.bits_job_set_minimum_notification_interval,
            milliseconds(value, "minimum_notification_interval"),
        )

    @property
    def times(self) -> JobTimes:
        """When the job was created, last changed, and last became TRANSFERRED (UTC datetimes)."""
        t = b.bits_job_times()
        with self._use() as ptr:
            check(lib.bits_job_get_times(ptr, ctypes.byref(t)))
        return JobTimes(
            _utc(t.creation_ms),
            _utc(t.modification_ms),
            _utc(t.transfer_completion_ms) if t.transfer_completion_ms else None,
        )

    @property
    def error_count(self) -> int:
        """How many times the job failed (transient and fatal errors)."""
        return self._get_u32(lib.bits_job_get_error_count)

    def set_notify_callback(
        self,
        callback: Optional[NotifyCallback],
        flags: NotifyFlags = NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR,
    ) -> None:
        """Calls ``callback(job, event)`` for the job's events that `flags` selects
        (IBackgroundCopyJob::SetNotifyInterface + SetNotifyFlags); None removes the registration.

        As in BITS the last registration wins, an event that already happened (TRANSFERRED,
        ERROR) is delivered right after registration, and registrations are not persisted. The
        callback runs on the manager's notification thread, not the caller's: it may call any
        method (complete() included) and must return soon. `job` is a new reference of its own.
        The registration lasts while some reference to the job is open (this one or another),
        until it is replaced or removed, or the manager closes; the callable is kept alive
        meanwhile. An exception it raises is reported through
        sys.unraisablehook and does not stop later events. Manager.events() receives every
        event whatever the flags."""
        flags_value = _uint32(flags, "flags")
        if callback is None:
            with self._use() as ptr:
                hr = lib.bits_job_set_notify_callback(
                    ptr, flags_value, _cb.NULL_CALLBACK, None, _cb.NULL_FREE
                )
                check(hr)
            return
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._use() as ptr:
            key = _cb.register(callback, self._manager)
            # From here the library owns the key: it calls FREE_USER_DATA once, failure included.
            hr = lib.bits_job_set_notify_callback(
                ptr, flags_value, _cb.TRAMPOLINE, key, _cb.FREE_USER_DATA
            )
            check(hr)

    # -- HTTP options -------------------------------------------------------------------------
    @property
    def custom_headers(self) -> Dict[str, str]:
        """Extra request headers (IBackgroundCopyJobHttpOptions::SetCustomHeaders), as a dict;
        empty when none are set. Assign a mapping (or (name, value) pairs) to set them, an empty
        one or None to remove them. The headers openbits sets itself (Host, Range, ...) are
        refused with InvalidArgument; so are CR and LF in names and values. Credentials
        (Authorization: Bearer ..., Cookie) are allowed and go only to each file's own origin.
        Raises AccessDenied once the headers are write-only."""
        text = ctypes.POINTER(ctypes.c_char)()
        with self._use() as ptr:
            check(lib.bits_job_get_custom_headers(ptr, ctypes.byref(text)))
        headers: Dict[str, str] = {}
        for line in take_string(text).split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        return headers

    @custom_headers.setter
    def custom_headers(
        self, value: Union[Mapping[str, str], Iterable[Tuple[str, str]], None]
    ) -> None:
        pairs = (
            [] if value is None else list(value.items() if isinstance(value, Mapping) else value)
        )
        lines = []
        for name, text in pairs:
            if not isinstance(name, str) or not isinstance(text, str):
                raise TypeError("header names and values must be str")
            if any(c in name + text for c in "\r\n\0") or ":" in name or not name.strip():
                # A CR or LF would let a value start a header of its own.
                raise InvalidArgument(f"invalid header {name!r}: {text!r}", HResult.E_INVALIDARG)
            lines.append(f"{name}: {text}\r\n")
        data = text_arg("".join(lines), "custom_headers") if lines else None
        with self._use() as ptr:
            check(lib.bits_job_set_custom_headers(ptr, data))

    def make_custom_headers_write_only(self) -> None:
        """Makes the custom headers write-only (HttpOptions3::MakeCustomHeadersWriteOnly): they
        are still sent, but reading custom_headers raises AccessDenied from now on. Cannot be
        undone."""
        with self._use() as ptr:
            check(lib.bits_job_make_custom_headers_write_only(ptr))

    # -- TLS ------------------------------------------------------------------------------------
    def set_trusted_roots(self, pem_path: Optional[PathArg]) -> None:
        """Trusts the root certificates of a PEM file (absolute path) instead of the platform's,
        for this job only; None gives it the platform's again. Checked now; the path is kept."""
        data = None if pem_path is None else path_arg(pem_path, "pem_path")
        with self._use() as ptr:
            check(lib.bits_job_set_trusted_roots(ptr, data))

    def set_certificate_revocation_list(self, pem_path: Optional[PathArg]) -> None:
        """Checks the server's chain against the CRLs of a PEM file (absolute path); None removes
        the check. A revoked certificate stops the job (0x80072F8A)."""
        data = None if pem_path is None else path_arg(pem_path, "pem_path")
        with self._use() as ptr:
            check(lib.bits_job_set_certificate_revocation_list(ptr, data))

    def set_client_certificate_file(self, cert_pem_path: PathArg, key_pem_path: PathArg) -> None:
        """Presents this client certificate (PEM chain, PEM private key; absolute paths) when a
        server asks for one (SetClientCertificateByName with files). Checked now."""
        cert_b = path_arg(cert_pem_path, "cert_pem_path")
        key_b = path_arg(key_pem_path, "key_pem_path")
        with self._use() as ptr:
            check(lib.bits_job_set_client_certificate_file(ptr, cert_b, key_b))

    def remove_client_certificate(self) -> bool:
        """Removes the client certificate (RemoveClientCertificate); False if there was none."""
        with self._use() as ptr:
            return check(lib.bits_job_remove_client_certificate(ptr)) == HResult.S_OK

    @property
    def client_certificate_file(self) -> Optional[Tuple[str, str]]:
        """The client certificate and key files, or None."""
        cert = ctypes.POINTER(ctypes.c_char)()
        key = ctypes.POINTER(ctypes.c_char)()
        with self._use() as ptr:
            hr = check(
                lib.bits_job_get_client_certificate_file(ptr, ctypes.byref(cert), ctypes.byref(key))
            )
        if hr != HResult.S_OK:
            return None
        return take_string(cert), take_string(key)

    def set_server_certificate_callback(self, callback: Optional[CertificateCallback]) -> None:
        """Calls ``callback(job, host, chain, library_result)`` for each server certificate
        chain (DER bytes, the server's own first) that passed the library's checks, or failed
        only one a SecurityFlags.SSL_IGNORE_* flag hands over (library_result is then its code;
        else 0). Return True (or 0) to accept; anything else refuses, and the job goes to
        TRANSIENT_ERROR with context SERVER_CERTIFICATE_CALLBACK (HttpOptions3::
        SetServerCertificateValidationInterface). An exception refuses too (printed on stderr).

        It runs on a library transfer thread during the TLS handshake: return quickly. Only
        while the job is not active (suspend it first). Not persisted: after the manager is
        reopened the job stops with SERVER_CERT_VALIDATION_INTERFACE_REQUIRED until it is set
        again. None removes it."""
        if callback is None:
            with self._use() as ptr:
                check(
                    lib.bits_job_set_server_certificate_callback(
                        ptr, _cb.NULL_CERTIFICATE_CALLBACK, None, _cb.NULL_FREE
                    )
                )
            return
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._use() as ptr:
            key = _cb.register(callback, self._manager)
            # From here the library owns the key: it calls FREE_USER_DATA once, failure included.
            hr = lib.bits_job_set_server_certificate_callback(
                ptr, _cb.CERTIFICATE_TRAMPOLINE, key, _cb.FREE_USER_DATA
            )
            check(hr)

    @property
    def security_flags(self) -> SecurityFlags:
        """The redirect policy and BG_SSL_* flags (SecurityFlags; default
        REDIRECT_POLICY_ALLOW_SILENT: follow)."""
        return SecurityFlags(self._get_u32(lib.bits_job_get_security_flags))

    @security_flags.setter
    def security_flags(self, value: SecurityFlags) -> None:
        self._set(lib.bits_job_set_security_flags, _uint32(value, "security_flags"))

    def set_credentials(
        self,
        user_name: str,
        password: str,
        target: AuthTarget = AuthTarget.SERVER,
        scheme: AuthScheme = AuthScheme.BASIC,
    ) -> None:
        """Sets credentials (IBackgroundCopyJob2::SetCredentials); BASIC only. Server
        credentials go only to the origin of each file's URL, never to a host it redirects to.
        Kept in memory only: set them again after the manager is reopened."""
        user_b, password_b = text_arg(user_name, "user_name"), text_arg(password, "password")
        with self._use() as ptr:
            hr = lib.bits_job_set_credentials(
                ptr, _int32(target, "target"), _int32(scheme, "scheme"), user_b, password_b
            )
            check(hr)

    def remove_credentials(
        self, target: AuthTarget = AuthTarget.SERVER, scheme: AuthScheme = AuthScheme.BASIC
    ) -> bool:
        """Removes the credentials of `target` and `scheme`; False if none were set."""
        with self._use() as ptr:
            hr = lib.bits_job_remove_credentials(
                ptr, _int32(target, "target"), _int32(scheme, "scheme")
            )
            return check(hr) == HResult.S_OK

    def take_ownership(self) -> None:
        """Makes the job belong to the manager's owner (needs a manager in service mode)."""
        with self._use() as ptr:
            check(lib.bits_job_take_ownership(ptr))

    # -- files ------------------------------------------------------------------------------
    def add_files(self, files: Iterable[Tuple[str, PathArg]]) -> None:
        """Adds several (url, path) files at once (AddFileSet): all of them, or none if one is
        refused (the error is the first refusal's)."""
        pairs = [(text_arg(url, "url"), path_arg(path, "path")) for url, path in files]
        array = (b.bits_file_info * max(1, len(pairs)))()
        for i, (url_b, path_b) in enumerate(pairs):
            array[i].remote_url = url_b
            array[i].local_path = path_b
        with self._use() as ptr:
            check(lib.bits_add_file_set(ptr, len(pairs), array))

    @property
    def file_count(self) -> int:
        """The number of files in the job."""
        return self._get_u32(lib.bits_job_get_file_count)

    def file(self, index: int) -> FileInfo:
        """File `index` (0 .. file_count-1, in the order added): names and progress. Raises
        InvalidArgument for an index out of range."""
        remote = ctypes.POINTER(ctypes.c_char)()
        local = ctypes.POINTER(ctypes.c_char)()
        temporary = ctypes.POINTER(ctypes.c_char)()
        p = b.bits_file_progress()
        with self._use() as ptr:
            hr = lib.bits_job_get_file(
                ptr,
                _uint32(index, "index"),
                ctypes.byref(remote),
                ctypes.byref(local),
                ctypes.byref(temporary),
                ctypes.byref(p),
            )
            check(hr)
        remote_s, local_s, temporary_s = (
            take_string(remote),
            take_string(local),
            take_string(temporary),
        )
        return FileInfo(
            index=index,
            remote_url=remote_s,
            local_path=local_s,
            temporary_path=temporary_s or None,
            progress=FileProgress(
                None if p.bytes_total == b.BITS_SIZE_UNKNOWN else int(p.bytes_total),
                int(p.bytes_transferred),
                bool(p.completed),
            ),
        )

    @property
    def files(self) -> List[FileInfo]:
        """Every file of the job (EnumFiles), in the order added."""
        return [self.file(i) for i in range(self.file_count)]

    def set_remote_url(self, index: int, url: str) -> None:
        """Changes the URL of file `index` (SetRemoteName), e.g. for a fresh signed URL. Bytes
        already transferred are kept if the new URL serves the same content."""
        url_b = text_arg(url, "url")
        with self._use() as ptr:
            check(lib.bits_file_set_remote_name(ptr, _uint32(index, "index"), url_b))

    def replace_remote_prefix(self, old_prefix: str, new_prefix: str) -> bool:
        """Replaces `old_prefix` by `new_prefix` at the start of every file URL that begins with
        it (ReplaceRemotePrefix), all or none. Returns False if no URL began with it."""
        old_b, new_b = text_arg(old_prefix, "old_prefix"), text_arg(new_prefix, "new_prefix")
        with self._use() as ptr:
            return check(lib.bits_job_replace_remote_prefix(ptr, old_b, new_b)) == HResult.S_OK

    # -- waiting --------------------------------------------------------------------------------
    def wait(self, timeout: Optional[Seconds] = None) -> JobState:
        """Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED (a transient
        error does not end the wait) and returns that state. `timeout`: seconds (or a timedelta);
        None waits for ever. Raises openbits.Timeout (also a TimeoutError) when it expires, and
        InvalidState if the manager is closed meanwhile.

        The GIL is released while the library waits: other Python threads run meanwhile."""
        return self._wait(Deadline(timeout), None)

    def _wait(self, deadline: Deadline, stop: Optional[threading.Event]) -> JobState:
        state = ctypes.c_int32()
        while True:
            with self._use() as ptr:
                hr = lib.bits_job_wait(ptr, deadline.next_slice_ms(), ctypes.byref(state))
                if hr != E_TIMEOUT_SIGNED:
                    check(hr)
                    return enum_or_int(JobState, state.value)  # type: ignore[return-value]
            if stop is not None and stop.is_set():
                raise _Abandoned()
            if deadline.expired:
                raise Timeout(
                    f"bits_job_wait: job {self._id} did not reach TRANSFERRED, ERROR, "
                    f"ACKNOWLEDGED or CANCELLED {deadline.describe()}",
                    HResult.E_TIMEOUT,
                )

    async def wait_async(self, timeout: Optional[Seconds] = None) -> JobState:
        """wait() for asyncio: the blocking wait runs in the event loop's default executor
        (a thread; the GIL is released while it blocks), so the loop keeps running. Cancelling
        the awaiting task ends the thread's wait within a fraction of a second."""
        deadline = Deadline(timeout)
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._wait, deadline, stop)
        finally:
            stop.set()
