#!/usr/bin/env python3
"""An upload job (or, with --reply, an upload-reply job) through the openbits Python package:

    python3 upload.py [--reply] FILE URL

Sends FILE to URL, a BITS upload server (IIS's BITS extension or openbits-server), and completes
the job. With --reply the server's application answers: the program prints the reply's size and
the file complete() put it in. The manager keeps its state beside FILE, in .openbits-state.
"""

import os
import sys

import openbits
from openbits import JobState, JobType


def main(argv: list[str]) -> int:
    reply = "--reply" in argv[1:]
    args = [a for a in argv[1:] if a != "--reply"]
    if len(args) != 2:
        print(f"usage: {argv[0]} [--reply] FILE URL", file=sys.stderr)
        return 2
    path, url = os.path.abspath(args[0]), args[1]
    state = os.path.join(os.path.dirname(path), ".openbits-state")
    with openbits.Manager(state) as manager:
        kind = JobType.UPLOAD_REPLY if reply else JobType.UPLOAD
        with manager.create_job("openbits upload example", kind) as job:
            job.add_file(url, path)  # an upload job has exactly one file
            job.resume()  # Create-Session, Fragments, [the reply], Close-Session
            if job.wait(timeout=600) != JobState.TRANSFERRED:
                print(f"failed: {job.error}", file=sys.stderr)
                job.cancel()
                return 1
            print(f"uploaded {job.progress.bytes_transferred} bytes")
            if reply:
                data = job.reply_data  # bytes; up to 1 MiB (else read reply_file_name)
                print(f"reply: {len(data)} bytes")
            job.complete()
            if reply:
                print(f"reply file: {job.reply_file_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
