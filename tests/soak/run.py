#!/usr/bin/env python3
"""tests/soak/run.py MINUTES: a soak of openbits against the fault-injecting test server.

Rounds of 50 download jobs (files of 4 KiB to 6 MiB, seeded random bytes), each URL with a random
fault of tests/server (`drop=N:K` connections cut mid-body, `fail=503:K` with or without
`Retry-After`, `rate=B` slow bodies, `norange=1` servers that ignore Range, or none), driven by
tests/soak/soak_child (C ABI) which is SIGKILLed 0.05-3 s after each start and started again on the
same state folder, for MINUTES. Then the last round is finished by a child that is not killed.

After each round: every destination equals its source byte for byte, no BIT*.tmp is left, the store
holds no job (`soak_child --count`), no child failed. Prints the counts (rounds, jobs, kills, bytes)
at the end; exits 1 on any failure. SOAK_SEED reproduces a run.
"""

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JOBS = 50


def build(work: Path) -> Path:
    """Builds the library, the server and the child into `work` (copies: a rebuild in the tree
    during a long soak does not change what it runs)."""
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "openbits-ffi", "-p", "openbits-testserver"],
        cwd=ROOT,
        check=True,
    )
    lib = work / "bin"
    lib.mkdir()
    for name in ("libopenbits.so", "openbits-testserver"):
        shutil.copy2(ROOT / "target" / "debug" / name, lib / name)
    exe = lib / "soak_child"
    subprocess.run(
        ["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "include"),
         str(ROOT / "tests" / "soak" / "soak_child.c"), "-o", str(exe), "-L", str(lib),
         f"-Wl,-rpath,{lib}", "-lopenbits"],
        check=True,
    )
    return exe


def fault(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"drop={rng.randrange(1000, 2_000_000)}:{rng.randrange(1, 4)}"
    if kind == 1:
        return f"fail=503:{rng.randrange(1, 4)}"
    if kind == 2:
        return f"fail=503:{rng.randrange(1, 3)}&retryafter=1"
    if kind == 3:
        return f"rate={rng.randrange(1_000_000, 4_000_000)}"
    if kind == 4:
        return "norange=1"
    return ""


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 31))))
    rng = random.Random(seed)
    print(f"== soak for {minutes} min, SOAK_SEED={seed}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="openbits-soak."))
    child = build(work)
    src = work / "src"
    src.mkdir()
    digests = {}
    args = []
    for i in range(JOBS):
        data = rng.randbytes(rng.randrange(4096, 6 << 20))
        (src / f"f{i}.bin").write_bytes(data)
        digests[i] = hashlib.sha256(data).hexdigest()
        args += ["--file", f"/f{i}.bin={src}/f{i}.bin"]
    server = subprocess.Popen(
        [str(work / "bin" / "openbits-testserver"), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert server.stdout is not None
    port = server.stdout.readline().decode().strip().removeprefix("port=")
    base = f"http://127.0.0.1:{port}"
    state = work / "state"
    kills = rounds = jobs_done = nbytes = 0
    failures = []
    deadline = time.monotonic() + minutes * 60
    try:
        while not failures:
            finishing = time.monotonic() >= deadline
            if finishing and rounds > 0:
                break
            rounds += 1
            dest = work / f"round{rounds}"
            dest.mkdir()
            manifest = work / "manifest"
            with manifest.open("w") as m:
                for i in range(JOBS):
                    q = fault(rng)
                    url = f"{base}/f{i}.bin?u={rounds}-{i}" + (f"&{q}" if q else "")
                    m.write(f"r{rounds}-j{i} {url} {dest}/f{i}.bin\n")
            while True:
                last = time.monotonic() >= deadline
                p = subprocess.Popen([str(child), str(state), str(manifest)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                try:
                    out, _ = p.communicate(timeout=600 if last else rng.uniform(0.05, 3.0))
                except subprocess.TimeoutExpired:
                    if last:
                        p.kill()
                        failures.append(f"round {rounds}: the unkilled child did not finish in 600 s")
                        break
                    p.send_signal(signal.SIGKILL)
                    p.communicate()
                    kills += 1
                    continue
                text = out.decode(errors="replace")
                if p.returncode != 0:
                    failures.append(f"round {rounds}: child exit {p.returncode}: {text[-2000:]}")
                    break
                if "ALL DONE" in text:
                    break
            if failures:
                break
            # The round's checks.
            for i in range(JOBS):
                f = dest / f"f{i}.bin"
                data = f.read_bytes() if f.exists() else b""
                if hashlib.sha256(data).hexdigest() != digests[i]:
                    failures.append(f"round {rounds}: {f} differs from its source")
                nbytes += len(data)
            leftovers = [p.name for p in dest.iterdir() if p.name.startswith("BIT")]
            if leftovers:
                failures.append(f"round {rounds}: temporary files left: {leftovers}")
            count = subprocess.run([str(child), "--count", str(state)], stdout=subprocess.PIPE,
                                   check=False).stdout.decode().strip()
            if count != "COUNT 0":
                failures.append(f"round {rounds}: the store still holds jobs: {count}")
            jobs_done += JOBS
            shutil.rmtree(dest)
            print(f"   round {rounds}: {JOBS} jobs byte-exact; kills so far {kills}", flush=True)
    finally:
        server.kill()
        server.wait()
    print(f"== soak: {rounds} rounds, {jobs_done} jobs completed byte-exact "
          f"({nbytes / 1e6:.0f} MB), {kills} SIGKILLs, {minutes} min, SOAK_SEED={seed}")
    for f in failures:
        print("FAIL", f)
    if failures:
        print(f"work folder kept: {work}")
        return 1
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
