"""Failures: HRESULTs, messages and the exception hierarchy."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import pytest

import openbits
from openbits import HResult, JobState


def test_http_404_puts_the_job_in_error(server, manager, dest: Path) -> None:
    job = manager.create_job("missing")
    assert job.error is None, "no error outside ERROR / TRANSIENT_ERROR"
    url = server.url("/a.bin?status=404")
    job.add_file(url, dest / "a.bin")
    job.resume()
    assert job.wait(timeout=30) == JobState.ERROR
    error = job.error
    assert error is not None
    assert error.code == 0x80190194 == openbits.http_error(404)
    assert error.code_name == "E_HTTP_ERROR(404)"
    assert error.context == openbits.ErrorContext.REMOTE_FILE
    assert "404" in error.description and url in error.description
    assert job.cancel() == HResult.S_OK


def test_bad_arguments_raise_invalid_argument_with_the_message(manager, dest: Path) -> None:
    job = manager.create_job("bad")
    with pytest.raises(openbits.InvalidArgument) as info:
        job.add_file("not a url", dest / "x")
    e = info.value
    assert isinstance(e, openbits.BitsError) and isinstance(e, ValueError)
    assert e.hresult == 0x80070057 == HResult.E_INVALIDARG
    assert e.name == "E_INVALIDARG"
    assert e.message.startswith("bits_add_file: ") and "not a url" in e.message
    assert str(e) == f"{e.message} (0x80070057 E_INVALIDARG)"

    with pytest.raises(openbits.InvalidArgument, match="bits_add_file"):
        job.add_file("ftp://example.com/x", dest / "x")  # unsupported scheme
    with pytest.raises(openbits.InvalidArgument, match="bits_add_file"):
        job.add_file("http://127.0.0.1/x", dest)  # a folder
    with pytest.raises(openbits.InvalidArgument, match="bits_create_job"):
        manager.create_job("n" * 300)  # longer than 256 characters
    with pytest.raises(openbits.InvalidArgument, match="bits_create_job"):
        manager.create_job("x", 42)  # undefined job type
    with pytest.raises(openbits.InvalidArgument, match="NUL"):
        manager.create_job("a\0b")  # caught by the binding: C would cut the string
    with pytest.raises(openbits.InvalidArgument, match="negative"):
        job.wait(timeout=-1)
    with pytest.raises(openbits.InvalidArgument):
        job.minimum_retry_delay = -5
    with pytest.raises(TypeError):
        job.add_file("http://127.0.0.1/x", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        manager.create_job(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(openbits.BitsError) as missing_dir:
        job.add_file("http://127.0.0.1/x", dest / "no-such-folder" / "x")
    assert missing_dir.value.hresult == 0x80070003  # HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)


def test_complete_twice_raises_invalid_state(server, manager, dest: Path) -> None:
    job = manager.create_job("twice")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    assert job.complete() == HResult.S_OK
    with pytest.raises(openbits.InvalidState) as info:
        job.complete()
    assert info.value.hresult == 0x80200002
    assert info.value.message.startswith("bits_complete: ")
    with pytest.raises(openbits.InvalidState):
        job.cancel()
    with pytest.raises(openbits.InvalidState):
        job.add_file(server.url("/b.bin"), dest / "b.bin")


def test_unknown_job_raises_not_found(manager) -> None:
    unknown = uuid.uuid4()
    with pytest.raises(openbits.NotFound) as info:
        manager.get_job(unknown)
    e = info.value
    assert isinstance(e, LookupError)
    assert e.hresult == 0x80200001 == HResult.E_NOT_FOUND
    assert str(unknown) in e.message.lower()
    with pytest.raises(openbits.NotFound):
        manager.get_job(str(unknown))
    with pytest.raises(openbits.InvalidArgument):
        manager.get_job("not-a-uuid")


def test_completed_job_is_not_found(server, manager, dest: Path) -> None:
    job = manager.create_job("gone")
    job.add_file(server.url("/small.txt"), dest / "small.txt")
    job.resume()
    job.wait(30)
    job.complete()
    with pytest.raises(openbits.NotFound):
        manager.get_job(job.id)


def test_other_codes(manager, state_dir: Path) -> None:
    job = manager.create_job("empty")
    # The reply calls belong to upload-reply jobs: BITS's E_NOTIMPL.
    with pytest.raises(openbits.NotSupported) as info:
        job.reply_data
    assert info.value.hresult == HResult.E_NOTIMPL
    assert isinstance(info.value, NotImplementedError)

    with pytest.raises(openbits.BitsError) as empty:
        job.resume()
    assert empty.value.hresult == HResult.E_EMPTY
    assert type(empty.value) is openbits.BitsError

    with pytest.raises(openbits.BitsError) as locked:
        openbits.Manager(state_dir)  # the folder is open already
    assert locked.value.hresult == 0x80070020  # ERROR_SHARING_VIOLATION


def test_manager_options(tmp_path: Path) -> None:
    with openbits.Manager(
        tmp_path / "s",
        max_concurrent_jobs=2,
        checkpoint_interval_ms=250,
        checkpoint_bytes=1 << 20,
        inactivity_timeout_s=3600,
    ) as m:
        assert m.path == str(tmp_path / "s")
        assert m.job_ids() == []
    with pytest.raises(openbits.InvalidArgument):
        openbits.Manager(tmp_path / "t", max_concurrent_jobs=-1)
    with pytest.raises(TypeError):
        openbits.Manager(tmp_path / "t", checkpoint_bytes="8M")  # type: ignore[arg-type]
    (tmp_path / "file").write_text("")
    with pytest.raises(openbits.BitsError) as info:
        openbits.Manager(tmp_path / "file")  # not a folder
    assert info.value.message.startswith("bits_manager_open")


def test_errors_pickle_and_describe() -> None:
    e = openbits.NotFound("bits_get_job: no job", 0x80200001)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is openbits.NotFound
    assert (again.hresult, again.message) == (e.hresult, e.message)
    t = openbits.Timeout("waited", HResult.E_TIMEOUT)
    assert isinstance(t, TimeoutError) and isinstance(t, openbits.BitsError)
    assert str(t) == "waited (0x800705B4 E_TIMEOUT)"
    assert openbits.describe(HResult.E_NOT_FOUND) == "The requested job was not found."
    assert openbits.hresult_name(-2145386495) == "E_NOT_FOUND"  # a signed code works too
    assert openbits.hresult_name(0x12345678) is None
    assert not openbits.succeeded(HResult.E_FAIL) and openbits.succeeded(HResult.S_FALSE)
