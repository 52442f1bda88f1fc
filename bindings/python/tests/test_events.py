"""Events (bits_manager_next_event) and the asyncio waits."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import openbits
from openbits import EventKind, HResult, JobState


def test_transferred_event_after_a_download(server, manager, dest: Path) -> None:
    job = manager.create_job("events")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.add_file(server.url("/b.bin"), dest / "b.bin")
    job.resume()
    seen = []
    for event in manager.events(timeout=30):
        assert isinstance(event, openbits.Event)
        seen.append(event)
        if event.kind == EventKind.JOB_TRANSFERRED:
            break
    last = seen[-1]
    assert last.kind == EventKind.JOB_TRANSFERRED, seen
    assert last.job_id == job.id
    assert last.state == JobState.TRANSFERRED
    assert last.code == HResult.S_OK
    files = [e.file_index for e in seen if e.kind == EventKind.FILE_TRANSFERRED]
    assert files == [0, 1]
    assert all(e.job_id == job.id for e in seen)
    assert any(e.kind == EventKind.JOB_MODIFICATION for e in seen)
    job.complete()


def test_error_event_carries_the_code(server, manager, dest: Path) -> None:
    job = manager.create_job("error event")
    job.add_file(server.url("/a.bin?status=404"), dest / "a.bin")
    job.resume()
    errors = []
    for e in manager.events(timeout=30):
        if e.kind == EventKind.JOB_ERROR:
            errors.append(e)
            break
    errors += [e for e in manager.events(timeout=0.5) if e.kind == EventKind.JOB_ERROR]
    assert len(errors) == 1
    assert errors[0].job_id == job.id
    assert errors[0].code == openbits.http_error(404)
    assert errors[0].state == JobState.ERROR


def test_next_event_timeout(manager) -> None:
    t0 = time.monotonic()
    with pytest.raises(openbits.Timeout) as info:
        manager.next_event(timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 3
    assert isinstance(info.value, TimeoutError)
    assert info.value.hresult == HResult.E_TIMEOUT
    with pytest.raises(openbits.Timeout):
        manager.next_event(timeout=0)
    assert list(manager.events(timeout=0)) == []


def test_events_iteration_ends_when_the_manager_closes(tmp_path: Path) -> None:
    m = openbits.Manager(tmp_path / "s")
    got = []
    ended = threading.Event()

    def consume() -> None:
        for e in m.events():  # no timeout: ends only at close
            got.append(e)
        ended.set()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    m.close()
    assert time.monotonic() - t0 < 6
    t.join(5)
    assert ended.is_set()


def test_asyncio_wait_and_events(server, manager, dest: Path) -> None:
    job = manager.create_job("asyncio")
    job.add_file(server.url("/a.bin?rate=1300000"), dest / "a.bin")  # about a second

    async def main() -> None:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        job.resume()
        state = await job.wait_async(timeout=60)
        done.set()
        await t
        assert state == JobState.TRANSFERRED
        assert ticks > 10, "the event loop ran while the job was awaited"

        kinds = []
        while True:
            event = await manager.next_event_async(timeout=10)
            assert event.job_id == job.id
            kinds.append(event.kind)
            if event.kind == EventKind.JOB_TRANSFERRED:
                break
        assert EventKind.FILE_TRANSFERRED in kinds
        with pytest.raises(openbits.Timeout):
            await manager.next_event_async(timeout=0.2)
        with pytest.raises(asyncio.TimeoutError):  # asyncio's own timeout cancels the wait
            await asyncio.wait_for(manager.next_event_async(), 0.3)
        collected = [e async for e in manager.events_async(timeout=0.2)]
        assert collected == []

    asyncio.run(main())
    assert job.complete() == HResult.S_OK
    assert (dest / "a.bin").read_bytes() == server.files["/a.bin"]


def test_cancelled_async_wait_does_not_lose_events(server, manager, dest: Path) -> None:
    async def main() -> openbits.Job:
        waiting = asyncio.create_task(manager.next_event_async())
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        job = manager.create_job("after a cancelled wait")
        job.add_file(server.url("/small.txt"), dest / "small.txt")
        job.resume()
        await job.wait_async(30)
        seen = []
        async for e in manager.events_async(timeout=1):
            seen.append(e.kind)
        assert EventKind.JOB_TRANSFERRED in seen
        return job

    job = asyncio.run(main())
    job.complete()


def test_event_taken_for_a_vanished_waiter_is_put_back(server, manager, dest: Path) -> None:
    # White box: the worker thread of an abandoned next_event_async hands its event back.
    from openbits._job import _Abandoned
    from openbits._manager import _Handoff
    from openbits._types import Deadline

    job = manager.create_job("handoff")
    job.suspend()  # a MODIFICATION event at least
    handoff = _Handoff()
    handoff.stop.set()
    with pytest.raises(_Abandoned):
        manager._next_event(Deadline(5), handoff)
    event = manager.next_event(timeout=0)
    assert event.job_id == job.id
