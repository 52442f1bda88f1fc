"""openbits: Windows BITS (Background Intelligent Transfer Service) job semantics, as a library.

    import openbits

    with openbits.Manager("/var/tmp/myapp-transfers") as m:
        job = m.create_job("nightly update")              # starts SUSPENDED
        job.add_file("https://example.com/update.bin", "/var/tmp/update.bin")
        job.resume()                                      # transfers on the manager's threads
        if job.wait(timeout=3600) == openbits.JobState.TRANSFERRED:
            job.complete()                                # the file appears, atomically
        else:
            print(job.error)                              # JobError(context, code, description)
            job.cancel()

This package is a ctypes binding of libopenbits (shipped inside it; ``OPENBITS_LIBRARY`` points
at another copy). Every call may come from any thread; the blocking ones (Job.wait,
Manager.next_event, Job.complete, Job.cancel, Manager.close) release the GIL while they block.
Failures raise BitsError (``.hresult``, ``.message``) or one of its subclasses.
"""

from __future__ import annotations

from ._bindings import HResult
from ._enums import (
    AuthScheme,
    AuthTarget,
    CostState,
    ErrorContext,
    EventKind,
    JobPriority,
    JobState,
    JobType,
    NotifyFlags,
    SecurityFlags,
    TransferPolicy,
)
from ._errors import (
    AccessDenied,
    BitsError,
    InvalidArgument,
    InvalidState,
    NotFound,
    NotSupported,
    Timeout,
    hresult_name,
    http_error,
    succeeded,
)
from ._ffi import error_description as describe
from ._ffi import library_path, library_version, library_version_info, package_version
from ._job import Job
from ._manager import Manager
from ._types import (
    BANDWIDTH_BLOCKED,
    BandwidthSchedule,
    Event,
    FileInfo,
    FileProgress,
    JobError,
    JobTimes,
    Progress,
    ReplyProgress,
    ScheduleWindow,
)

__version__: str = package_version or "0+unknown"

__all__ = [
    "AccessDenied",
    "AuthScheme",
    "AuthTarget",
    "BANDWIDTH_BLOCKED",
    "BandwidthSchedule",
    "BitsError",
    "CostState",
    "ErrorContext",
    "Event",
    "EventKind",
    "FileInfo",
    "FileProgress",
    "HResult",
    "InvalidArgument",
    "InvalidState",
    "Job",
    "JobError",
    "JobPriority",
    "JobState",
    "JobTimes",
    "JobType",
    "Manager",
    "NotFound",
    "NotSupported",
    "NotifyFlags",
    "Progress",
    "ReplyProgress",
    "ScheduleWindow",
    "SecurityFlags",
    "Timeout",
    "TransferPolicy",
    "describe",
    "hresult_name",
    "http_error",
    "library_path",
    "library_version",
    "library_version_info",
    "succeeded",
    "__version__",
]
