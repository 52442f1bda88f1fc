#!/usr/bin/env bash
# tests/c/run.sh: builds libopenbits and the test server (cargo, debug), starts the server on the
# files the tests need, compiles each C test against include/openbits.h and
# target/debug/libopenbits.so, runs them, then runs the download and errors tests again under
# valgrind (memcheck; a definite or indirect leak fails).
#
# Prints PASS/FAIL per test and exits non-zero if any failed. Works from any directory.
#
# Environment:
#   TESTS="download errors"  run only these tests (default: every tests/c/*.c)
#   VALGRIND=0               skip the valgrind runs (default 1: valgrind is installed if missing and root)
#   VALGRIND_TESTS="download errors"  the tests run again under valgrind
#   KEEP=1                   keep the scratch folder (it is also kept when a test fails)
#   TEST_TIMEOUT=300         seconds before a hung test is killed and counted as failed
#   SANITIZE=1               compile the tests with -fsanitize=address,undefined (into
#                            tests/c/build-sanitize): any report fails the test. The library is
#                            built as usual. No valgrind run then: valgrind and ASan do not mix.
#   LIBDIR=DIR               use libopenbits.so and openbits-testserver from DIR instead of
#                            building target/debug (scripts/sanitize.sh: a library built with ASan)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BUILD="$ROOT/tests/c/build"
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

if [[ -n "${LIBDIR:-}" ]]; then
    LIBDIR=$(cd "$LIBDIR" && pwd)
    cargo build --quiet -p openbits-testserver -p openbits-server
else
    LIBDIR="$ROOT/target/debug"
    echo "== cargo build -p openbits-ffi -p openbits-testserver -p openbits-server (debug)"
    cargo build --quiet -p openbits-ffi -p openbits-testserver -p openbits-server
fi

CC=${CC:-cc}
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pthread -g -I include)
if [[ "${SANITIZE:-0}" == 1 ]]; then
    BUILD="$ROOT/tests/c/build-sanitize"
    CFLAGS+=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    # A report ends the test with a failure; leaks count (the library's own allocations are
    # intercepted too, but only the C tests are instrumented).
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=98}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    VALGRIND=0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/openbits-ctest.XXXXXX")
SERVER_PID=""
failed=0

cleanup() {
    local rc=$?
    # Closing the server's stdin stops it; kill it only if it does not stop by itself.
    exec 3>&- 2>/dev/null || true
    if [[ -n "${REPLY_SERVER_PID:-}" ]]; then
        kill "$REPLY_SERVER_PID" 2>/dev/null || true
        wait "$REPLY_SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]]; then
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 || $failed -ne 0 || "${KEEP:-0}" == 1 ]]; then
        echo "scratch folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Source files -------------------------------------------------------------------------------
SRC="$WORK/src"
mkdir -p "$SRC" "$WORK/scratch"
head -c $((9 * 1024 * 1024 + 12345)) /dev/urandom >"$SRC/big.bin"  # >= 8 MiB, odd size
head -c 100003 /dev/urandom >"$SRC/small.bin"
: >"$SRC/empty.bin"
head -c $((1024 * 1024)) /dev/urandom >"$SRC/slow.bin"  # served with ?rate= for mid-transfer tests
head -c 300007 /dev/urandom >"$SRC/mid.bin"

server_args=()
for f in big small empty slow mid; do
    server_args+=(--file "/$f.bin=$SRC/$f.bin")
done

# ---- Server ---------------------------------------------------------------------------------------
# Its stdin is a FIFO held open on fd 3: closing fd 3 (in cleanup) stops it.
source "$ROOT/tests/server/start.sh"
start_test_server "$LIBDIR/openbits-testserver" "$WORK" "${server_args[@]}"
SERVER_PID=$TEST_SERVER_PID port=$TEST_SERVER_PORT
echo "== test server pid $SERVER_PID on port $port"

start_reply_server "$LIBDIR/openbits-server" "$WORK" "http://127.0.0.1:$port/_reverse"
export OPENBITS_REPLY_URL=$REPLY_SERVER_URL
echo "== openbits-server pid $REPLY_SERVER_PID at $OPENBITS_REPLY_URL (upload-reply)"

export OPENBITS_TEST_URL="http://127.0.0.1:$port"
export OPENBITS_TEST_SRC="$SRC"
export OPENBITS_TEST_WORK="$WORK/scratch"
# The library's default state folder, should anything use it: never the user's own.
export OPENBITS_HOME="$WORK/home"

# ---- Compile --------------------------------------------------------------------------------------
mkdir -p "$BUILD"
if [[ -n "${TESTS:-}" ]]; then
    read -r -a tests <<<"$TESTS"
else
    tests=()
    for f in tests/c/*.c; do
        tests+=("$(basename "$f" .c)")
    done
fi

LDFLAGS=(-L "$LIBDIR" -Wl,-rpath,"$LIBDIR" -lopenbits)

pass=0
results=()
record() { # name ok?
    if [[ $2 == 0 ]]; then
        echo "PASS $1"
        results+=("PASS $1")
        pass=$((pass + 1))
    else
        echo "FAIL $1${3:+ ($3)}"
        results+=("FAIL $1${3:+ ($3)}")
        failed=$((failed + 1))
    fi
}

for t in "${tests[@]}"; do
    echo "== cc tests/c/$t.c"
    rm -f "$BUILD/$t"
    if "$CC" "${CFLAGS[@]}" -o "$BUILD/$t" "tests/c/$t.c" "${LDFLAGS[@]}"; then
        :
    else
        record "$t" 1 "does not compile"
    fi
done

# ---- Run ------------------------------------------------------------------------------------------
run_test() { # label log command...
    local label=$1 log=$2 rc=0
    shift 2
    echo "== $label"
    local start=$SECONDS
    timeout -k 10 "$TEST_TIMEOUT" "$@" 2>&1 | tee "$log" || rc=$?
    local why=""
    if [[ $rc == 124 || $rc == 137 ]]; then
        why="timed out after ${TEST_TIMEOUT}s"
    elif [[ $rc == 99 && $1 == valgrind ]]; then
        why="valgrind found memory errors or leaks"
    elif [[ $rc == 98 ]]; then
        why="AddressSanitizer found memory errors or leaks"
    elif [[ $rc != 0 ]]; then
        why="exit $rc"
    fi
    record "$label" "$rc" "$why"
    echo "   ($((SECONDS - start)) s)"
}

for t in "${tests[@]}"; do
    [[ -x "$BUILD/$t" ]] || continue
    run_test "$t" "$WORK/$t.log" "$BUILD/$t"
done

# ---- Valgrind ---------------------------------------------------------------------------------------
# The download test (and the error paths) again under memcheck: any definite or indirect leak, or
# any memory error, fails the run.
VALGRIND_TESTS=${VALGRIND_TESTS:-download errors events callbacks upload tls}
if [[ "${VALGRIND:-1}" != 0 ]]; then
    if ! command -v valgrind >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing valgrind"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind) >/dev/null 2>&1 || true
    fi
    for t in $VALGRIND_TESTS; do
        [[ " ${tests[*]} " == *" $t "* ]] || continue
        if ! command -v valgrind >/dev/null 2>&1; then
            record "$t (valgrind)" 1 "valgrind is not installed and cannot be installed"
            continue
        fi
        [[ -x "$BUILD/$t" ]] || continue
        vlog="$WORK/$t.valgrind"
        run_test "$t (valgrind)" "$WORK/$t-valgrind.log" valgrind --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$vlog" "$BUILD/$t"
        grep -E "ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:|All heap blocks" "$vlog" |
            sed 's/^==[0-9]*== */   valgrind: /' || true
        if [[ ${results[-1]} == FAIL* ]]; then
            echo "   full valgrind log: $vlog"
        fi
    done
fi

# ---- Summary ------------------------------------------------------------------------------------------
echo
echo "== summary"
for r in "${results[@]}"; do
    echo "$r"
done
echo "$pass passed, $failed failed"
[[ $failed == 0 ]]
