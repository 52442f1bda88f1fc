#!/usr/bin/env bash
# bindings/dotnet/test.sh: builds and tests the OpenBits .NET binding with Mono (no .NET SDK needed).
#
#   bindings/dotnet/test.sh [TEST-NAME-SUBSTRING...]
#
# 1. installs Mono from Debian if mcs or mono is missing (as root: mono-mcs mono-runtime);
# 2. builds libopenbits, the test server and openbits-server (cargo build -p openbits-ffi
#    -p openbits-testserver -p openbits-server);
# 3. compiles OpenBits.dll, the test program and examples/Download.cs with mcs into
#    bindings/dotnet/build/;
# 4. runs the tests with mono (they start the test server themselves), then the example against a
#    test server started here, and checks the downloaded files with cmp.
# Exits non-zero on any failure. Works from any current directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$here/build"

# The binding declares the ABI version it was written for; it must be the header's.
hdr() { awk -v n="$1" '$1 == "#define" && $2 == n { print $3 }' "$repo/include/openbits.h"; }
declared=$(sed -n 's/.*const int Expected\(Major\|Minor\) = \([0-9]*\);.*/\2/p' "$here/src/NativeMethods.cs" | paste -sd.)
if [[ "$declared" != "$(hdr BITS_VERSION_MAJOR).$(hdr BITS_VERSION_MINOR)" ]]; then
    echo "test.sh: NativeMethods.Expected{Major,Minor} is $declared; the header is $(hdr BITS_VERSION_MAJOR).$(hdr BITS_VERSION_MINOR)" >&2
    exit 1
fi
if ! command -v mcs >/dev/null 2>&1 || ! command -v mono >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "test.sh: Mono is missing; as root: apt-get install -y mono-mcs mono-runtime" >&2
        exit 1
    fi
    echo "== installing Mono from Debian (mono-mcs mono-runtime)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends mono-mcs mono-runtime >/dev/null
fi
echo "== $(mono --version | head -n1)"

echo "== building libopenbits and openbits-testserver (debug)"
(cd "$repo" && cargo build -q -p openbits-ffi -p openbits-testserver -p openbits-server)
lib="$repo/target/debug"
server_bin="$lib/openbits-testserver"
export OPENBITS_SERVER_BIN="$lib/openbits-server" # upload-reply tests

echo "== compiling OpenBits.dll, OpenBits.Tests.exe, Download.exe"
mkdir -p "$build"
mcs -nologo -target:library -out:"$build/OpenBits.dll" -doc:"$build/OpenBits.xml" -nowarn:1591 \
    -warnaserror+ -debug "$here"/src/*.cs
cp "$here/OpenBits.dll.config" "$build/"
mcs -nologo -out:"$build/OpenBits.Tests.exe" -r:"$build/OpenBits.dll" -r:System.Core.dll \
    -warnaserror+ -debug "$here"/tests/*.cs
mcs -nologo -out:"$build/Download.exe" -r:"$build/OpenBits.dll" -warnaserror+ "$here/examples/Download.cs"
mcs -nologo -out:"$build/Upload.exe" -r:"$build/OpenBits.dll" -warnaserror+ "$here/examples/Upload.cs"

# DllImport("openbits") -> libopenbits.so (OpenBits.dll.config), found on LD_LIBRARY_PATH.
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# An HTTPS server for the TLS test, with certificates made for this run.
tls_work="$(mktemp -d "${TMPDIR:-/tmp}/openbits-dotnet-tls.XXXXXX")"
stop_tls() {
    if [[ -n "${TLS_SERVER_PID:-}" ]]; then kill "$TLS_SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$tls_work"
}
trap stop_tls EXIT
mkdir -p "$tls_work/www"
head -c 200003 /dev/urandom >"$tls_work/www/tls.bin"
source "$repo/tests/server/start_tls.sh"
start_tls_server "$tls_work" "$tls_work/www"
export OPENBITS_TEST_TLS_URL="$TLS_SERVER_URL" OPENBITS_TEST_TLS_DIR="$TLS_DIR" OPENBITS_TEST_TLS_FILE="$tls_work/www/tls.bin"

echo "== running the tests"
timeout 600 mono --debug "$build/OpenBits.Tests.exe" --server "$server_bin" "$@"
stop_tls

# The example, against a server started here (as examples/demo.sh does for demo.c).
work="$(mktemp -d "${TMPDIR:-/tmp}/openbits-dotnet-example.XXXXXX")"
server_pid=""
cleanup() {
    local rc=$?
    exec 3>&- 2>/dev/null || true # the server stops when its stdin reaches EOF...
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true # ...or when told to
    fi
    [[ -z "$server_pid" ]] || wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

src="$work/src"
dest="$work/dest"
mkdir -p "$src" "$dest"
names=(alpha.bin bravo.bin)
head -c $((768 * 1024)) /dev/urandom >"$src/alpha.bin"
head -c $((512 * 1024)) /dev/urandom >"$src/bravo.bin"
source "$repo/tests/server/start.sh"
start_test_server "$server_bin" "$work" --file "/files/alpha.bin=$src/alpha.bin" --file "/files/bravo.bin=$src/bravo.bin"
server_pid=$TEST_SERVER_PID port=$TEST_SERVER_PORT

echo "== running examples/Download.cs"
timeout 120 mono "$build/Download.exe" "http://127.0.0.1:$port/files" "$dest" "alpha.bin?rate=1000000" bravo.bin
for n in "${names[@]}"; do
    cmp "$src/$n" "$dest/$n"
done
leftover=("$dest"/BIT*.tmp)
[[ ! -e "${leftover[0]}" ]] || { echo "temporary files left behind: ${leftover[*]}" >&2; exit 1; }
echo "== example verified: ${#names[@]} files identical"

echo "== running examples/Upload.cs (an upload-reply job to openbits-server)"
start_reply_server "$OPENBITS_SERVER_BIN" "$work" "http://127.0.0.1:$port/_reverse"
cp "$src/alpha.bin" "$work/report.bin"
timeout 120 mono "$build/Upload.exe" --reply "$work/report.bin" "$REPLY_SERVER_URL/dotnet/report.bin" | tee "$work/upload.out"
answer=$(sed -n 's/^reply file: //p' "$work/upload.out")
python3 -c 'import sys; a, b = (open(p, "rb").read() for p in sys.argv[1:]); sys.exit(a[::-1] != b)' \
    "$work/report.bin" "$answer"
kill "$REPLY_SERVER_PID"
echo "== upload example verified: the reply is the file reversed"
echo "== bindings/dotnet: all passed"
