# Sourced by the test scripts: starts openbits-testserver and learns its port.
#
# start_test_server BINARY DIR ARGS...
#   Starts BINARY with ARGS. Its stdin is a FIFO held open on fd 3 by the calling shell, so the
#   server lives until the script closes fd 3 (or ends). Sets TEST_SERVER_PID and TEST_SERVER_PORT;
#   if the server exits or reports no port within 10 s, prints its stderr and exits 1.
start_test_server() {
    local bin=$1 dir=$2
    shift 2
    mkfifo "$dir/server.stdin"
    "$bin" "$@" <"$dir/server.stdin" >"$dir/server.out" 2>"$dir/server.err" &
    TEST_SERVER_PID=$!
    exec 3>"$dir/server.stdin"
    TEST_SERVER_PORT=""
    for _ in $(seq 200); do
        TEST_SERVER_PORT=$(sed -n 's/^port=\([0-9][0-9]*\)$/\1/p' "$dir/server.out" | head -n 1)
        [[ -n "$TEST_SERVER_PORT" ]] && return 0
        kill -0 "$TEST_SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL: the test server did not start" >&2
    cat "$dir/server.err" >&2 || true
    exit 1
}
