"""Value types: progress, a job's error, an event; and the conversion of timeouts."""

from __future__ import annotations

import datetime
import math
import time
import uuid
from dataclasses import dataclass
from typing import Optional, Union

from ._bindings import HResult
from ._enums import ErrorContext, EventKind, JobState
from ._errors import InvalidArgument, hresult_name

Seconds = Union[int, float, datetime.timedelta]

UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class ReplyProgress:
    """An upload-reply job's reply (BG_JOB_REPLY_PROGRESS)."""

    bytes_total: Optional[int]
    """The reply's size; None until the server's answer gives it."""
    bytes_transferred: int


@dataclass(frozen=True)
class Progress:
    """A job's progress (BG_JOB_PROGRESS)."""

    bytes_total: Optional[int]
    """Bytes of every file together; None while the size of some file is not known yet."""
    bytes_transferred: int
    files_total: int
    files_transferred: int

    @property
    def fraction(self) -> Optional[float]:
        """bytes_transferred / bytes_total (1.0 for an empty job); None while the total is
        unknown."""
        if self.bytes_total is None:
            return None
        if self.bytes_total == 0:
            return 1.0
        return self.bytes_transferred / self.bytes_total


@dataclass(frozen=True)
class FileProgress:
    """A file's progress (BG_FILE_PROGRESS)."""

    bytes_total: Optional[int]
    """None until the size is known."""
    bytes_transferred: int
    completed: bool


@dataclass(frozen=True)
class FileInfo:
    """One file of a job: its names and progress (IBackgroundCopyFile)."""

    index: int
    remote_url: str
    local_path: str
    temporary_path: Optional[str]
    """The BIT*.tmp file the bytes go to; None until the file's transfer first starts."""
    progress: FileProgress


@dataclass(frozen=True)
class JobTimes:
    """A job's times (BG_JOB_TIMES), as timezone-aware UTC datetimes."""

    creation: datetime.datetime
    modification: datetime.datetime
    """The last change of a property or the state, or the last recorded progress."""
    transfer_completion: Optional[datetime.datetime]
    """When the job last became TRANSFERRED; None if it has not."""


@dataclass(frozen=True)
class JobError:
    """A job's error (IBackgroundCopyJob::GetError), for jobs in ERROR or TRANSIENT_ERROR."""

    context: Union[ErrorContext, int]
    code: int
    """The failure's HRESULT, unsigned: an HResult member when it is a known code, else an int
    such as 0x80190194 (openbits.http_error(404))."""
    description: str
    """The library's text, e.g. ``HTTP 404 Not Found: http://host/x.bin``."""
    file_index: Optional[int] = None
    """The file the error belongs to (IBackgroundCopyError::GetFile); None if none."""
    protocol: Optional[str] = None
    """``http``, ``https`` or ``file`` for an error of a file; else None."""
    context_description: Optional[str] = None
    """A sentence describing the error's context."""

    @property
    def code_name(self) -> Optional[str]:
        return hresult_name(self.code)


@dataclass(frozen=True)
class Event:
    """An event of one of a manager's jobs (bits_manager_next_event)."""

    job_id: uuid.UUID
    kind: Union[EventKind, int]
    state: Union[JobState, int]
    """The job's state when the event was queued."""
    code: int
    """For JOB_ERROR the job's error code (unsigned HRESULT, an HResult member when known); else
    HResult.S_OK."""
    file_index: int
    """For FILE_TRANSFERRED the file's index in the job; else 0 (or the file transferring)."""


def seconds(value: Seconds, what: str) -> float:
    """A duration in seconds, from a number or a timedelta; never negative."""
    if isinstance(value, datetime.timedelta):
        s = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        s = float(value)
    else:
        raise TypeError(
            f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}"
        )
    if math.isnan(s) or s < 0:
        raise InvalidArgument(f"{what} must not be negative: {value!r}", HResult.E_INVALIDARG)
    return s


def whole_seconds(value: Seconds, what: str) -> int:
    """A duration as the library's uint32 seconds, rounded up (the delays are minimums)."""
    s = seconds(value, what)
    if s > UINT32_MAX:
        raise InvalidArgument(
            f"{what} exceeds {UINT32_MAX} seconds: {value!r}", HResult.E_INVALIDARG
        )
    return int(math.ceil(s))


def milliseconds(value: Seconds, what: str) -> int:
    """A duration as the library's uint32 milliseconds, rounded up."""
    s = seconds(value, what)
    if s * 1000 > UINT32_MAX:
        raise InvalidArgument(f"{what} exceeds {UINT32_MAX} ms: {value!r}", HResult.E_INVALIDARG)
    return int(math.ceil(round(s * 1000, 6)))


class Deadline:
    """A wait of `timeout` seconds (None: no limit) cut into slices of at most `slice_ms`, so that
    a blocked call returns now and then (Ctrl-C, close(), an abandoned asyncio wait)."""

    SLICE_MS = 200

    def __init__(self, timeout: Optional[Seconds], what: str = "timeout") -> None:
        self.timeout = None if timeout is None else seconds(timeout, what)
        self.end = None if self.timeout is None else time.monotonic() + self.timeout

    def next_slice_ms(self) -> int:
        if self.end is None:
            return self.SLICE_MS
        left = self.end - time.monotonic()
        return max(0, min(self.SLICE_MS, int(math.ceil(left * 1000))))

    @property
    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def describe(self) -> str:
        return "at once" if self.timeout == 0 else f"within {self.timeout:g} s"


#: A schedule limit: no background transfer at all (BITS_BANDWIDTH_BLOCKED).
BANDWIDTH_BLOCKED = 2**64 - 1


@dataclass(frozen=True)
class ScheduleWindow:
    """A weekly window of a bandwidth schedule: the days it starts on (bit 0 Sunday ... bit 6
    Saturday), its minutes [start, end) after local midnight (an end before the start runs past
    midnight, an equal one is the whole day), and its limits for HIGH, NORMAL, LOW in bytes per
    second (0: none; BANDWIDTH_BLOCKED: no transfer)."""

    days: int
    start_minute: int
    end_minute: int
    limits: tuple


@dataclass(frozen=True)
class BandwidthSchedule:
    """Manager.bandwidth_schedule: limits inside the work hours, others outside them, and a
    maintenance window that overrides both."""

    work: ScheduleWindow
    other_limits: tuple
    maintenance: Optional[ScheduleWindow] = None
