#!/usr/bin/env python3
"""A BITS download job through the openbits Python package, in the documented order (the same
program as examples/demo.c):

    open the manager -> create a job -> add the files -> resume
    -> show state and progress until TRANSFERRED (or ERROR) -> complete

    python3 download.py BASE_URL DEST_DIR NAME...

Each NAME is downloaded from BASE_URL/NAME to DEST_DIR/NAME. A NAME may carry a query string
(e.g. "a.bin?rate=100000"); it is left out of the local name. The manager keeps its state in
DEST_DIR/.openbits-state.
"""

import os
import sys
import time

import openbits
from openbits import JobState


def show(tty: bool, state: JobState, p: openbits.Progress) -> None:
    total = "?" if p.bytes_total is None else str(p.bytes_total)
    percent = "--" if p.fraction is None else f"{100 * p.fraction:5.1f}%"
    line = (
        f"{state.name:<15} {p.bytes_transferred:>10} / {total:<10} bytes {percent:>7}"
        f"   files {p.files_transferred}/{p.files_total}"
    )
    print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(f"usage: {argv[0]} BASE_URL DEST_DIR NAME...", file=sys.stderr)
        return 2
    base, dest_dir, names = argv[1], argv[2], argv[3:]
    tty = sys.stdout.isatty()
    print(f"openbits {openbits.library_version}")

    # 1. The manager: a queue of jobs, persisted in a state folder, with its own threads.
    with openbits.Manager(os.path.join(dest_dir, ".openbits-state")) as manager:
        # 2. A download job. It starts SUSPENDED.
        with manager.create_job("openbits demo", openbits.JobType.DOWNLOAD) as job:
            print(f"job {job.id} created")

            # 3. Its files: remote URL -> local path.
            for name in names:
                url = f"{base}/{name}"
                path = os.path.join(dest_dir, name.split("?")[0].split("#")[0])
                job.add_file(url, path)
                print(f"  + {url} -> {path}")

            # 4. Resume: the job is queued and the manager's threads transfer it.
            job.resume()

            # 5. Poll until TRANSFERRED or ERROR (TRANSIENT_ERROR retries by itself). Without a
            #    display, job.wait() alone would do: it blocks until then.
            t0 = time.monotonic()
            tick = 0
            while True:
                state, progress = job.state, job.progress
                done = state in (JobState.TRANSFERRED, JobState.ERROR)
                if tty or done or tick % 10 == 0:
                    show(tty, state, progress)
                if done:
                    break
                time.sleep(0.1)
                tick += 1
            if tty:
                print()

            if state == JobState.ERROR:
                error = job.error
                if error is not None:
                    context = getattr(error.context, "name", error.context)
                    print(
                        f"download.py: job failed: 0x{error.code:08X} ({context}): "
                        f"{error.description}",
                        file=sys.stderr,
                    )
                job.cancel()  # deletes the temporary files
                return 1
            print(
                f"transferred {progress.bytes_transferred} bytes in {progress.files_transferred} "
                f"files in {time.monotonic() - t0:.1f} s"
            )

            # 6. Complete: the temporary BIT*.tmp files are flushed and renamed onto the
            #    destinations.
            result = job.complete()
            if result != openbits.HResult.S_OK:
                print(f"download.py: complete returned 0x{result:08X}", file=sys.stderr)
                return 1
            print(f"job {job.id} {job.state.name}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except openbits.BitsError as e:
        print(f"\ndownload.py: {e}", file=sys.stderr)
        sys.exit(1)
