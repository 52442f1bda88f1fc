#!/usr/bin/env bash
# scripts/soak.sh MINUTES: 50 download jobs at a time against the fault-injecting test server, with
# random faults and random SIGKILLs of the process driving them, for MINUTES (default 1); then every
# file must be byte-exact, no job lost, no temporary file left. SOAK_SEED reproduces a run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tests/soak/run.py "${1:-1}"
