"""TLS for one job: its own trusted roots (no environment variable), a client certificate, the
server certificate callback, and write-only custom headers, against Python's own TLS server with
certificates the openssl command makes for the test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

import openbits
from openbits import ErrorContext, JobState

BODY = b"over TLS\n" * 5000


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed (apt-get install -y openssl); scripts/test.sh installs it")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(d: Path, name: str, subject: str, extensions: str) -> None:
    (d / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root, a server certificate for localhost and a client certificate, all from it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=openbits python test root",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _issue(d, "server", "/CN=localhost",
           "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _issue(d, "client", "/CN=openbits client",
           "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    return d


def _serve(pki: Path, require_client: bool) -> Iterator[tuple]:
    seen: List[Dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.pem")

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # refused handshakes are the point of some tests

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def tls_server(pki: Path) -> Iterator[tuple]:
    yield from _serve(pki, require_client=False)


@pytest.fixture
def mtls_server(pki: Path) -> Iterator[tuple]:
    yield from _serve(pki, require_client=True)


def _run(job: openbits.Job) -> JobState:
    """Resumes the job and waits for TRANSFERRED, ERROR or TRANSIENT_ERROR (wait() does not stop
    at TRANSIENT_ERROR)."""
    import time

    job.resume()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = job.state
        if s in (JobState.TRANSFERRED, JobState.ERROR, JobState.TRANSIENT_ERROR):
            return s
        time.sleep(0.01)
    raise AssertionError(f"job still {job.state}")


def test_trusted_roots_for_one_job(tls_server, pki: Path, manager, dest: Path) -> None:
    url, _ = tls_server
    untrusted = manager.create_job("platform roots")
    untrusted.add_file(url + "/f", dest / "untrusted")
    assert _run(untrusted) == JobState.ERROR
    e = untrusted.error
    assert (e.context, e.code) == (ErrorContext.GENERAL_TRANSPORT, 0x80072F0D)
    assert "not issued by a trusted root" in e.description

    job = manager.create_job("own roots")
    job.set_trusted_roots(pki / "ca.pem")
    job.add_file(url + "/f", dest / "f")
    assert _run(job) == JobState.TRANSFERRED
    job.complete()
    assert (dest / "f").read_bytes() == BODY

    with pytest.raises(openbits.InvalidArgument):
        manager.create_job("bad").set_trusted_roots(pki / "server.key")


def test_client_certificate(mtls_server, pki: Path, manager, dest: Path) -> None:
    url, _ = mtls_server
    without = manager.create_job("no client certificate")
    without.set_trusted_roots(pki / "ca.pem")
    without.add_file(url + "/f", dest / "without")
    state = _run(without)
    assert state == JobState.ERROR, without.error.description

    job = manager.create_job("client certificate")
    job.set_trusted_roots(pki / "ca.pem")
    assert job.client_certificate_file is None
    job.set_client_certificate_file(pki / "client.pem", pki / "client.key")
    assert job.client_certificate_file == (str(pki / "client.pem"), str(pki / "client.key"))
    job.add_file(url + "/f", dest / "f")
    assert _run(job) == JobState.TRANSFERRED
    job.complete()
    assert (dest / "f").read_bytes() == BODY
    assert without.remove_client_certificate() is False


def test_server_certificate_callback(tls_server, pki: Path, manager, dest: Path) -> None:
    url, _ = tls_server
    calls: List[tuple] = []

    def check(job: openbits.Job, host: str, chain: List[bytes], library_result: int) -> bool:
        calls.append((job.display_name, host, chain, library_result))
        return True

    job = manager.create_job("checked")
    job.set_trusted_roots(pki / "ca.pem")
    job.set_server_certificate_callback(check)
    job.add_file(url + "/f", dest / "f")
    assert _run(job) == JobState.TRANSFERRED
    job.complete()
    server_der = ssl.PEM_cert_to_DER_cert((pki / "server.pem").read_text())
    assert calls and calls[0][:2] == ("checked", "localhost")
    assert calls[0][2][0] == server_der and calls[0][3] == 0

    refused = manager.create_job("refused")
    refused.set_trusted_roots(pki / "ca.pem")
    refused.set_server_certificate_callback(lambda *_: False)
    refused.add_file(url + "/f", dest / "refused")
    assert _run(refused) == JobState.TRANSIENT_ERROR
    e = refused.error
    assert (e.context, e.code) == (ErrorContext.SERVER_CERTIFICATE_CALLBACK, 0x80004005)
    refused.suspend()
    refused.set_server_certificate_callback(None)
    refused.resume()
    assert _run(refused) == JobState.TRANSFERRED


def test_write_only_bearer_token(tls_server, pki: Path, manager, dest: Path) -> None:
    url, seen = tls_server
    job = manager.create_job("token")
    job.set_trusted_roots(pki / "ca.pem")
    job.custom_headers = {"Authorization": "Bearer py-t0k3n"}
    job.make_custom_headers_write_only()
    with pytest.raises(openbits.AccessDenied):
        job.custom_headers
    job.add_file(url + "/f", dest / "f")
    assert _run(job) == JobState.TRANSFERRED
    assert seen[-1]["authorization"] == "Bearer py-t0k3n"
    job.complete()
