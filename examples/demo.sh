#!/usr/bin/env bash
# examples/demo.sh: the openbits demo, offline. Builds libopenbits, the `openbits` command and the
# test server, serves three random files from 127.0.0.1 at a throttled rate, downloads them in one
# BITS job with examples/demo.c (progress shown while it runs), then checks every byte with cmp;
# then downloads one of them again with `openbits transfer` (the command line, Start-BitsTransfer
# style), into a queue of its own, and checks it too.
#
#   examples/demo.sh
#
# Environment: DEMO_RATE  bytes per second per file (default 1300000; the test server sends at
# most 64 KiB per 50 ms, so about 1.3 MB/s is its throttled ceiling).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rate="${DEMO_RATE:-1300000}"

echo "== building libopenbits, openbits and openbits-testserver (debug)"
(cd "$repo" && cargo build -q -p openbits-ffi -p openbits-cli -p openbits-testserver)
lib="$repo/target/debug"
server_bin="$repo/target/debug/openbits-testserver"
openbits_bin="$repo/target/debug/openbits"

work="$(mktemp -d "${TMPDIR:-/tmp}/openbits-demo.XXXXXX")"
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

# Three source files of random content.
src="$work/src"
dest="$work/dest"
mkdir -p "$src" "$dest"
names=(alpha.bin bravo.bin charlie.bin)
sizes_kib=(1536 2048 1024)
for i in "${!names[@]}"; do
    head -c "$((sizes_kib[i] * 1024))" /dev/urandom >"$src/${names[i]}"
done

# The server: stdin is a FIFO held open by this shell, so it lives until this script ends.
args=()
for n in "${names[@]}"; do args+=(--file "/files/$n=$src/$n"); done
source "$repo/tests/server/start.sh"
start_test_server "$server_bin" "$work" "${args[@]}"
server_pid=$TEST_SERVER_PID port=$TEST_SERVER_PORT
base="http://127.0.0.1:$port/files"
echo "== test server on 127.0.0.1:$port, $rate bytes/s per file"

echo "== compiling examples/demo.c"
cc -std=c11 -Wall -Wextra -Werror -I "$repo/include" "$repo/examples/demo.c" -o "$work/demo" \
    -L "$lib" -lopenbits -Wl,-rpath,"$lib"

echo "== running the demo"
remote=()
for n in "${names[@]}"; do remote+=("$n?rate=$rate"); done
"$work/demo" "$base" "$dest" "${remote[@]}"

echo "== verifying"
for n in "${names[@]}"; do
    cmp "$src/$n" "$dest/$n"
    echo "  $n: $(stat -c %s "$dest/$n") bytes, identical"
done
leftover=("$dest"/BIT*.tmp)
[[ ! -e "${leftover[0]}" ]] || { echo "temporary files left behind: ${leftover[*]}" >&2; exit 1; }
echo "verified ${#names[@]} files"

echo "== the same with the command line: openbits transfer"
# A queue of its own (not the user's default one), removed with the rest of $work.
mkdir -p "$work/cli"
"$openbits_bin" --state-dir "$work/queue" transfer "$base/${names[0]}?rate=$rate" "$work/cli/${names[0]}"
cmp "$src/${names[0]}" "$work/cli/${names[0]}"
echo "  ${names[0]}: identical"
