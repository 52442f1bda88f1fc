#!/usr/bin/env bash
# Runs every test of openbits: Rust unit and integration tests (including the check that
# include/openbits.h is what the generator produces, and the fuzz targets replaying their corpora),
# the C test suite (with a valgrind run, then again built with ASan and UBSan), the crash tests (a
# C child SIGKILLed at random moments, downloading and uploading), a short soak, and the demo
# (openbits-server's curl compatibility check runs from cargo test: server/tests/curl_compat.rs).
# Installs the system packages it needs when run as root on Debian/Ubuntu, and moto
# (an S3 server for the openbits-server fleet test) from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v valgrind >/dev/null || need+=(valgrind)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v ip >/dev/null || need+=(iproute2)   # network namespaces for core/tests/network.rs
command -v dbus-daemon >/dev/null || need+=(dbus)   # a private bus for core/tests/metered.rs
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
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

# openbits-server's fleet test runs several nodes against moto's S3 server on loopback.
if ! command -v moto_server >/dev/null && ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "== installing moto[server] (S3 on loopback for the openbits-server fleet test)"
  # A Debian python3 refuses installs outside a venv (PEP 668) unless told otherwise.
  python3 -m pip install --quiet "moto[server]" ||
    python3 -m pip install --quiet --break-system-packages "moto[server]"
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

echo "== Rust tests (core, ffi, the openbits command line, header freshness, test server, protocol, openbits-server, curl speaking BITS by hand)"
cargo test --workspace --quiet
echo "== C tests"
tests/c/run.sh
echo "== C tests built with -fsanitize=address,undefined (about a minute)"
SANITIZE=1 tests/c/run.sh
echo "== crash test (SIGKILL at random moments; CRASH_SEED reproduces a run)"
tests/crash/run.py
echo "== upload crash test (SIGKILL at random moments during a 128 MiB upload; CRASH_SEED reproduces a run)"
tests/crash/upload_run.py
echo "== soak, short (random faults and SIGKILLs; scripts/soak.sh 30 for the long run)"
scripts/soak.sh 0.3
echo "== C and C++ consumers (install, CMake, pkg-config, openbits.hpp)"
bindings/cpp/test.sh
echo "== Python binding (pip install, pytest, wheel)"
bindings/python/test.sh
echo "== .NET binding (Mono)"
bindings/dotnet/test.sh
echo "== demo"
examples/demo.sh
echo "== all tests passed"
