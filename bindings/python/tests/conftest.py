"""Fixtures: the project's test server (a real HTTP/1.1 server on 127.0.0.1) and managers.

The tests import `openbits` as installed (bindings/python/test.sh installs it into a venv and runs
them from outside the source tree). The server binary is target/debug/openbits-testserver, built
with cargo if missing; OPENBITS_TESTSERVER points at another one.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

import openbits

HERE = Path(__file__).resolve().parent
PACKAGE_SOURCE = HERE.parent  # bindings/python
REPO = HERE.parent.parent.parent


def _server_binary() -> Path:
    env = os.environ.get("OPENBITS_TESTSERVER")
    if env:
        return Path(env)
    binary = REPO / "target" / "debug" / "openbits-testserver"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "openbits-testserver"], cwd=REPO, check=True)
    return binary


@dataclass
class Server:
    port: int
    files: Dict[str, bytes]  # URL path -> content

    def url(self, path_and_query: str) -> str:
        return f"http://127.0.0.1:{self.port}{path_and_query}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session: /a.bin (1 MiB + 17 bytes), /b.bin (200 KiB), /small.txt, and
    /big.bin (64 MiB of a pattern, for transfers that must not finish: add ?rate=B)."""
    src = tmp_path_factory.mktemp("server-files")
    files = {
        "/a.bin": os.urandom(1024 * 1024 + 17),
        "/b.bin": os.urandom(200 * 1024),
        "/small.txt": b"hello from the openbits test server\n",
    }
    args = [str(_server_binary())]
    for url_path, data in files.items():
        local = src / url_path.strip("/")
        local.write_bytes(data)
        args += ["--file", f"{url_path}={local}"]
    args += ["--pattern", "/big.bin=67108864:7"]
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("port="):
        proc.kill()
        err = proc.stderr.read().decode() if proc.stderr else ""
        pytest.fail(f"the test server did not start: {line!r} {err}")
    # Drain its output so that it never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    try:
        yield Server(int(line.split("=", 1)[1]), files)
    finally:
        proc.stdin.close()  # the server stops at EOF on stdin
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def manager(state_dir: Path) -> Iterator[openbits.Manager]:
    with openbits.Manager(state_dir) as m:
        yield m


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"openbits {openbits.__version__} from {Path(openbits.__file__).parent}; "
        f"library {openbits.library_version} at {openbits.library_path}; "
        f"python {sys.version.split()[0]}"
    )


def _openbits_server(root: Path, extra: List[str]) -> Iterator[str]:
    """Runs openbits-server storing into `root` (built if needed); yields its base URL."""
    binary = REPO / "target" / "debug" / "openbits-server"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "openbits-server"], cwd=REPO, check=True)
    root.mkdir()
    proc = subprocess.Popen(
        [str(binary), "--listen", "127.0.0.1:0", "--root", str(root), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        proc.kill()
        pytest.fail(f"openbits-server did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    try:
        yield line[len("listening on "):]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def upload_server(tmp_path: Path) -> Iterator[Tuple[str, Path]]:
    """An openbits-server (the upload server of this repository) storing into a fresh folder:
    yields its base URL and that folder."""
    root = tmp_path / "uploads"
    for base in _openbits_server(root, []):
        yield base, root


@pytest.fixture
def reply_server(tmp_path: Path) -> Iterator[str]:
    """An openbits-server for upload-reply jobs whose application (an http.server here) answers
    each upload with its bytes reversed: yields its base URL."""

    class Reverse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Reverse)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{app.server_address[1]}/app"
    try:
        yield from _openbits_server(
            tmp_path / "replies", ["--notify-type", "by-value", "--notify-url", url]
        )
    finally:
        app.shutdown()
