"""Upload jobs from Python, to openbits-server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import openbits
from openbits import HResult, JobState


def test_upload_a_file(upload_server, manager, tmp_path: Path) -> None:
    base, root = upload_server
    data = os.urandom(3 * 1024 * 1024 + 5)
    src = tmp_path / "report.bin"
    src.write_bytes(data)
    job = manager.create_job("report", openbits.JobType.UPLOAD)
    job.add_file(f"{base}/in/report.bin", src)
    with pytest.raises(openbits.BitsError) as second:
        job.add_file(f"{base}/in/other.bin", src)
    assert second.value.hresult == HResult.E_TOO_MANY_FILES
    job.resume()
    assert job.wait(timeout=60) == JobState.TRANSFERRED
    assert job.progress.bytes_transferred == len(data)
    assert job.complete() == HResult.S_OK
    assert (root / "in" / "report.bin").read_bytes() == data
