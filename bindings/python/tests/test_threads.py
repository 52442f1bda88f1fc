"""Threads: the GIL is released during blocking waits; closing is safe with calls in flight."""

from __future__ import annotations

import gc
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, List

import pytest

import openbits
from openbits import JobState


def _count_for(seconds: float) -> int:
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
    return n


def _progress_while(blocking: Callable[[], None], seconds: float) -> float:
    """The rate at which this thread counts while `blocking` (which must last `seconds`, then
    raise openbits.Timeout) runs in another thread, relative to its rate alone."""
    baseline = _count_for(0.3) / 0.3
    errors: List[BaseException] = []

    def run() -> None:
        try:
            blocking()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.05)  # let it enter the library
    window = seconds - 0.35
    during = _count_for(window) / window
    assert t.is_alive(), "the wait ended early"
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], openbits.Timeout), errors
    return during / baseline


def test_gil_released_during_job_wait(server, manager, dest: Path) -> None:
    job = manager.create_job("never finishes")
    job.add_file(server.url("/big.bin?rate=1000"), dest / "big.bin")
    job.resume()
    ratio = _progress_while(lambda: job.wait(timeout=1.5), 1.5)
    # With the GIL held for the wait the counter would barely move; released, it runs at about
    # its full rate (the machine may be busy: ask for a fifth).
    assert ratio > 0.2, f"the counting thread ran at {ratio:.0%} of its rate during job.wait"
    assert job.state in (JobState.CONNECTING, JobState.TRANSFERRING, JobState.QUEUED)
    job.cancel()


def test_gil_released_during_next_event(manager) -> None:
    ratio = _progress_while(lambda: manager.next_event(timeout=1.5), 1.5)
    assert ratio > 0.2, f"the counting thread ran at {ratio:.0%} of its rate during next_event"


def test_job_after_manager_close_raises_invalid_state(server, state_dir: Path, dest: Path) -> None:
    m = openbits.Manager(state_dir)
    job = m.create_job("orphan")
    job.add_file(server.url("/big.bin?rate=1000"), dest / "big.bin")
    job.resume()
    results: List[BaseException] = []

    def waiter() -> None:
        try:
            job.wait()
        except BaseException as e:  # noqa: BLE001
            results.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    m.close()
    t.join(10)
    assert not t.is_alive()
    assert len(results) == 1 and isinstance(results[0], openbits.InvalidState), results
    for call in (
        lambda: job.state,
        lambda: job.progress,
        lambda: job.error,
        job.resume,
        job.suspend,
        job.cancel,
        job.complete,
        lambda: job.wait(0),
        lambda: job.add_file(server.url("/b.bin"), dest / "b.bin"),
    ):
        with pytest.raises(openbits.InvalidState):
            call()
    with pytest.raises(openbits.InvalidState):
        job.minimum_retry_delay = 1
    with pytest.raises(openbits.InvalidState, match="manager is closed"):
        m.create_job("after close")
    with pytest.raises(openbits.InvalidState):
        m.jobs()
    with pytest.raises(openbits.InvalidState):
        m.next_event(0)
    assert "?" in repr(job)
    job.close()
    m.close()  # idempotent
    # The folder is free again, and the job is still there.
    with openbits.Manager(state_dir) as again:
        assert again.job_ids() == [job.id]
        again.get_job(job.id).cancel()


def test_closing_a_job_reference_while_another_thread_waits(server, manager, dest: Path) -> None:
    job = manager.create_job("closed under a waiter")
    job.add_file(server.url("/big.bin?rate=1000"), dest / "big.bin")
    job.resume()
    jid = job.id
    results: List[BaseException] = []

    def waiter() -> None:
        try:
            job.wait(10)
        except BaseException as e:  # noqa: BLE001
            results.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    job.close()  # the reference is released by the wait's thread once its call returns
    t.join(5)
    assert not t.is_alive()
    assert len(results) == 1 and isinstance(results[0], openbits.InvalidState), results
    assert "closed" in str(results[0])
    with pytest.raises(openbits.InvalidState):
        job.state
    manager.get_job(jid).cancel()  # the job itself went on


def test_concurrent_calls_from_many_threads(server, manager, dest: Path) -> None:
    job = manager.create_job("shared")
    job.add_file(server.url("/a.bin"), dest / "a.bin")
    job.resume()
    errors: List[BaseException] = []

    def poll() -> None:
        try:
            for _ in range(200):
                job.progress
                job.state
                manager.job_ids()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for t in threads:
        t.start()
    assert job.wait(60) == JobState.TRANSFERRED
    for t in threads:
        t.join()
    assert errors == []
    job.complete()


def test_garbage_collection_closes(tmp_path: Path) -> None:
    m = openbits.Manager(tmp_path / "s")
    job = m.create_job("collected")
    jid = job.id
    del job
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del m
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    with openbits.Manager(tmp_path / "s") as again:  # the lock was released
        assert again.job_ids() == [jid]


def test_job_keeps_its_manager_alive(tmp_path: Path) -> None:
    job = openbits.Manager(tmp_path / "s").create_job("outlives the name")
    gc.collect()
    assert job.state == JobState.SUSPENDED
    m = job.manager
    job.close()
    m.close()


def test_context_managers(tmp_path: Path) -> None:
    with openbits.Manager(tmp_path / "s") as m:
        with m.create_job("ctx") as job:
            assert not job.closed
        assert job.closed
        with pytest.raises(openbits.InvalidState, match="job reference is closed"):
            job.resume()
    assert m.closed
    assert "closed" in repr(m) and "closed" in repr(job)
