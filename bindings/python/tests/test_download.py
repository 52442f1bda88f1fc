"""Downloads from the real test server, byte for byte."""

from __future__ import annotations

import os
import time
from pathlib import Path

import openbits
from openbits import HResult, JobState


def test_download_byte_for_byte(server, manager, dest: Path) -> None:
    job = manager.create_job("two files", openbits.JobType.DOWNLOAD)
    assert job.state == JobState.SUSPENDED
    job.add_file(server.url("/a.bin"), str(dest / "a.bin"))  # str
    job.add_file(server.url("/b.bin"), dest / "b.bin")  # os.PathLike
    p = job.progress
    assert (p.files_total, p.files_transferred, p.bytes_transferred) == (2, 0, 0)
    job.resume()
    assert job.wait(timeout=60) == JobState.TRANSFERRED
    assert job.state == JobState.TRANSFERRED
    size = len(server.files["/a.bin"]) + len(server.files["/b.bin"])
    assert job.progress == openbits.Progress(size, size, 2, 2)
    assert job.progress.fraction == 1.0
    assert not (dest / "a.bin").exists(), "files appear only at complete"
    assert job.complete() == HResult.S_OK
    assert job.state == JobState.ACKNOWLEDGED
    assert (dest / "a.bin").read_bytes() == server.files["/a.bin"]
    assert (dest / "b.bin").read_bytes() == server.files["/b.bin"]
    assert sorted(os.listdir(dest)) == ["a.bin", "b.bin"], "no BIT*.tmp left behind"
    job.close()


def test_relative_path_is_taken_from_the_current_folder(server, manager, dest, monkeypatch) -> None:
    monkeypatch.chdir(dest)
    with manager.create_job("relative") as job:
        job.add_file(server.url("/small.txt"), "small.txt")
        job.resume()
        assert job.wait(30) == JobState.TRANSFERRED
        job.complete()
    assert (dest / "small.txt").read_bytes() == server.files["/small.txt"]


def test_complete_before_transferred_is_partial(server, manager, dest) -> None:
    job = manager.create_job("slow")
    job.add_file(server.url("/big.bin?rate=20000"), dest / "big.bin")
    job.resume()
    deadline = time.monotonic() + 10
    while job.progress.bytes_transferred == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = job.complete()
    assert result == HResult.S_PARTIAL_COMPLETE
    assert openbits.succeeded(result)
    assert job.state == JobState.ACKNOWLEDGED
    assert os.listdir(dest) == [], "the partial file is deleted"


def test_suspend_and_resume_continue(server, manager, dest) -> None:
    job = manager.create_job("suspended")
    job.add_file(server.url("/a.bin"), dest / "a.bin")
    job.resume()
    job.suspend()
    assert job.state == JobState.SUSPENDED
    job.resume()
    assert job.wait(60) == JobState.TRANSFERRED
    job.complete()
    assert (dest / "a.bin").read_bytes() == server.files["/a.bin"]


def test_cancel_deletes_temporary_files(server, manager, dest) -> None:
    job = manager.create_job("cancelled")
    job.add_file(server.url("/big.bin?rate=20000"), dest / "big.bin")
    job.resume()
    assert job.cancel() == HResult.S_OK
    assert job.state == JobState.CANCELLED
    assert job.state.is_final
    assert os.listdir(dest) == []
