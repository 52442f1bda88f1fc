"""HTTP options: custom headers, Basic credentials, the redirect policy."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

import openbits
from openbits import AuthScheme, AuthTarget, JobState, SecurityFlags

BODY = b"private content\n" * 100


@pytest.fixture
def recording_server() -> Iterator[tuple]:
    """A small server that records each request's headers; /private needs Basic u:p."""
    seen: List[Dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append({k.lower(): v for k, v in self.headers.items()})
            expected = "Basic " + base64.b64encode(b"user:secret pass").decode()
            if self.path == "/private" and self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="t"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_custom_headers_are_sent(recording_server, manager, dest: Path) -> None:
    base, seen = recording_server
    job = manager.create_job("headers")
    assert job.custom_headers == {}
    job.custom_headers = {"X-Token": "abc 123", "X-Other": "two"}
    assert job.custom_headers == {"X-Token": "abc 123", "X-Other": "two"}
    job.add_file(base + "/public", dest / "public")
    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    assert seen[-1]["x-token"] == "abc 123" and seen[-1]["x-other"] == "two"
    job.complete()


def test_header_injection_and_reserved_headers_are_refused(manager) -> None:
    job = manager.create_job("bad headers")
    with pytest.raises(openbits.InvalidArgument):
        job.custom_headers = {"X-A": "v\r\nX-Injected: 1"}
    with pytest.raises(openbits.InvalidArgument):
        job.custom_headers = {"Bad Name:": "v"}
    with pytest.raises(openbits.InvalidArgument, match="bits_job_set_custom_headers"):
        job.custom_headers = {"Range": "bytes=0-"}  # openbits sets it itself
    job.custom_headers = [("X-A", "1")]
    job.custom_headers = None
    assert job.custom_headers == {}


def test_basic_credentials(recording_server, manager, dest: Path) -> None:
    base, _seen = recording_server
    job = manager.create_job("credentials")
    job.add_file(base + "/private", dest / "private")
    job.no_progress_timeout = 0
    with pytest.raises(openbits.NotSupported):
        job.set_credentials("user", "x", AuthTarget.SERVER, AuthScheme.NTLM)
    with pytest.raises(openbits.BitsError) as info:
        job.set_credentials("us:er", "x")
    assert info.value.hresult == openbits.HResult.E_INVALID_CREDENTIALS
    job.set_credentials("user", "secret pass")
    job.resume()
    assert job.wait(30) == JobState.TRANSFERRED
    job.complete()
    assert (dest / "private").read_bytes() == BODY
    other = manager.create_job("no credentials")
    assert other.remove_credentials() is False
    other.set_credentials("user", "wrong")
    assert other.remove_credentials(AuthTarget.SERVER, AuthScheme.BASIC) is True


def test_redirect_policy(server, manager, dest: Path) -> None:
    job = manager.create_job("redirects")
    assert job.security_flags == SecurityFlags.REDIRECT_POLICY_ALLOW_SILENT
    job.security_flags = SecurityFlags.REDIRECT_POLICY_DISALLOW
    assert job.security_flags == SecurityFlags.REDIRECT_POLICY_DISALLOW
    job.add_file(server.url("/x?redirect=/small.txt"), dest / "small.txt")
    job.resume()
    assert job.wait(30) == JobState.ERROR
    job.cancel()

    report = manager.create_job("reported redirect")
    report.security_flags = SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT
    report.add_file(server.url("/x?redirect=/small.txt"), dest / "small.txt")
    report.resume()
    assert report.wait(30) == JobState.TRANSFERRED
    assert report.file(0).remote_url == server.url("/small.txt")
    report.complete()
    assert (dest / "small.txt").read_bytes() == server.files["/small.txt"]
