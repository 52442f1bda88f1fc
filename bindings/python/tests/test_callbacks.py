"""Push callbacks (bits_job_set_notify_callback): lifetime, thread, exceptions."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import openbits
from openbits import EventKind, JobState, NotifyFlags, _callbacks


def _wait_for(predicate: Any, seconds: float = 30) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def test_callback_gets_the_transferred_event_and_may_complete(server, manager, dest: Path) -> None:
    done = threading.Event()
    calls: List[Tuple[str, openbits.Event, Any]] = []

    def on_event(job: openbits.Job, event: openbits.Event) -> None:
        calls.append((threading.current_thread().name, event, job.id))
        if event.kind == EventKind.JOB_TRANSFERRED:
            calls.append(("complete", event, job.complete()))  # any call is allowed here
            done.set()

    job = manager.create_job("callback")
    job.add_file(server.url("/b.bin"), dest / "b.bin")
    job.set_notify_callback(on_event)  # default flags: TRANSFERRED | ERROR
    assert job.notify_flags == NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR
    job.resume()
    assert done.wait(30)
    thread, event, jid = calls[0]
    assert thread != threading.main_thread().name
    assert event.kind == EventKind.JOB_TRANSFERRED and event.job_id == job.id == jid
    assert calls[1][0] == "complete" and calls[1][2] == openbits.HResult.S_OK
    assert job.state == JobState.ACKNOWLEDGED
    assert (dest / "b.bin").read_bytes() == server.files["/b.bin"]


def test_flags_select_events_and_past_events_are_delivered(server, manager, dest: Path) -> None:
    job = manager.create_job("flags")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.add_file(server.url("/b.bin"), dest / "b.bin")
    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    kinds: List[Any] = []
    # Registered after the fact: the TRANSFERRED event comes right after registration.
    job.set_notify_callback(lambda j, e: kinds.append(e.kind), NotifyFlags.JOB_TRANSFERRED)
    assert _wait_for(lambda: EventKind.JOB_TRANSFERRED in kinds)
    assert set(kinds) == {EventKind.JOB_TRANSFERRED}
    job.set_notify_callback(None)
    job.complete()


def test_an_exception_in_a_callback_is_reported_not_raised(
    server, manager, dest: Path, monkeypatch
) -> None:
    reported: List[Any] = []
    monkeypatch.setattr("sys.unraisablehook", lambda args: reported.append(args.exc_value))
    seen: List[Any] = []

    def bad(job: openbits.Job, event: openbits.Event) -> None:
        seen.append(event.kind)
        raise RuntimeError("boom in a callback")

    job = manager.create_job("raises")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.add_file(server.url("/b.bin"), dest / "b.bin")
    job.set_notify_callback(bad, NotifyFlags.FILE_TRANSFERRED | NotifyFlags.JOB_TRANSFERRED)
    job.resume()
    assert _wait_for(lambda: EventKind.JOB_TRANSFERRED in seen)
    assert seen.count(EventKind.FILE_TRANSFERRED) == 2, "later events still came"
    assert _wait_for(lambda: len(reported) == len(seen))
    assert all(isinstance(e, RuntimeError) and str(e) == "boom in a callback" for e in reported)
    assert job.complete() == openbits.HResult.S_OK  # the process and the job are fine


def test_registered_callable_stays_alive_and_is_freed_after(
    server, state_dir: Path, dest: Path
) -> None:
    before = _callbacks.registered_count()
    got = threading.Event()

    class Handler:
        def __call__(self, job: openbits.Job, event: openbits.Event) -> None:
            got.set()

    m = openbits.Manager(state_dir)
    job = m.create_job("lifetime")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    handler = Handler()
    alive = weakref.ref(handler)
    job.set_notify_callback(handler)
    del handler
    gc.collect()
    assert alive() is not None, "the registration keeps the callable"
    assert _callbacks.registered_count() == before + 1
    job.resume()
    assert got.wait(30)

    job.set_notify_callback(Handler())  # replaces: the first registration is freed
    assert _wait_for(lambda: alive() is None and _callbacks.registered_count() == before + 1, 5)
    m.close()  # closing the manager ends the registration
    gc.collect()
    assert _wait_for(lambda: _callbacks.registered_count() == before, 5)
    job.close()


def test_set_notify_callback_errors(manager) -> None:
    job = manager.create_job("bad registration")
    before = _callbacks.registered_count()
    with pytest.raises(openbits.NotSupported):
        job.set_notify_callback(lambda j, e: None, 0x4000)  # undefined flag
    assert _callbacks.registered_count() == before, "freed by the library on failure"
    with pytest.raises(TypeError):
        job.set_notify_callback(42)  # type: ignore[arg-type]
    job.cancel()
    with pytest.raises(openbits.InvalidState):
        job.set_notify_callback(lambda j, e: None)
    assert _callbacks.registered_count() == before
