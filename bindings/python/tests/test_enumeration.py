"""Enumeration, lookup and persistence across a reopen."""

from __future__ import annotations

from pathlib import Path

import openbits
from openbits import JobState


def test_jobs_listed_after_reopen(server, state_dir: Path, dest: Path) -> None:
    with openbits.Manager(state_dir) as m:
        a = m.create_job("a")
        b = m.create_job("b")
        b.add_file(server.url("/small.txt"), dest / "small.txt")
        c = m.create_job("c")
        gone = m.create_job("cancelled")
        gone.cancel()
        ids = [a.id, b.id, c.id]
        assert m.job_ids() == ids
    assert m.closed

    with openbits.Manager(state_dir) as m:
        assert m.job_ids() == ids, "same jobs, creation order, final ones left out"
        jobs = m.jobs()
        assert [j.id for j in jobs] == ids
        assert all(j.state == JobState.SUSPENDED for j in jobs)
        assert jobs[1].progress.files_total == 1
        # and the reopened job works
        jobs[1].resume()
        assert jobs[1].wait(30) == JobState.TRANSFERRED
        jobs[1].complete()
        for j in jobs:
            j.close()
    assert (dest / "small.txt").read_bytes() == server.files["/small.txt"]

    with openbits.Manager(state_dir) as m:
        assert m.job_ids() == [ids[0], ids[2]]


def test_get_job_by_uuid_and_text(manager) -> None:
    job = manager.create_job("lookup")
    by_uuid = manager.get_job(job.id)
    by_text = manager.get_job("{" + str(job.id).upper() + "}")
    assert by_uuid == job == by_text and by_uuid is not job
    assert len({job, by_uuid, by_text}) == 1
    by_uuid.suspend()  # a second reference acts on the same job
    by_text.close()
    by_text.close()  # idempotent
    assert job.state == JobState.SUSPENDED


def test_default_folder_from_openbits_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENBITS_HOME", str(tmp_path / "home"))
    with openbits.Manager() as m:
        assert m.path is None
        job = m.create_job("default folder")
        jid = job.id
    with openbits.Manager(tmp_path / "home") as m:
        assert m.job_ids() == [jid]
