"""Manager: a queue of jobs kept in a state folder, with its own transfer threads."""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import threading
import uuid
import warnings
import weakref
from collections import deque
from typing import Any, AsyncIterator, Deque, Iterator, List, Optional, Union

from . import _bindings as b
from ._bindings import HResult
from ._enums import EventKind, JobState, JobType, enum_or_int
from ._errors import InvalidArgument, InvalidState, NotFound, Timeout
from ._ffi import (
    E_TIMEOUT_SIGNED,
    PathArg,
    _major_minor,
    check,
    guid_to_uuid,
    lib,
    package_version,
    path_arg,
    text_arg,
    uuid_to_guid,
)
from ._handle import Handle
from ._job import Job, _Abandoned
from ._types import UINT32_MAX, BandwidthSchedule, Deadline, Event, ScheduleWindow, Seconds

_open_managers: "weakref.WeakSet[Manager]" = weakref.WeakSet()


@atexit.register
def _close_open_managers() -> None:
    # Managers still open at exit are closed, so that their progress is recorded and their
    # threads stop before the interpreter goes away.
    for m in list(_open_managers):
        try:
            m.close()
        except Exception:
            pass


def _uint(value: Optional[int], what: str, limit: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= limit:
        raise InvalidArgument(
            f"{what} must be between 0 and {limit}: {value}", HResult.E_INVALIDARG
        )
    return value


def _job_id(value: Union[uuid.UUID, str]) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)  # with or without braces and hyphens
        except ValueError:
            raise InvalidArgument(f"not a job id: {value!r}", HResult.E_INVALIDARG) from None
    raise TypeError(f"a job id is a uuid.UUID or a str, not {type(value).__name__}")


class _Handoff:
    """Between an asyncio wait for an event and its worker thread: an event the worker took after
    the awaiting task went away goes back to the manager's queue instead of being lost."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.delivered: Optional[Event] = None


class Manager(Handle):
    """A BITS job manager (``bits_manager``) on a state folder.

    ``path``: the state folder (str or os.PathLike; relative paths are taken from the current
    folder), created if missing; None selects the per-user default (``$OPENBITS_HOME``, else
    ``$XDG_DATA_HOME/openbits``, else ``~/.local/share/openbits``). One manager at a time may have
    a folder open (a second open raises BitsError 0x80070020).

    Keyword options (bits_manager_open_ex; None or 0 keeps the library default):
    ``max_concurrent_jobs`` (6), ``checkpoint_interval_ms`` (1000), ``checkpoint_bytes`` (8 MiB),
    ``inactivity_timeout_s`` (90 days); ``owner`` (the user the manager acts for: new jobs belong
    to it and it sees only its own; default the OS user name), ``service_mode`` (every owner's
    jobs are visible and the limits do not apply), and BITS's limits ``max_jobs`` (300),
    ``max_jobs_per_owner`` (60), ``max_files_per_job`` (200), ``max_ranges_per_file`` (500);
    ``max_connections_per_host`` (6) and ``files_in_flight`` (6: files of one job transferring at
    once; 1 moves them one after another, as BITS does).

    Use it as a context manager, or call close(): it stops the transfers, records progress and
    joins the manager's threads (up to 5 s). Jobs stay in the folder and continue at the next open.
    """

    _kind = "manager"
    _wait_for_calls = True

    def __init__(
        self,
        path: Optional[PathArg] = None,
        *,
        max_concurrent_jobs: Optional[int] = None,
        checkpoint_interval_ms: Optional[int] = None,
        checkpoint_bytes: Optional[int] = None,
        inactivity_timeout_s: Optional[int] = None,
        owner: Optional[str] = None,
        service_mode: bool = False,
        max_jobs: Optional[int] = None,
        max_jobs_per_owner: Optional[int] = None,
        max_files_per_job: Optional[int] = None,
        max_ranges_per_file: Optional[int] = None,
        max_connections_per_host: Optional[int] = None,
        files_in_flight: Optional[int] = None,
    ) -> None:
        state_dir = None if path is None else path_arg(path, "path")
        options = b.bits_manager_options()
        options.struct_size = ctypes.sizeof(b.bits_manager_options)
        if package_version is not None:
            major, minor = _major_minor(package_version)
            options.required_version = (major << 16) | minor
        options.state_dir = state_dir
        options.max_concurrent_jobs = _uint(max_concurrent_jobs, "max_concurrent_jobs", UINT32_MAX)
        options.checkpoint_interval_ms = _uint(
            checkpoint_interval_ms, "checkpoint_interval_ms", UINT32_MAX
        )
        options.checkpoint_bytes = _uint(checkpoint_bytes, "checkpoint_bytes", 2**64 - 1)
        options.inactivity_timeout_s = _uint(
            inactivity_timeout_s, "inactivity_timeout_s", UINT32_MAX
        )
        options.owner = None if owner is None else text_arg(owner, "owner")
        options.service_mode = 1 if service_mode else 0
        options.max_jobs = _uint(max_jobs, "max_jobs", UINT32_MAX)
        options.max_jobs_per_owner = _uint(max_jobs_per_owner, "max_jobs_per_owner", UINT32_MAX)
        options.max_files_per_job = _uint(max_files_per_job, "max_files_per_job", UINT32_MAX)
        options.max_ranges_per_file = _uint(max_ranges_per_file, "max_ranges_per_file", UINT32_MAX)
        options.max_connections_per_host = _uint(
            max_connections_per_host, "max_connections_per_host", UINT32_MAX
        )
        options.files_in_flight = _uint(files_in_flight, "files_in_flight", UINT32_MAX)
        ptr = ctypes.POINTER(b.bits_manager)()
        check(lib.bits_manager_open_ex(ctypes.byref(options), ctypes.byref(ptr)))
        super().__init__(ptr)
        self._path = None if state_dir is None else os.fsdecode(state_dir)
        self._pending: Deque[Event] = deque()  # events taken for an asyncio wait that went away
        self._pending_lock = threading.Lock()
        _open_managers.add(self)

    def _free(self, ptr: Any) -> None:
        _open_managers.discard(self)
        lib.bits_manager_close(ptr)

    def _finalize(self) -> None:
        if not self.closed:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
        self.close()

    @property
    def path(self) -> Optional[str]:
        """The state folder given to the constructor (made absolute), or None for the default."""
        return self._path

    def __repr__(self) -> str:
        where = self._path if self._path is not None else "default folder"
        return f"<openbits.Manager {where}{' closed' if self.closed else ''}>"

    # -- background manners ---------------------------------------------------------------------
    @property
    def max_bandwidth(self) -> int:
        """The rate limit of every background job together, in bytes per second (0: none).
        FOREGROUND jobs are exempt. Kept in the state folder."""
        value = ctypes.c_uint64()
        with self._use() as ptr:
            check(lib.bits_manager_get_max_bandwidth(ptr, ctypes.byref(value)))
        return int(value.value)

    @max_bandwidth.setter
    def max_bandwidth(self, value: int) -> None:
        limit = _uint(value, "max_bandwidth", 2**64 - 1)
        with self._use() as ptr:
            check(lib.bits_manager_set_max_bandwidth(ptr, limit))

    @property
    def network_cost(self) -> int:
        """What the network costs now, as the application said: one CostState value
        (CostState.UNRESTRICTED until set; not kept)."""
        value = ctypes.c_uint32()
        with self._use() as ptr:
            check(lib.bits_manager_get_network_cost(ptr, ctypes.byref(value)))
        return int(value.value)

    @network_cost.setter
    def network_cost(self, value: int) -> None:
        cost = _uint(value, "network_cost", UINT32_MAX)
        with self._use() as ptr:
            check(lib.bits_manager_set_network_cost(ptr, cost))

    @property
    def bandwidth_schedule(self) -> Optional[BandwidthSchedule]:
        """BITS's bandwidth schedule for background jobs (None: none). Kept in the state folder."""
        s = b.bits_bandwidth_schedule()
        s.struct_size = ctypes.sizeof(b.bits_bandwidth_schedule)
        with self._use() as ptr:
            code = check(lib.bits_manager_get_bandwidth_schedule(ptr, ctypes.byref(s)))
        if code != 0:  # S_FALSE: none
            return None
        maintenance = None
        if s.maintenance_enabled:
            maintenance = ScheduleWindow(
                s.maintenance_days,
                s.maintenance_start_minute,
                s.maintenance_end_minute,
                tuple(s.maintenance_limits),
            )
        return BandwidthSchedule(
            ScheduleWindow(s.work_days, s.work_start_minute, s.work_end_minute, tuple(s.work_limits)),
            tuple(s.other_limits),
            maintenance,
        )

    @bandwidth_schedule.setter
    def bandwidth_schedule(self, value: Optional[BandwidthSchedule]) -> None:
        if value is None:
            with self._use() as ptr:
                check(lib.bits_manager_set_bandwidth_schedule(ptr, None))
            return
        s = b.bits_bandwidth_schedule()
        s.struct_size = ctypes.sizeof(b.bits_bandwidth_schedule)
        w = value.work
        s.work_days, s.work_start_minute, s.work_end_minute = w.days, w.start_minute, w.end_minute
        s.work_limits[:] = list(w.limits)
        s.other_limits[:] = list(value.other_limits)
        if value.maintenance is not None:
            m = value.maintenance
            s.maintenance_enabled = 1
            s.maintenance_days, s.maintenance_start_minute = m.days, m.start_minute
            s.maintenance_end_minute = m.end_minute
            s.maintenance_limits[:] = list(m.limits)
        with self._use() as ptr:
            check(lib.bits_manager_set_bandwidth_schedule(ptr, ctypes.byref(s)))

    # -- jobs -----------------------------------------------------------------------------------
    def create_job(self, display_name: str, job_type: JobType = JobType.DOWNLOAD) -> Job:
        """Creates a job (IBackgroundCopyManager::CreateJob). It starts SUSPENDED: add files, then
        resume(). Only DOWNLOAD is implemented (the others raise NotSupported)."""
        name = text_arg(display_name, "display_name")
        if isinstance(job_type, bool) or not isinstance(job_type, int):
            raise TypeError(f"job_type must be a JobType, not {type(job_type).__name__}")
        guid = b.bits_guid()
        job = ctypes.POINTER(b.bits_job)()
        with self._use() as ptr:
            check(
                lib.bits_create_job(ptr, name, int(job_type), ctypes.byref(guid), ctypes.byref(job))
            )
        return Job(self, job, guid_to_uuid(guid))

    def get_job(self, job_id: Union[uuid.UUID, str]) -> Job:
        """The job with this id (a uuid.UUID, or its text with or without braces). Raises
        NotFound if there is none (or it was completed or cancelled)."""
        jid = _job_id(job_id)
        guid = uuid_to_guid(jid)
        job = ctypes.POINTER(b.bits_job)()
        with self._use() as ptr:
            check(lib.bits_get_job(ptr, ctypes.byref(guid), ctypes.byref(job)))
        return Job(self, job, jid)

    def job_ids(self, all_owners: bool = False) -> List[uuid.UUID]:
        """The ids of the owner's jobs not in a final state, in creation order (EnumJobs).
        ``all_owners=True`` lists every owner's (needs ``service_mode``, else AccessDenied)."""
        ids = ctypes.POINTER(b.bits_guid)()
        count = ctypes.c_uint32()
        flags = b.BITS_JOB_ENUM_ALL_USERS if all_owners else 0
        with self._use() as ptr:
            check(lib.bits_enum_jobs(ptr, flags, ctypes.byref(ids), ctypes.byref(count)))
        try:
            return [guid_to_uuid(ids[i]) for i in range(count.value)]
        finally:
            lib.bits_free(ctypes.cast(ids, ctypes.c_void_p))

    def jobs(self, all_owners: bool = False) -> List[Job]:
        """References to the jobs job_ids() lists. A job completed or cancelled between the
        listing and its lookup is left out."""
        out = []
        for jid in self.job_ids(all_owners):
            try:
                out.append(self.get_job(jid))
            except NotFound:
                pass
        return out

    # -- events ---------------------------------------------------------------------------------
    def next_event(self, timeout: Optional[Seconds] = None) -> Event:
        """The next event of any of this manager's jobs, waiting up to `timeout` seconds (None:
        no limit; 0: do not wait). Raises openbits.Timeout if none came. Events come in order;
        each goes to one caller. The GIL is released while the library waits."""
        return self._next_event(Deadline(timeout), None)

    def _take_pending(self) -> Optional[Event]:
        with self._pending_lock:
            return self._pending.popleft() if self._pending else None

    def _next_event(self, deadline: Deadline, handoff: Optional[_Handoff]) -> Event:
        event = b.bits_event()
        while True:
            pending = self._take_pending()
            if pending is not None:
                return self._deliver(pending, handoff)
            with self._use() as ptr:
                hr = lib.bits_manager_next_event(ptr, deadline.next_slice_ms(), ctypes.byref(event))
                if hr != E_TIMEOUT_SIGNED:
                    check(hr)
                    return self._deliver(self._event(event), handoff)
            if handoff is not None and handoff.stop.is_set():
                raise _Abandoned()
            if deadline.expired:
                raise Timeout(
                    f"bits_manager_next_event: no event {deadline.describe()}", HResult.E_TIMEOUT
                )

    def _deliver(self, event: Event, handoff: Optional[_Handoff]) -> Event:
        if handoff is None:
            return event
        with handoff.lock:
            if handoff.stop.is_set():
                self._put_back(event)
                raise _Abandoned()
            handoff.delivered = event
        return event

    def _put_back(self, event: Event) -> None:
        with self._pending_lock:
            self._pending.appendleft(event)

    @staticmethod
    def _event(e: b.bits_event) -> Event:
        return Event(
            job_id=guid_to_uuid(e.job_id),
            kind=enum_or_int(EventKind, e.kind),
            state=enum_or_int(JobState, e.state),
            code=enum_or_int(HResult, e.code & 0xFFFFFFFF),
            file_index=int(e.file_index),
        )

    def events(self, timeout: Optional[Seconds] = None) -> Iterator[Event]:
        """Iterates over events as they come. The iteration ends when no event comes within
        `timeout` seconds (None: never), or when the manager is closed (from another thread)."""
        while True:
            if self.closed:
                return
            try:
                yield self.next_event(timeout)
            except Timeout:
                return
            except InvalidState:
                if self.closed:
                    return
                raise

    async def next_event_async(self, timeout: Optional[Seconds] = None) -> Event:
        """next_event() for asyncio: the wait runs in the event loop's default executor (a
        thread; ctypes releases the GIL during the call), so the loop keeps running. If the
        awaiting task is cancelled, an event the thread took meanwhile is not lost: the next
        call returns it."""
        deadline = Deadline(timeout)
        handoff = _Handoff()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._next_event, deadline, handoff)
        except BaseException:
            with handoff.lock:
                handoff.stop.set()
                if handoff.delivered is not None:  # taken, but its task is gone
                    self._put_back(handoff.delivered)
                    handoff.delivered = None
            raise

    async def events_async(self, timeout: Optional[Seconds] = None) -> AsyncIterator[Event]:
        """events() for ``async for``: ends when no event comes within `timeout` seconds (None:
        never) or the manager is closed."""
        while not self.closed:
            try:
                yield await self.next_event_async(timeout)
            except Timeout:
                return
            except InvalidState:
                if self.closed:
                    return
                raise
