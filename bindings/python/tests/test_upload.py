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


def test_upload_reply(reply_server: str, manager, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    src = tmp_path / "question.bin"
    src.write_bytes(data)
    job = manager.create_job("ask", openbits.JobType.UPLOAD_REPLY)
    assert job.reply_file_name is None
    job.add_file(f"{reply_server}/ask/question.bin", src)
    assert job.reply_file_name == f"{src}.{job.id}.reply"
    answer = tmp_path / "answer.bin"
    job.reply_file_name = answer
    assert job.reply_file_name == str(answer)
    assert job.reply_progress == openbits.ReplyProgress(None, 0)
    with pytest.raises(openbits.BitsError) as early:
        job.reply_data
    assert early.value.hresult == HResult.E_INVALID_STATE
    job.resume()
    assert job.wait(timeout=60) == JobState.TRANSFERRED
    assert job.reply_progress == openbits.ReplyProgress(len(data), len(data))
    assert job.reply_data == data[::-1]
    assert not answer.exists()
    assert job.complete() == HResult.S_OK
    assert answer.read_bytes() == data[::-1]

