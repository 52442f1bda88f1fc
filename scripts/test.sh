#!/usr/bin/env bash
# Runs every test of openbits: Rust unit and integration tests (including the check that
# include/openbits.h is what the generator produces), the C test suite (with a valgrind run), the
# crash test (a C child SIGKILLed at random moments), and the demo. Installs the system packages
# it needs when run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v valgrind >/dev/null || need+=(valgrind)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing packages: ${need[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi

echo "== Rust tests (core, ffi, the openbits command line, header freshness, test server)"
cargo test --workspace --quiet
echo "== C tests"
tests/c/run.sh
echo "== crash test (SIGKILL at random moments; CRASH_SEED reproduces a run)"
tests/crash/run.py
echo "== C and C++ consumers (install, CMake, pkg-config, openbits.hpp)"
bindings/cpp/test.sh
echo "== Python binding (pip install, pytest, wheel)"
bindings/python/test.sh
echo "== .NET binding (Mono)"
bindings/dotnet/test.sh
echo "== demo"
examples/demo.sh
echo "== all tests passed"
