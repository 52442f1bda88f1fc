#!/usr/bin/env python3
"""tests/crash/run.py: kill -9 crash test of openbits' durable store.

A C program (crash_child.c) drives one download job through the C API; this harness kills it with
SIGKILL at chosen moments, starts it again on the same state folder, and checks that the job
always carries on from durable state and ends with the right file, no leftovers and no waste.

Plan. The test runs in ROUNDS; each round is one job, downloading a 48 MiB file (seeded random
bytes) from the test server at ~12 MiB/s (so one full transfer takes at least 4 s: the server
sends rate/20 bytes then pauses 50 ms, it never bursts). A round is:

    (a) first child: killed 0-20 ms after it prints CREATED (the job exists, resume is racing);
    a shuffled mix of
    (b) killed 0-1500 ms after its first PROGRESS line (mid-transfer), and
    (d) killed 0-30 ms after it was started (while it opens the store / recovers / reconnects);
    (c) killed 0-3 ms after COMPLETING, half of them at once (racing bits_complete, which takes
        about a millisecond: the kill lands before its intent is recorded, between the intent and
        the rename, between the rename and the removal of the job, or after it returned);
    then a child that is never killed runs until it exits 0 (COMPLETED, or ALREADY_DONE when the
    killed complete, or the recovery at open, finished the job).

Kind (c) can only be hit once per job, so there is one round per (c) kill; the kinds and all the
delays are drawn from the seed before anything runs, so every kind is covered at least 3 times.
A round's (b) delays add up to at most B_BUDGET (2.5 s), well under the >= 4 s the transfer
needs, and a (b) kill also fires early once a PROGRESS line shows the file within GUARD bytes of
its end: the transfer cannot finish before the (c) kill that ends its round.

Then one more round, the early round (an application in a crash loop): CRASH_EARLY children in a
row, each
    (e) killed 0.2-0.9 s (uniform, drawn from the seed after the other rounds) after it was
        started, whatever it printed,
then a finishing child as above. Each run's GETs of the file are read from the server (GET
/_requests, the requests it received since the run started; see tests/server). The first run
creates the job and must ask for the whole file (no Range); every later run, the finishing one
included, must resume with its first GET: `Range: bytes=N-` where N is the checkpoint the store held
when it started (from the copy read after the previous kill) and N > 0 (the first run lived at
least 0.2 s, and a transfer's first checkpoint is committed as soon as its first data is flushed,
not at the next 1 s tick; so the first flush must not wait for CHECKPOINT_BYTES, which at RATE
takes ~0.7 s, either). These failures are collected and fail the test at its very end, after
every other check has run. An (e) run cannot finish the file before its kill (0.9 s at RATE is
less than GUARD); the early round's remaining (e) kills are skipped if the checkpoint ever comes
within GUARD of the end.

After each round (deterministic checks, none depends on timing):
  - DEST equals the source byte for byte; no BIT*.tmp is left beside it;
  - the store holds no job: no row in the database's jobs/files tables (read with sqlite3 from a
    copy, so the reader never touches the library's files), and
    `crash_child --count` (the C API after a fresh open) says COUNT 0;
  - the state folder is 0700, openbits.db (and its -wal/-shm, lock) 0600.
After every kill (from a copy of the store, as the next open will find it): the job, once created,
is there with its file until the complete; its durable checkpoint never goes backwards, never
exceeds the length of its BIT*.tmp, and those bytes equal the source's; DEST, if present, is the
whole file. Every child: only a round's first child may create the job (a later CREATED means the
store lost it), a found job never lacks its file, no child fails or reports a job error.

At the end, the one timing-dependent check: the bytes the server sent (GET /_stats) must be below
rounds x size + kills x allowance (see byte_bound() for why that is comfortable), and at least
rounds x size (both counting the early round and its kills). Then the early round's resume check,
whose only timing assumption is the kill schedule's (a first run lives at least 0.2 s).

Environment: CRASH_SEED (default: random; printed first), CRASH_KILLS (default 24, >= 12: the
kills of the rounds before the early round), CRASH_EARLY (default 6: the early round's (e) kills;
0 leaves the early round out), CRASH_KEEP=1 keeps the scratch folder (it is always kept on
failure), CRASH_NO_BUILD=1 skips cargo.
Exit status 0 on success, 1 on a failed check, 2 on a harness problem.
"""

import glob
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

MiB = 1 << 20
SIZE = 48 * MiB
RATE = 12 * MiB  # bytes/s, the server's ?rate=
ROOT = Path(__file__).resolve().parents[2]

# Library defaults the byte bound relies on (core/src/manager.rs Config::default).
CHECKPOINT_BYTES = 8 * MiB
CHECKPOINT_INTERVAL_S = 1.0
IN_FLIGHT = 2 * MiB

B_MAX_DELAY = 1.5  # s, a (b) kill's delay after the first PROGRESS line
B_BUDGET = 2.5  # s, the sum of a round's (b) delays
GUARD = 12 * MiB  # a (b) kill fires at once when the transfer is this close to its end
KIND_DELAY = {"a": 0.020, "c": 0.003, "d": 0.030}  # s, maximum delay of the other kinds
E_DELAY = (0.2, 0.9)  # s, an (e) kill's delay after the child was started (uniform)
KINDS = "abcde"
KIND_NAME = {
    "a": "after CREATED",
    "b": "mid-transfer",
    "c": "at COMPLETING",
    "d": "right after start",
    "e": "early, 0.2-0.9 s",
}

LINE_TIMEOUT = 30.0  # s, for a line that should come promptly (CREATED, first PROGRESS)
TRANSFER_TIMEOUT = 4 * SIZE / RATE + 60.0  # s, for COMPLETING / a finishing run


class Failed(Exception):
    """A check failed (exit 1)."""


class Harness(Exception):
    """The harness itself could not run (exit 2)."""


def log(msg=""):
    print(msg, flush=True)


def byte_bound(rounds, kills):
    """The most bytes the server may send.

    Each round needs the whole file once: rounds x SIZE. A kill wastes what the dead process had
    downloaded beyond the checkpoint the store holds; the next process truncates the temporary
    file to that checkpoint and downloads the rest again (Range + If-Range). The engine fdatasyncs
    every CHECKPOINT_INTERVAL_S or CHECKPOINT_BYTES, whichever comes first, so the allowance per
    kill is max(8 MiB, 1 s x rate) = 12 MiB, plus IN_FLIGHT (2 MiB) for bytes the server handed
    to the socket that the client never read: 14 MiB per kill.

    Why it is comfortable: the synced offset reaches the database only at the checkpoint task's
    next batch (once a second), so a single unlucky (b) kill can lose up to ~(flush period 0.67 s
    + fsync + batch period 1 s) x 12 MiB/s ~ 22 MiB. But only the (b) kills, at most a third of
    all kills by construction of the plan, happen deep inside a transfer; (a) and (d) kills come
    within 30 ms of a transfer's start (< 0.5 MiB) and (c) kills after its end (0 bytes). Worst
    case: kills/3 x 22 MiB + 2 kills/3 x 0.5 MiB ~ 7.7 MiB per kill on average, about half the
    14 MiB allowed. Measured: runs use 13-20% of the slack (the largest single loss seen at a (b)
    kill was ~11 MiB). An (e) kill comes at most 0.9 s after its process started: it cannot lose
    more than 0.9 s x rate (10.8 MiB) + IN_FLIGHT, under the allowance even if nothing is recorded.
    """
    allowance = max(CHECKPOINT_BYTES, int(CHECKPOINT_INTERVAL_S * RATE)) + IN_FLIGHT
    return rounds * SIZE + kills * allowance, allowance


# ---- Plan ----------------------------------------------------------------------------------------


def make_plan(rng, kills):
    """Rounds of kills [(kind, delay_s)], drawn from `rng` only."""
    rounds = max(3, round(kills / 6))
    middle = kills - 2 * rounds  # kills that are neither the round's (a) opener nor its (c) closer
    n_b = min(2 * rounds, middle - 3)  # at most 2 mid-transfer kills per round (see B_BUDGET)
    n_d = middle - n_b
    if n_b < 3 or n_d < 3:
        raise Harness(f"CRASH_KILLS={kills} is too few to cover every kind 3 times; use >= 12")

    def spread(n):
        per = [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]
        rng.shuffle(per)
        return per

    b_per, d_per = spread(n_b), spread(n_d)
    plan = []
    for r in range(rounds):
        b_delays = [rng.uniform(0, B_MAX_DELAY) for _ in range(b_per[r])]
        if sum(b_delays) > B_BUDGET:
            scale = B_BUDGET / sum(b_delays)
            b_delays = [d * scale for d in b_delays]
        middle_kinds = ["b"] * b_per[r] + ["d"] * d_per[r]
        rng.shuffle(middle_kinds)
        kills_of_round = [("a", rng.uniform(0, KIND_DELAY["a"]))]
        for k in middle_kinds:
            delay = b_delays.pop() if k == "b" else rng.uniform(0, KIND_DELAY[k])
            kills_of_round.append((k, delay))
        # Half the (c) kills at once, to land inside bits_complete (which takes about a millisecond).
        c_delay = 0.0 if rng.random() < 0.5 else rng.uniform(0, KIND_DELAY["c"])
        kills_of_round.append(("c", c_delay))
        plan.append(kills_of_round)
    return plan


def make_early_round(rng, n):
    """The early round: `n` (e) kills, each `E_DELAY` after the child was started; [] if n is 0.
    Drawn from `rng` after make_plan, so a seed's other rounds stay what they were."""
    return [("e", rng.uniform(*E_DELAY)) for _ in range(n)]


# ---- Processes -----------------------------------------------------------------------------------


LIVE = []  # every Child started, so that no child outlives the harness (see main)


class Child:
    """A crash_child process whose stdout lines arrive, time-stamped, on a queue."""

    def __init__(self, argv, name, logfile):
        self.name = name
        self.logfile = logfile
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        LIVE.append(self)
        self.lines = []  # (seconds since start, text)
        self.err = []
        self.q = queue.Queue()
        self.readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _read_out(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            now = time.monotonic()
            self.lines.append((now - self.t0, line))
            self.q.put((now, line))
        self.q.put((time.monotonic(), None))

    def _read_err(self):
        for raw in self.proc.stderr:
            self.err.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def next_line(self, deadline):
        """(time read, line) of the next line, line None at EOF; queue.Empty when `deadline` passes."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise queue.Empty
        return self.q.get(timeout=left)

    def wait_for(self, want, timeout):
        """Reads lines until one satisfies `want`; returns (time read, line). EOF, timeout: Failed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                t, line = self.next_line(deadline)
            except queue.Empty:
                raise Failed(f"{self.name}: no expected line within {timeout:.0f} s") from None
            if line is None:
                self.finish(10)
                raise Failed(f"{self.name}: exited (status {self.proc.returncode}) before the expected line")
            if want(line):
                return t, line

    def kill(self):
        """SIGKILL if still running; returns True if the signal was sent to a live process."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.finish(30)
        return alive and self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise Failed(f"{self.name}: did not exit within {timeout} s (killed)")
        for t in self.readers:
            t.join(timeout=10)
        with open(self.logfile, "a") as f:
            f.write(f"== {self.name}: status {self.proc.returncode}\n")
            f.writelines(f"{t:8.3f} {l}\n" for t, l in self.lines)
            f.writelines(f"  stderr: {l}\n" for l in self.err)

    def text(self):
        return [l for _, l in self.lines]

    def dump(self):
        out = [f"--- {self.name} (status {self.proc.returncode}):"]
        lines = self.lines
        if len(lines) > 40:
            out += [f"{t:8.3f} {l}" for t, l in lines[:10]] + [f"   ... {len(lines) - 30} lines ..."]
            lines = lines[-20:]
        out += [f"{t:8.3f} {l}" for t, l in lines]
        out += [f"  stderr: {l}" for l in self.err]
        return "\n".join(out)


def progress_bytes(line):
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] == "PROGRESS" else None


def progress_for(c, delay, limit):
    """Reads `c`'s lines until `delay` s after its first PROGRESS line, or until a PROGRESS line
    shows `limit` bytes or more; returns the last progress seen. A COMPLETING line (the transfer
    finished before the kill meant for its middle) fails the test."""
    t, first = c.wait_for(lambda l: l.startswith("PROGRESS"), LINE_TIMEOUT)
    got = progress_bytes(first)
    while got < limit:
        try:
            _, line = c.next_line(t + delay)
        except queue.Empty:
            break
        if line is None:
            break
        if line == "COMPLETING":
            c.kill()
            raise Failed(f"{c.name}: the transfer finished before its mid-transfer kill; "
                         "the plan's time budget broke (machine far too slow?)")
        got = progress_bytes(line) or got
    return got


def check_reports(c):
    """Fails on a FAIL or JOB_ERROR line of the child `c`, logs its TRANSIENT_ERROR lines; returns
    its lines."""
    lines = c.text()
    for l in lines:
        if l.startswith(("FAIL", "JOB_ERROR")):
            raise Failed(f"{c.name}: {l}")
        if l.startswith("TRANSIENT_ERROR"):
            log(f"   note: {c.name}: {l}")
    return lines


def found_info(lines):
    """(state, files_total, bytes) of the FOUND line, or None."""
    for l in lines:
        if l.startswith("FOUND "):
            kv = dict(p.split("=", 1) for p in l.split()[1:])
            return kv["state"], int(kv["files"].split("/")[1]), int(kv["bytes"])
    return None


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        raise Harness(f"command failed ({r.returncode}): {' '.join(str(c) for c in cmd)}")
    return r


def target_dir():
    env = os.environ.get("CARGO_TARGET_DIR")
    if env:
        return Path(env) if Path(env).is_absolute() else ROOT / env
    return ROOT / "target"


def build(work, server="openbits-testserver"):
    """Builds the library and `server` (a package whose binary has the same name) and compiles
    crash_child; returns the paths of the child and the server."""
    if os.environ.get("CRASH_NO_BUILD") != "1":
        run(["cargo", "build", "-p", "openbits-ffi", "-p", server], cwd=ROOT)
        run(["cargo", "build", "-p", "openbits-core", "--example", "fold_store"], cwd=ROOT)
    libdir = target_dir() / "debug"
    for f in ("libopenbits.so", server, "examples/fold_store"):
        if not (libdir / f).exists():
            raise Harness(f"{libdir / f} is missing")
    child = work / "crash_child"
    cc = os.environ.get("CC", "cc")
    run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-I", ROOT / "include",
         "-o", child, ROOT / "tests/crash/crash_child.c",
         "-L", libdir, f"-Wl,-rpath,{libdir}", "-lopenbits"])
    return child, libdir / server


def first_line(proc, timeout=30):
    """The first line `proc` writes on its stdout (a server's address), or a note that none came."""
    got = queue.Queue()
    threading.Thread(target=lambda: got.put(proc.stdout.readline()), daemon=True).start()
    try:
        return got.get(timeout=timeout).decode().strip()
    except queue.Empty:
        return f"(nothing within {timeout} s)"


class Server:
    def __init__(self, exe, src):
        self.proc = subprocess.Popen(
            [exe, "--file", f"/big.bin={src}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        first = first_line(self.proc)
        if not first.startswith("port="):
            self.proc.kill()
            self.proc.wait()
            raise Harness(f"the test server said {first!r}")
        self.port = int(first[5:])
        # No proxy for 127.0.0.1, whatever http_proxy says.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self):
        with self.opener.open(self.url("/_stats"), timeout=10) as r:
            kv = dict(l.split("=", 1) for l in r.read().decode().split())
        return int(kv["bytes_sent"]), int(kv["requests"])

    def requests(self):
        """Every request the server received, in arrival order (GET /_requests; the call itself is
        not listed): [(status, path_and_query, range or None, if_range or None)]."""
        try:
            with self.opener.open(self.url("/_requests"), timeout=10) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise Harness(f"GET /_requests: {e} (a test server older than this harness?)") from None
        out = []
        for line in text.splitlines():
            status, path, rng, if_range = line.split("\t")
            out.append((int(status), path, None if rng == "-" else rng, None if if_range == "-" else if_range))
        return out

    def stop(self):
        try:
            self.proc.stdin.close()  # EOF on stdin stops it
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()


# ---- Checks --------------------------------------------------------------------------------------

STATE_NAMES = ["QUEUED", "CONNECTING", "TRANSFERRING", "SUSPENDED", "ERROR", "TRANSIENT_ERROR",
               "TRANSFERRED", "ACKNOWLEDGED", "CANCELLED"]
# States a child may find the job in: open requeues active jobs (and the scheduler may already have
# started it: CONNECTING, TRANSFERRING); SUSPENDED if its creator died before resuming.
FOUND_OK = {"QUEUED", "CONNECTING", "TRANSFERRING", "TRANSIENT_ERROR", "SUSPENDED", "TRANSFERRED"}


def temp_files(dl):
    return sorted(os.path.basename(p) for p in glob.glob(str(dl / "BIT*.tmp")))


FILE_COLUMNS = ("temp_path", "bytes_total", "bytes_checkpointed", "completed", "committed")


def store_snapshot(state, snap, cols=FILE_COLUMNS):
    """(jobs, files) as the next open will find them, read from a copy of the database, its WAL
    and its operation log, so this reader never changes the library's files (no WAL recovery or
    checkpoint on them). The calls of the last moments before a kill are in the log: `fold_store`
    (core/examples) runs them into the copy's tables first, as the next open does. Each file is a
    dict of the `cols` of its row. A database without tables holds no job."""
    shutil.rmtree(snap, ignore_errors=True)
    snap.mkdir()
    if not (state / "openbits.db").exists():
        return [], []
    for name in ("openbits.db", "openbits.db-wal", "openbits.oplog"):
        if (state / name).exists():
            shutil.copyfile(state / name, snap / name)
    fold = subprocess.run([target_dir() / "debug" / "examples" / "fold_store", snap],
                          capture_output=True, text=True)
    if fold.returncode != 0:
        raise Failed(f"the store as the next open finds it cannot be opened: {fold.stderr.strip()}")
    con = sqlite3.connect(snap / "openbits.db", timeout=5)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
            return [], []  # killed while the first open was creating the schema
        jobs = [
            {"state": STATE_NAMES[st] if 0 <= st < len(STATE_NAMES) else str(st), "settling": se}
            for st, se in con.execute("SELECT state, settling FROM jobs")
        ]
        files = [dict(zip(cols, r)) for r in con.execute(
            f"SELECT {', '.join(cols)} FROM files ORDER BY job_seq, idx")]
    finally:
        con.close()
    return jobs, files


def first_difference(a, b):
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def check_modes(state):
    problems = []
    mode = stat.S_IMODE(os.stat(state).st_mode)
    if mode != 0o700:
        problems.append(f"state folder {state} has mode {mode:04o}, expected 0700")
    for name in ("openbits.db", "openbits.db-wal", "openbits.db-shm", "openbits.lock"):
        p = state / name
        if name == "openbits.db" or p.exists():
            mode = stat.S_IMODE(os.stat(p).st_mode)
            if mode != 0o600:
                problems.append(f"{p} has mode {mode:04o}, expected 0600")
    if problems:
        raise Failed("; ".join(problems))


def listing(path):
    try:
        return ", ".join(
            f"{e.name} ({e.stat().st_size} B, {stat.S_IMODE(e.stat().st_mode):04o})"
            for e in sorted(os.scandir(path), key=lambda e: e.name)
        ) or "(empty)"
    except OSError as e:
        return f"({e})"


# ---- The test ------------------------------------------------------------------------------------


class RoundState:
    """What the harness knows of the round's job, to check each child and each kill against."""

    def __init__(self):
        self.job_known = False  # a child printed CREATED: the job and its file are in the store
        self.checkpoint = 0  # the highest durable offset the store has held
        self.orphans = set()


class CrashTest:
    def __init__(self, seed, kills, early, work):
        self.seed, self.kills, self.early, self.work = seed, kills, early, work
        self.total_kills = kills + early  # as planned; the early round may skip some (see round)
        self.state = work / "state"  # created by the library (mode 0700)
        self.dl = work / "dl"
        self.dest = self.dl / "big.bin"
        self.snap = work / "snapshot"
        self.logfile = work / "children.log"
        self.last_child = None
        self.counts = {k: 0 for k in KINDS}
        self.late = {k: 0 for k in KINDS}  # the child had exited by itself before its kill
        self.guarded = 0
        self.c_outcomes = []
        self.lost = []  # (kind, bytes downloaded past the durable checkpoint at the kill)
        self.n_child = 0
        self.early_runs = []  # the early round's runs: (run number, checkpoint at start, Range sent)
        self.early_skipped = 0
        self.resume_problems = []  # the early round's runs that did not resume as they must

    def start_child(self, what):
        self.n_child += 1
        name = f"child {self.n_child} ({what})"
        c = Child([self.child_exe, self.state, self.url, self.dest], name, self.logfile)
        self.last_child = c
        return c

    def main(self):
        rng_plan = random.Random(f"openbits-crash-plan-{self.seed}")
        plan = make_plan(rng_plan, self.kills)
        early = make_early_round(rng_plan, self.early)
        if early:
            plan.append(early)
        self.dl.mkdir(parents=True)
        self.child_exe, server_exe = build(self.work)
        t_gen = time.monotonic()
        self.source = random.Random(self.seed).randbytes(SIZE)
        src = self.work / "source.bin"
        src.write_bytes(self.source)
        log(f"source: {SIZE} bytes from seed {self.seed} ({time.monotonic() - t_gen:.1f} s)")
        planned = {k: sum(1 for r in plan for kk, _ in r if kk == k) for k in KINDS}
        log(f"plan: {len(plan)} rounds, {self.total_kills} kills: "
            + ", ".join(f"({k}) {KIND_NAME[k]} x{planned[k]}" for k in KINDS))
        for i, r in enumerate(plan):
            log(f"  round {i + 1}: " + " ".join(f"{k}@{d * 1000:.1f}ms" for k, d in r))

        self.server = Server(server_exe, src)
        self.url = self.server.url(f"/big.bin?rate={RATE}")
        log(f"server: {self.url}")
        try:
            kill_no = 0
            for ri, kills in enumerate(plan):
                kill_no = self.round(ri, kills, kill_no, len(plan))
            served, requests = self.server.stats()
        finally:
            self.server.stop()

        kills = sum(self.counts.values())  # the early round may have skipped some
        bound, allowance = byte_bound(len(plan), kills)
        waste = served - len(plan) * SIZE
        log()
        log("kills by kind: " + ", ".join(
            f"({k}) {self.counts[k]}" + (f" ({self.late[k]} after the child had exited)" if self.late[k] else "")
            for k in KINDS) + f"; (b) kills fired early by the guard: {self.guarded}")
        log("(c) outcomes: " + "; ".join(self.c_outcomes))
        if self.early_runs:
            log("early round, Range of each run's first GET against the checkpoint stored when it started: "
                + "; ".join(f"run {n}: {fmt_range(r)} / {fmt_mib(cp).strip()}" for n, cp, r in self.early_runs)
                + (f"; {self.early_skipped} (e) kills skipped near the end of the file" if self.early_skipped else ""))
        for k in KINDS:
            lost = [b for kk, b in self.lost if kk == k]
            if lost:
                log(f"downloaded past the durable checkpoint at ({k}) kills: max {fmt_mib(max(lost)).strip()}, "
                    f"total {fmt_mib(sum(lost)).strip()} (from the last PROGRESS line: a lower estimate)")
        log(f"served: {served} bytes in {requests} requests; file size {SIZE}; rounds {len(plan)}; "
            f"kills {kills}; allowance {allowance} per kill")
        log(f"bound: {bound} = {len(plan)} x {SIZE} + {kills} x {allowance}; served/size = "
            f"{served / SIZE:.3f} (rounds alone {len(plan)}.000, bound {bound / SIZE:.3f}); waste "
            f"{waste / MiB:.1f} MiB = {waste / (bound - len(plan) * SIZE) * 100:.0f}% of the slack")
        if served < len(plan) * SIZE:
            raise Failed(f"the server sent {served} bytes, less than {len(plan)} whole files: "
                         "a destination cannot be right (or /_stats is wrong)")
        if served >= bound:
            raise Failed(f"the server sent {served} bytes, at or above the bound {bound}: "
                         "progress is not being checkpointed as promised")
        if self.resume_problems:
            self.last_child = None  # children.log has the runs; the last child (--count) is not one
            runs = len(self.early_runs) - 1
            raise Failed(f"early round: {len(self.resume_problems)} of the {runs} runs after the first did "
                         "not resume from the checkpoint an earlier run had recorded: "
                         + "; ".join(self.resume_problems))
        return served, bound, len(plan)

    def round(self, ri, kills, kill_no, n_rounds):
        early = kills[0][0] == "e"  # the early round: only (e) kills, each run's GETs checked
        log(f"\n== round {ri + 1}/{n_rounds}" + (" (early kills)" if early else ""))
        if self.dest.exists() or temp_files(self.dl):
            raise Failed(f"round {ri + 1} starts with files in {self.dl}: {listing(self.dl)}")
        rs = RoundState()
        for i, (kind, delay) in enumerate(kills):
            if kind == "e" and rs.checkpoint >= SIZE - GUARD:
                # A run could finish the file before its kill (0.9 s at RATE < GUARD): no more.
                self.early_skipped = len(kills) - i
                log(f"the checkpoint is within {GUARD // MiB} MiB of the end: the last "
                    f"{self.early_skipped} (e) kills are skipped")
                break
            kill_no += 1
            self.counts[kind] += 1
            cp_start = rs.checkpoint  # as the child's open will find it (the last kill's snapshot)
            seen_before = len(self.server.requests()) if early else 0
            c = self.start_child(f"round {ri + 1}, kill {kill_no} ({kind})")
            guard = False
            if kind == "d":
                time.sleep(delay)
            elif kind == "e":  # `delay` after the process was started, whatever it printed
                time.sleep(max(0.0, c.t0 + delay - time.monotonic()))
            elif kind == "a":
                t, line = c.wait_for(lambda l: l in ("CREATED", "ALREADY_DONE")
                                     or l.startswith(("FOUND", "FAIL")), LINE_TIMEOUT)
                if line != "CREATED":
                    c.kill()
                    raise Failed(f"{c.name}: said {line!r}; the first child of a round must create the job")
                time.sleep(max(0.0, t + delay - time.monotonic()))
            elif kind == "c":
                t, _ = c.wait_for(lambda l: l == "COMPLETING", TRANSFER_TIMEOUT)
                time.sleep(max(0.0, t + delay - time.monotonic()))
            else:  # b: `delay` after the first PROGRESS line, or at once near the end of the file
                guard = progress_for(c, delay, SIZE - GUARD) >= SIZE - GUARD
                self.guarded += guard
            t_kill = time.monotonic() - c.t0
            killed = c.kill()
            if kind == "e" and "COMPLETING" in c.text():
                raise Failed(f"{c.name}: the transfer finished before its early kill; the skip "
                             "near the end of the file should have prevented it")
            if not killed:
                self.late[kind] += 1
                if c.proc.returncode != 0:
                    raise Failed(f"{c.name} exited with status {c.proc.returncode} before its kill")
            progresses = [b for b in map(progress_bytes, c.text()) if b is not None]
            last_progress = progresses[-1] if progresses else None
            self.check_child(c, rs, finishing=False)
            note = self.check_store_after_kill(kind, c, rs)
            if last_progress is not None and kind != "c":
                self.lost.append((kind, max(0, last_progress - rs.checkpoint)))
            if early:
                note += "; " + self.check_resume(c, i + 1, cp_start, seen_before, t_kill)
            log(f"kill {kill_no:2}/{self.total_kills} ({kind}) {KIND_NAME[kind]:17} +{delay * 1000:6.1f} ms"
                f"{' guard' if guard else '      '} at {t_kill * 1000:7.1f} ms"
                f"{'' if killed else ' [had exited ' + str(c.proc.returncode) + ']'}"
                f"; PROGRESS {fmt_mib(last_progress)}; {note}")

        # The finishing run: never killed.
        cp_start = rs.checkpoint
        seen_before = len(self.server.requests()) if early else 0
        c = self.start_child(f"round {ri + 1}, finishing run")
        _, line = c.wait_for(lambda l: l.startswith(("COMPLETED", "ALREADY_DONE")), TRANSFER_TIMEOUT)
        c.finish(30)
        self.check_child(c, rs, finishing=True)
        if c.proc.returncode != 0:
            raise Failed(f"{c.name}: exited with status {c.proc.returncode} after {line!r}")
        if line.startswith("COMPLETED") and line != "COMPLETED 0x00000000":
            raise Failed(f"{c.name}: {line} (expected S_OK)")
        if early:
            runs = len(self.early_runs) + 1
            log(f"finishing run (early run {runs}): "
                + self.check_resume(c, runs, cp_start, seen_before, time.monotonic() - c.t0))
        self.verify_round(ri)
        served, requests = self.server.stats()
        log(f"round {ri + 1} verified: finishing run said {line!r}; DEST identical, no temporary "
            f"file, 0 jobs; served so far {fmt_mib(served).strip()} in {requests} requests")
        self.dest.unlink()
        return kill_no

    def check_resume(self, c, run, cp_start, seen_before, t_end):
        """The early round's check of one run (`run` counts from 1; the finishing run is the last).
        What the server received since the run started (GET /_requests) must show it resuming from
        the store: the first run asks for the whole file (no Range: the job is new); every later
        run's first GET of the file asks for `Range: bytes=N-` with N the checkpoint the store held
        when the run started (the last kill's snapshot, which the existing checks prove the
        temporary file covers, so the open's reconciliation keeps it), and N > 0, since the first
        run lived at least 0.2 s and its first checkpoint is committed as soon as its first data is
        flushed. A problem is recorded (it fails the test at the end); returns a note for the log."""
        gets = [r for r in self.server.requests()[seen_before:] if r[1].startswith("/big.bin")]
        rng = gets[0][2] if gets else None
        self.early_runs.append((run, cp_start, rng if gets else "none"))
        sent = (f"{len(gets)} GET(s), first {fmt_range(rng)}" if gets else "no GET")
        note = f"{sent}, checkpoint at its start {fmt_mib(cp_start).strip()}"
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        problem = None
        if run == 1:
            if rng is not None:
                problem = f"the first run sent Range: {rng} for a new job"
        elif not gets:
            problem = f"sent no request for the file in its {t_end * 1000:.0f} ms"
        elif cp_start == 0:
            problem = (f"its first GET had {fmt_range(rng)}: no earlier run had recorded a checkpoint "
                       f"(the store held 0 bytes when it started, after {run - 1} run(s) of at least "
                       f"{E_DELAY[0] * 1000:.0f} ms)")
        elif m is None or int(m[1]) != cp_start:
            problem = (f"its first GET had {fmt_range(rng)}, expected Range: bytes={cp_start}- (the "
                       "checkpoint the store held when it started)")
        if problem:
            self.resume_problems.append(f"{c.name} (early run {run}): {problem}")
            note += f"; RESUME CHECK FAILED: {problem}"
        else:
            note += "; resume OK"
        return note

    def check_child(self, c, rs, finishing):
        """What a child printed, against what earlier children left."""
        lines = check_reports(c)
        if "ALREADY_DONE" in lines and not finishing:
            raise Failed(f"{c.name}: ALREADY_DONE before the round's complete")
        if "CREATED" in lines and rs.job_known:
            raise Failed(f"{c.name}: found no job and created a new one: the store lost the job")
        if "ADOPTED" in lines and rs.job_known:
            raise Failed(f"{c.name}: found the job without its file: the store lost the file")
        info = found_info(lines)
        if info:
            state, _, got = info
            if state not in FOUND_OK:
                raise Failed(f"{c.name}: found the job in state {state}")
            if state == "TRANSFERRED" and (not finishing or got != SIZE):
                raise Failed(f"{c.name}: found the job TRANSFERRED with {got} bytes "
                             f"({'finishing run' if finishing else 'before its complete'})")
            if got > SIZE:
                raise Failed(f"{c.name}: the job claims {got} bytes of a {SIZE}-byte file")
        if "CREATED" in lines:
            rs.job_known = True

    def check_store_after_kill(self, kind, c, rs):
        """The store and the files as the next open will find them. Deterministic invariants: the
        job (once created) and its file are there until the complete; the durable offset never goes
        backwards and never exceeds what the temporary file holds, and those bytes are the source's;
        a destination, when present, is the whole file. Returns a note for the log."""
        jobs, files = store_snapshot(self.state, self.snap)
        tmps = temp_files(self.dl)
        dest = self.dest.exists()
        where = f"after {c.name}"
        if len(jobs) > 1:
            raise Failed(f"{where}: the store holds {len(jobs)} jobs: {jobs}")
        if rs.job_known and not jobs and kind != "c":
            raise Failed(f"{where}: the job is gone from the store before its complete")
        if rs.job_known and jobs and len(files) != 1:
            raise Failed(f"{where}: the job has {len(files)} files in the store, expected 1: {files}")
        if dest:
            data = self.dest.read_bytes()
            if data != self.source:
                raise Failed(f"{where}: DEST exists but differs from the source ({len(data)} of {SIZE} "
                             f"bytes, first difference at {first_difference(data, self.source)})")
            if kind != "c":
                raise Failed(f"{where}: DEST exists before the round's complete")
        recorded = set()
        for f in files:
            cp = f["bytes_checkpointed"]
            if cp > SIZE:
                raise Failed(f"{where}: checkpoint {cp} beyond the file's {SIZE} bytes")
            if cp < rs.checkpoint:
                raise Failed(f"{where}: the durable checkpoint went backwards from {rs.checkpoint} to {cp}")
            rs.checkpoint = cp
            temp = f["temp_path"]
            if f["committed"]:
                if not dest:
                    raise Failed(f"{where}: the file is marked committed but DEST is missing")
                continue
            if temp is None:
                if cp > 0 or f["completed"]:
                    raise Failed(f"{where}: the store holds {cp} bytes (completed={f['completed']}) but no temporary file")
                continue
            recorded.add(os.path.basename(temp))
            if not os.path.exists(temp):
                # Renamed onto DEST by a complete that died before recording it: fine (checked above).
                renamed = f["completed"] and dest and kind == "c"
                if (cp > 0 or f["completed"]) and not renamed:
                    raise Failed(f"{where}: the temporary file {temp} holding {cp} durable bytes is missing")
                continue
            with open(temp, "rb") as fh:
                data = fh.read()
            want = SIZE if f["completed"] else cp
            if len(data) < want:
                raise Failed(f"{where}: the store claims {want} bytes but {temp} holds {len(data)}")
            if data[:want] != self.source[:want]:
                raise Failed(f"{where}: {temp}'s first {want} durable bytes differ from the source at "
                             f"{first_difference(data[:want], self.source[:want])}")
        new_orphans = set(tmps) - recorded - rs.orphans
        rs.orphans |= new_orphans
        note = (f"store: {jobs[0]['state'] if jobs else 'no job'}"
                f"{' settling=' + str(jobs[0]['settling']) if jobs and jobs[0]['settling'] else ''}"
                f", checkpoint {fmt_mib(rs.checkpoint).strip()}; temp files {len(tmps)}")
        if new_orphans:
            note += f"; ORPHAN temporary file(s) no job records: {sorted(new_orphans)}"
        if kind == "c":
            completed = any(l.startswith("COMPLETED") for l in c.text())
            settling = bool(jobs and jobs[0]["settling"])
            if completed:
                outcome = "complete had returned"
            elif dest and not jobs:
                outcome = "complete done, COMPLETED not yet printed"
            elif dest:
                outcome = f"renamed, job still stored ({jobs[0]['state']}, settling={jobs[0]['settling']})"
            elif settling:
                outcome = "intent recorded, not yet renamed"
            else:
                outcome = "before the intent"
            self.c_outcomes.append(outcome)
            note += f"; DEST {'present' if dest else 'absent'} -> {outcome}"
        return note

    def verify_round(self, ri):
        problems = []
        if not self.dest.exists():
            raise Failed(f"round {ri + 1}: DEST {self.dest} does not exist")
        got = self.dest.read_bytes()
        if got != self.source:
            problems.append(f"DEST differs from the source: {len(got)} bytes vs {SIZE}, first "
                            f"difference at {first_difference(got, self.source)}")
        tmps = temp_files(self.dl)
        if tmps:
            problems.append(f"temporary files left beside DEST: {tmps}")
        jobs, files = store_snapshot(self.state, self.snap)
        if jobs or files:
            problems.append(f"the store holds {len(jobs)} job rows and {len(files)} file rows after "
                            f"the job completed: {jobs} {files}")
        cnt = Child([self.child_exe, "--count", self.state], f"round {ri + 1}, --count", self.logfile)
        self.last_child = cnt
        _, line = cnt.wait_for(lambda l: l.startswith("COUNT"), LINE_TIMEOUT)
        cnt.finish(30)
        if cnt.proc.returncode != 0 or line != "COUNT 0":
            problems.append(f"crash_child --count: {line!r} (status {cnt.proc.returncode}); expected COUNT 0")
        check_modes(self.state)
        if problems:
            raise Failed(f"round {ri + 1}: " + "; ".join(problems))


def fmt_mib(n):
    return "-" if n is None else f"{n / MiB:6.2f} MiB"


def fmt_range(rng):
    return {None: "no Range", "none": "no GET"}.get(rng, f"Range: {rng}")


def seed_from_env():
    """CRASH_SEED, or a random seed; printed first, with the command that reruns it."""
    seed_env = os.environ.get("CRASH_SEED")
    seed = int(seed_env) if seed_env else random.SystemRandom().randrange(1 << 32)
    log(f"seed={seed}   (rerun: CRASH_SEED={seed} {sys.argv[0]})")
    return seed


def supervise(name, seed, work, body, on_failure):
    """Runs `body()`, which returns the details of the PASSED line, and reports: exit status 0,
    1 on Failed, 2 on Harness (after `on_failure()` has printed what helps). The scratch folder
    `work` is kept on failure or with CRASH_KEEP=1; no child outlives the harness."""
    t0 = time.monotonic()
    try:
        details = body()
    except (Failed, Harness) as e:
        log(f"\nFAILED: {e}")
        on_failure()
        log(f"scratch folder kept: {work} (children.log has every child's output)")
        log(f"{name} FAILED: seed={seed} ({type(e).__name__}): {e}")
        return 1 if isinstance(e, Failed) else 2
    except BaseException:
        log(f"scratch folder kept: {work}")
        raise
    finally:
        # A child left running (a failed wait) would retry a dead server for ever: end it.
        for c in LIVE:
            if c.proc.poll() is None:
                os.kill(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
    if os.environ.get("CRASH_KEEP") == "1":
        log(f"scratch folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    log(f"{name} PASSED: seed={seed} {details} time={time.monotonic() - t0:.1f}s")
    return 0


def main():
    seed = seed_from_env()
    kills = int(os.environ.get("CRASH_KILLS", "24"))
    early = int(os.environ.get("CRASH_EARLY", "6"))
    if early < 0:
        log(f"CRASH_EARLY={early}: must be >= 0")
        return 2
    work = Path(tempfile.mkdtemp(prefix="openbits-crash."))
    test = CrashTest(seed, kills, early, work)

    def body():
        served, bound, rounds = test.main()
        c = test.counts
        return (f"kills={sum(c.values())} (a={c['a']} b={c['b']} c={c['c']} d={c['d']} e={c['e']}) "
                f"rounds={rounds} served={served} bound={bound} served/size={served / SIZE:.3f}")

    def on_failure():
        if test.last_child is not None:
            log(test.last_child.dump())
        log(f"state folder {test.state}: {listing(test.state)}")
        log(f"DEST folder {test.dl}: {listing(test.dl)}")

    return supervise("crash test", seed, work, body, on_failure)


if __name__ == "__main__":
    sys.exit(main())
