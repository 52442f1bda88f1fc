#!/usr/bin/env python3
"""tests/crash/upload_run.py: kill -9 crash test of upload jobs.

crash_child (crash_child.c, in --upload mode) drives one upload job of a 128 MiB file (seeded random
bytes) through the C API to openbits-server; this harness kills it with SIGKILL at random moments,
starts it again on the same state folder, and checks that the job carries on with the same session
from what the server acknowledged, and ends with the exact bytes on the server, no job left in the
store, and no more bytes sent than the file plus one fragment per kill.

The link. The child talks to openbits-server through a TCP relay in this harness that counts every
byte the client sends and passes them on at RATE (16 MiB/s: fragments, which start at 1 MiB and
double while they go through in under 0.5 s, settle at about 8 MiB). Counting on
the wire is the honest measure of "bytes sent": it includes what a killed process had pushed into its
socket and what the server threw away, which the server's own log (Content-Length of each request it
answered) cannot tell. Pacing on the wire, rather than with the job's rate limit, is what puts kills
inside fragments: the engine sends a fragment at full speed and paces between fragments, so with a
job limit nearly every kill would land in a pause.

Plan (drawn from the seed before anything runs): KILLS kills, a shuffled mix of
    (s) 0-50 ms after the child started (opening the store, recovering, the resuming Ping), about
        a quarter of them, and
    (m) 0-1.5 s after the child's first PROGRESS line (mid-transfer: inside a fragment or between
        two), fired at once when a PROGRESS line shows the upload within GUARD of its end, so that
        the kills come before the upload is done;
then one more, (c), as soon as the harness reads COMPLETING (the upload is on the server; racing
bits_complete, which for an upload takes well under a millisecond, so the child has often exited
0 by then: that attempt is then no kill, and is reported as such); then a child that is never killed runs until it exits 0 (COMPLETED, or ALREADY_DONE when the killed
complete finished).

Checks after every kill (from a copy of the store, as the next open finds it): once a child said
CREATED the job is there with its one file until the complete; its acknowledged offset
(bytes_checkpointed) never exceeds the file and never goes backwards while the session stays the
same; the session changes only while nothing was acknowledged (a new session after progress would
send the file again); no child fails or reports a job error. At the end: the server's file equals
the source byte for byte; the store holds no job (sqlite, and `crash_child --count` says COUNT 0);
the bytes the relay carried from the client are at most SIZE + kills x F + HEADER_ALLOWANCE x
requests, with F the largest fragment the client sent (the fragment length adapts; the largest
Content-Length of a Fragment in the server's log, which must be within the protocol's 13 MB) and
the requests counted in that log (request headers are a few hundred bytes).

Environment: CRASH_SEED (default: random; printed first), CRASH_KILLS (default 20, >= 4),
CRASH_KEEP=1 keeps the scratch folder (it is always kept on failure), CRASH_NO_BUILD=1 skips cargo.
Exit status 0 on success, 1 on a failed check, 2 on a harness problem.
"""

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as crash  # noqa: E402  (the download crash test's processes, build and store reader)
from run import Child, Failed, Harness, fmt_mib, log  # noqa: E402

MiB = crash.MiB
SIZE = 128 * MiB
MAX_FRAGMENT = 13 * MiB  # protocol/src/client.rs MAX_FRAGMENT
RATE = 16 * MiB  # bytes/s from the client to the server
GUARD = 24 * MiB
HEADER_ALLOWANCE = 1024  # bytes of request line and headers per request
S_DELAY = 0.050
M_DELAY = 1.5
KIND_NAME = {"s": "right after start", "m": "mid-transfer", "c": "at COMPLETING"}
LINE_TIMEOUT = 30.0
TRANSFER_TIMEOUT = 4 * SIZE / RATE + 60.0
FILE_COLUMNS = ("bytes_total", "bytes_checkpointed", "completed", "upload_session")


def make_plan(rng, kills):
    if kills < 4:
        raise Harness(f"CRASH_KILLS={kills}: use >= 4")
    n_s = max(1, kills // 4)
    kinds = ["s"] * n_s + ["m"] * (kills - n_s)
    rng.shuffle(kinds)
    plan = [(k, rng.uniform(0, S_DELAY if k == "s" else M_DELAY)) for k in kinds]
    return plan + [("c", 0.0)]


class Relay:
    """127.0.0.1:port -> `target`: counts the bytes clients send, passing them on at `rate`."""

    CHUNK = 64 * 1024

    def __init__(self, target, rate):
        self.target, self.rate = target, rate
        self.sent = 0
        self.lock = threading.Lock()
        self.free_at = time.monotonic()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            ends = [2]
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=(src, dst, up, ends, (client, server)),
                                 daemon=True).start()

    def _pace(self, n):
        with self.lock:
            self.sent += n
            now = time.monotonic()
            self.free_at = max(self.free_at, now) + n / self.rate
            wait = self.free_at - now
        if wait > 0:
            time.sleep(wait)

    def _pipe(self, src, dst, up, ends, both):
        try:
            while True:
                data = src.recv(self.CHUNK)
                if not data:
                    break
                if up:
                    self._pace(len(data))
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            ends[0] -= 1
            last = ends[0] == 0
        if last:
            for s in both:
                s.close()

    def bytes_sent(self):
        with self.lock:
            return self.sent

    def close(self):
        self.sock.close()


class Server:
    """openbits-server on a free port, storing into `root`, its request log (JSON) in `logfile`."""

    def __init__(self, exe, root, logfile):
        self.logfile = logfile
        self.err = open(logfile, "w")
        self.proc = subprocess.Popen(
            [exe, "--listen", "127.0.0.1:0", "--root", root, "--log-format", "json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        first = crash.first_line(self.proc)
        if not first.startswith("listening on http://"):
            self.stop()
            raise Harness(f"openbits-server said {first!r}")
        host, port = first.rsplit("/", 1)[1].rsplit(":", 1)
        self.addr = (host, int(port))

    def requests(self):
        """The requests the server answered: [dict] (method, status, bytes_in, packet, ...)."""
        self.err.flush()
        out = []
        with open(self.logfile) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # not a request line
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


class UploadCrashTest:
    def __init__(self, seed, kills, work):
        self.seed, self.kills, self.work = seed, kills, work
        self.state = work / "state"
        self.root = work / "root"
        self.done = self.root / "big.bin"
        self.snap = work / "snapshot"
        self.logfile = work / "children.log"
        self.last_child = None
        self.job_known = False
        self.checkpoint = 0
        self.session = None
        self.sessions = []  # every session id the store held, in order
        self.counts = {k: 0 for k in KIND_NAME}
        self.guarded = 0
        self.completed_first = False  # the (c) child exited before its kill
        self.n_child = 0
        # Per kill: bytes the child had seen acknowledged beyond what the store held (sent again).
        self.unrecorded = []

    def start_child(self, what):
        self.n_child += 1
        c = Child([self.child_exe, "--upload", self.state, self.url, self.source_path, self.done],
                  f"child {self.n_child} ({what})", self.logfile)
        self.last_child = c
        return c

    def main(self):
        plan = make_plan(random.Random(f"openbits-upload-crash-plan-{self.seed}"), self.kills)
        self.root.mkdir(parents=True)
        self.child_exe, server_exe = crash.build(self.work, server="openbits-server")
        self.source = random.Random(self.seed).randbytes(SIZE)
        self.source_path = self.work / "source.bin"
        self.source_path.write_bytes(self.source)
        log(f"source: {SIZE} bytes from seed {self.seed}; link {RATE // MiB} MiB/s")
        log("plan: " + " ".join(f"{k}@{d * 1000:.0f}ms" for k, d in plan))
        self.server = Server(server_exe, self.root, self.work / "server.log")
        self.relay = Relay(self.server.addr, RATE)
        self.url = f"http://127.0.0.1:{self.relay.port}/big.bin"
        log(f"server {self.server.addr[0]}:{self.server.addr[1]}, client URL {self.url}")
        try:
            for i, (kind, delay) in enumerate(plan):
                self.kill_one(i + 1, len(plan), kind, delay)
            c = self.start_child("finishing run")
            _, line = c.wait_for(lambda l: l.startswith(("COMPLETED", "ALREADY_DONE")),
                                 TRANSFER_TIMEOUT)
            c.finish(30)
            self.check_child(c)
            if c.proc.returncode != 0 or line not in ("COMPLETED 0x00000000", "ALREADY_DONE"):
                raise Failed(f"{c.name}: {line!r}, status {c.proc.returncode}")
            log(f"finishing run: {line}")
            self.verify()
            sent = self.relay.bytes_sent()
            requests = self.server.requests()
        finally:
            self.relay.close()
            self.server.stop()
        kills = sum(self.counts.values())
        fragment = max(r.get("bytes_in", 0) for r in requests if r.get("packet") == "Fragment")
        if fragment > MAX_FRAGMENT:
            raise Failed(f"a fragment of {fragment} bytes, over the protocol's {MAX_FRAGMENT}")
        bound = SIZE + kills * fragment + HEADER_ALLOWANCE * len(requests)
        stored = sum(r.get("bytes_in", 0) for r in requests
                     if r.get("packet") == "Fragment" and r.get("status") in (200, 416))
        sessions_dir = self.root / ".bits-sessions"  # openbits-server's: {id}/ and .lock, .clients
        leftover = [n for n in os.listdir(sessions_dir) if not n.startswith(".")] if (
            sessions_dir.exists()) else []
        log()
        log("kills: " + ", ".join(f"({k}) {KIND_NAME[k]} x{n}" for k, n in self.counts.items())
            + f"; (m) kills fired early by the guard: {self.guarded}"
            + ("; the (c) child completed before its kill" if self.completed_first else ""))
        log(f"sessions used: {len(self.sessions)}; abandoned sessions left on the server: {len(leftover)} "
            "(created by a child killed before it recorded the id; the server expires them)")
        if self.unrecorded:
            log(f"acknowledged by the server but not yet in the store at a kill (the next run sends "
                f"it again): total {fmt_mib(sum(self.unrecorded)).strip()}, max "
                f"{fmt_mib(max(self.unrecorded)).strip()}, at {sum(1 for u in self.unrecorded if u)} "
                f"of {len(self.unrecorded)} kills (from the last PROGRESS line: a lower estimate)")
        log(f"bytes sent by the client: {sent} ({sent / SIZE:.3f} x the file); fragments the server "
            f"answered carried {stored} bytes; {len(requests)} requests")
        log(f"bound: {bound} = {SIZE} + {kills} x {fragment} (the largest fragment) + {len(requests)} x {HEADER_ALLOWANCE}; "
            f"waste {(sent - SIZE) / MiB:.1f} MiB = {(sent - SIZE) / (bound - SIZE) * 100:.0f}% of the slack")
        if sent < SIZE:
            raise Failed(f"the client sent {sent} bytes, less than the file: the relay is not counting")
        if sent > bound:
            raise Failed(f"the client sent {sent} bytes, above the bound {bound}")
        return sent, bound, kills

    def kill_one(self, n, total, kind, delay):
        c = self.start_child(f"kill {n}, {KIND_NAME[kind]}")
        guard = False
        if kind == "s":
            time.sleep(max(0.0, c.t0 + delay - time.monotonic()))
        elif kind == "c":
            t, _ = c.wait_for(lambda l: l == "COMPLETING", TRANSFER_TIMEOUT)
            time.sleep(max(0.0, t + delay - time.monotonic()))
        else:
            got = crash.progress_for(c, delay, SIZE - GUARD)
            guard = got >= SIZE - GUARD
            self.guarded += guard
        at = time.monotonic() - c.t0
        killed = c.kill()
        if not killed:
            if kind != "c" or c.proc.returncode != 0:
                raise Failed(f"{c.name} exited (status {c.proc.returncode}) before its kill")
            self.completed_first = True
            log(f"kill attempt {n}/{total} (c): the child had completed and exited 0 before the kill")
            self.check_child(c)
            return
        self.counts[kind] += 1
        self.check_child(c)
        note = self.check_store(c, kind)
        progress = [b for b in map(crash.progress_bytes, c.text()) if b is not None]
        if progress and kind != "c":
            self.unrecorded.append(max(0, progress[-1] - self.checkpoint))
        log(f"kill {n:2}/{total} ({kind}) +{delay * 1000:6.1f} ms{' guard' if guard else '      '} "
            f"at {at * 1000:7.1f} ms; PROGRESS {fmt_mib(progress[-1] if progress else None)}; "
            f"relay {fmt_mib(self.relay.bytes_sent())}; {note}")

    def check_child(self, c):
        lines = crash.check_reports(c)
        if ("CREATED" in lines or "ADOPTED" in lines) and self.job_known:
            raise Failed(f"{c.name}: found no job (or no file) where the store had one")
        info = crash.found_info(lines)
        if info and info[0] not in crash.FOUND_OK:
            raise Failed(f"{c.name}: found the job in state {info[0]}")
        if "CREATED" in lines:
            self.job_known = True

    def check_store(self, c, kind):
        jobs, files = crash.store_snapshot(self.state, self.snap, FILE_COLUMNS)
        where = f"after {c.name}"
        if len(jobs) > 1:
            raise Failed(f"{where}: {len(jobs)} jobs in the store")
        if not jobs:
            if self.job_known and not (kind == "c" and self.done.exists()):
                raise Failed(f"{where}: the job is gone from the store before its complete")
            return "store: no job"
        if self.job_known and len(files) != 1:
            raise Failed(f"{where}: the job has {len(files)} files in the store")
        for f in files:
            cp, session = f["bytes_checkpointed"], f["upload_session"]
            if cp > SIZE:
                raise Failed(f"{where}: {cp} bytes acknowledged of a {SIZE}-byte file")
            if session != self.session and session is not None:
                if self.checkpoint > 0:
                    raise Failed(f"{where}: a new session {session} after {self.checkpoint} bytes "
                                 f"were acknowledged in {self.session}")
                self.sessions.append(session)
                self.session = session
            elif cp < self.checkpoint:
                raise Failed(f"{where}: the acknowledged offset went back from {self.checkpoint} "
                             f"to {cp} in the same session")
            self.checkpoint = max(self.checkpoint, cp)
        return (f"store: {jobs[0]['state']}, acknowledged {fmt_mib(self.checkpoint).strip()}, "
                f"session {(self.session or '-')[:9]}")

    def verify(self):
        if not self.done.exists():
            raise Failed(f"{self.done} is not on the server")
        got = self.done.read_bytes()
        if got != self.source:
            raise Failed(f"the server's file differs from the source: {len(got)} bytes vs {SIZE}, "
                         f"first difference at {crash.first_difference(got, self.source)}")
        jobs, files = crash.store_snapshot(self.state, self.snap, FILE_COLUMNS)
        if jobs or files:
            raise Failed(f"the store holds {len(jobs)} jobs and {len(files)} files after the complete")
        cnt = Child([self.child_exe, "--count", self.state], "--count", self.logfile)
        self.last_child = cnt
        _, line = cnt.wait_for(lambda l: l.startswith("COUNT"), LINE_TIMEOUT)
        cnt.finish(30)
        if cnt.proc.returncode != 0 or line != "COUNT 0":
            raise Failed(f"crash_child --count: {line!r} (status {cnt.proc.returncode})")
        log("verified: the server holds the exact bytes; the store holds no job (COUNT 0)")


def main():
    seed = crash.seed_from_env()
    kills = int(os.environ.get("CRASH_KILLS", "20"))
    work = Path(tempfile.mkdtemp(prefix="openbits-upload-crash."))
    test = UploadCrashTest(seed, kills, work)

    def body():
        sent, bound, kills = test.main()
        return f"kills={kills} sent={sent} bound={bound} sent/size={sent / SIZE:.3f}"

    def on_failure():
        if test.last_child is not None:
            log(test.last_child.dump())
        log(f"the server's log: {work / 'server.log'}")

    return crash.supervise("upload crash test", seed, work, body, on_failure)


if __name__ == "__main__":
    sys.exit(main())
