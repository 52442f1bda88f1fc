"""Job properties, files and error detail (the IBackgroundCopyJob / IBackgroundCopyFile surface)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import openbits
from openbits import HResult, JobPriority, JobState, NotifyFlags


def test_properties_round_trip_and_persist(state_dir: Path) -> None:
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    with openbits.Manager(state_dir, owner="alice") as m:
        job = m.create_job("first name")
        assert job.job_type == openbits.JobType.DOWNLOAD
        assert job.display_name == "first name"
        assert job.description == ""
        assert job.owner == "alice"
        assert job.priority == JobPriority.NORMAL
        assert job.notify_flags == NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR
        assert (job.minimum_retry_delay, job.no_progress_timeout) == (600, 1209600)
        assert job.minimum_notification_interval == 0.5
        assert job.error_count == 0
        times = job.times
        assert before <= times.creation <= times.modification
        assert times.transfer_completion is None

        job.display_name = "second name ✓"
        job.description = "nightly update"
        job.priority = JobPriority.HIGH
        job.notify_flags = NotifyFlags.JOB_MODIFICATION | NotifyFlags.FILE_TRANSFERRED
        job.minimum_retry_delay = datetime.timedelta(minutes=2)
        job.no_progress_timeout = 0.2  # rounded up to whole seconds
        job.minimum_notification_interval = 0.25
        jid = job.id

    with openbits.Manager(state_dir, owner="alice") as m:
        job = m.get_job(jid)
        assert job.display_name == "second name ✓"
        assert job.description == "nightly update"
        assert job.priority == JobPriority.HIGH
        assert job.notify_flags == NotifyFlags.JOB_MODIFICATION | NotifyFlags.FILE_TRANSFERRED
        assert (job.minimum_retry_delay, job.no_progress_timeout) == (120, 1)
        assert job.minimum_notification_interval == 0.25

        with pytest.raises(openbits.InvalidArgument, match="bits_job_set_display_name"):
            job.display_name = "x" * 300
        with pytest.raises(openbits.NotSupported):
            job.priority = 17  # undefined value: E_NOTIMPL, as in BITS
        with pytest.raises(TypeError):
            job.priority = "high"  # type: ignore[assignment]


def test_files_and_their_progress(server, manager, dest: Path) -> None:
    job = manager.create_job("files")
    job.add_files(
        [
            (server.url("/small.txt"), dest / "small.txt"),
            (server.url("/b.bin"), str(dest / "b.bin")),
        ]
    )
    assert job.file_count == 2
    first, second = job.files
    assert (first.index, first.remote_url, first.local_path) == (
        0,
        server.url("/small.txt"),
        str(dest / "small.txt"),
    )
    assert second.progress == openbits.FileProgress(None, 0, False)
    assert first.temporary_path is None
    with pytest.raises(openbits.InvalidArgument):
        job.file(2)
    # All or none.
    with pytest.raises(openbits.InvalidArgument):
        job.add_files([(server.url("/a.bin"), dest / "a.bin"), ("bad url", dest / "c")])
    assert job.file_count == 2

    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    done = job.file(1)
    size = len(server.files["/b.bin"])
    assert done.progress == openbits.FileProgress(size, size, True)
    assert done.temporary_path is not None and Path(done.temporary_path).name.startswith("BIT")
    assert job.times.transfer_completion is not None
    job.complete()


def test_remote_names_can_change(server, manager, dest: Path) -> None:
    job = manager.create_job("moved")
    job.add_file("http://127.0.0.1:1/files/small.txt", dest / "small.txt")
    job.add_file("http://127.0.0.1:1/b.bin", dest / "b.bin")
    assert job.replace_remote_prefix("http://127.0.0.1:1/files/", server.url("/")) is True
    assert job.replace_remote_prefix("https://nowhere/", server.url("/")) is False
    job.set_remote_url(1, server.url("/b.bin"))
    assert [f.remote_url for f in job.files] == [server.url("/small.txt"), server.url("/b.bin")]
    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    job.complete()
    assert (dest / "b.bin").read_bytes() == server.files["/b.bin"]


def test_error_detail(server, manager, dest: Path) -> None:
    job = manager.create_job("detail")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.add_file(server.url("/b.bin?status=403"), dest / "b.bin")
    job.resume()
    assert job.wait(30) == JobState.ERROR
    error = job.error
    assert error is not None
    assert error.code == openbits.http_error(403)
    assert error.file_index == 1
    assert error.protocol == "http"
    assert error.context_description
    assert job.error_count >= 1
    assert openbits.describe(error.code)
    job.cancel()


def test_limits_and_owners(tmp_path: Path) -> None:
    with openbits.Manager(tmp_path / "s", owner="alice", max_jobs_per_owner=2) as m:
        m.create_job("1")
        m.create_job("2")
        with pytest.raises(openbits.BitsError) as info:
            m.create_job("3")
        assert info.value.hresult == HResult.E_TOO_MANY_JOBS_PER_USER
        with pytest.raises(openbits.AccessDenied):
            m.job_ids(all_owners=True)  # needs service mode
    with openbits.Manager(tmp_path / "s", owner="bob") as m:
        assert m.job_ids() == []  # bob sees only his own jobs
        bob = m.create_job("bob's")
    with openbits.Manager(tmp_path / "s", owner="root", service_mode=True) as m:
        everyone = m.jobs(all_owners=True)
        assert sorted(j.owner for j in everyone) == ["alice", "alice", "bob"]
        theirs = m.get_job(bob.id)
        theirs.take_ownership()
        assert theirs.owner == "root"
