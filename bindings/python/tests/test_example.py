"""examples/download.py runs against the test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "download.py"


def test_download_example(server, dest: Path) -> None:
    base = server.url("")
    names = ["a.bin?rate=1300000", "b.bin", "small.txt"]
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), base, str(dest), *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        timeout=120,
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "created" in out and "TRANSFERRED" in out and "ACKNOWLEDGED" in out
    for name in ("a.bin", "b.bin", "small.txt"):
        assert (dest / name).read_bytes() == server.files["/" + name]
    assert sorted(os.listdir(dest)) == [".openbits-state", "a.bin", "b.bin", "small.txt"]


def test_download_example_reports_a_failure(server, dest: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), server.url(""), str(dest), "a.bin?status=404"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "0x80190194" in proc.stderr.decode()


def test_upload_example(reply_server: str, tmp_path: Path) -> None:
    upload = EXAMPLE.parent / "upload.py"
    src = tmp_path / "report.bin"
    src.write_bytes(os.urandom(70_000))
    proc = subprocess.run(
        [sys.executable, str(upload), "--reply", str(src), f"{reply_server}/in/report.bin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "uploaded 70000 bytes" in out and "reply: 70000 bytes" in out
    reply_file = out.split("reply file: ")[1].strip()
    assert Path(reply_file).read_bytes() == src.read_bytes()[::-1]
