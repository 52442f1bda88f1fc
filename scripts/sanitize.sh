#!/usr/bin/env bash
# scripts/sanitize.sh: the Rust tests of the core and the C ABI, then the C test suite, with the
# library itself built with AddressSanitizer (RUSTFLAGS=-Zsanitizer=address, nightly only). Not
# part of CI (CI must not depend on nightly); scripts/test.sh has the stable sanitizer run (the C
# tests built with ASan and UBSan).
#
# The standard library is not rebuilt (that needs rust-src and -Zbuild-std); `--target` keeps the
# sanitizer flags off build scripts and proc-macros. Output goes to target/asan.
#
# Environment:
#   CRATES="openbits-core openbits-ffi"   the crates whose tests run (default: these two)
#   SKIP_C=1                              only the Rust tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "sanitize.sh: no nightly toolchain, nothing to do (rustup toolchain install nightly to run it)"
    exit 0
fi

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes"
export RUSTDOCFLAGS="$RUSTFLAGS"
export CARGO_TARGET_DIR="$PWD/target/asan"
# Leaks are valgrind's and the C suite's business; here ASan looks for memory errors.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}

read -r -a crates <<<"${CRATES:-openbits-core openbits-ffi}"
pkgs=()
for c in "${crates[@]}"; do pkgs+=(-p "$c"); done

echo "== cargo +nightly test ${crates[*]} (library and tests built with -Zsanitizer=address)"
cargo +nightly test --quiet --target "$host" "${pkgs[@]}" --lib --tests

if [[ "${SKIP_C:-0}" != 1 ]]; then
    echo "== C tests against the ASan-built libopenbits.so"
    cargo +nightly build --quiet --target "$host" -p openbits-ffi -p openbits-testserver
    libdir="$CARGO_TARGET_DIR/$host/debug"
    # A Rust cdylib does not carry the ASan runtime: the C programs, built with
    # -fsanitize=address,undefined (SANITIZE=1), bring the C compiler's, which serves both.
    LIBDIR="$libdir" SANITIZE=1 tests/c/run.sh
fi
echo "== sanitize.sh: no reports"
