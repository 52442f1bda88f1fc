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

# start_reply_server BINARY DIR APP_URL
#   Starts openbits-server (BINARY) storing into DIR/uploads, for upload-reply jobs whose
#   application is APP_URL (`--notify-type by-value`; the test server's POST /_reverse answers
#   each upload with its bytes reversed). Sets REPLY_SERVER_PID and REPLY_SERVER_URL (its base
#   URL); the caller kills REPLY_SERVER_PID when done. Exits 1 if it does not start within 20 s.
start_reply_server() {
    local bin=$1 dir=$2 app=$3 listening=""
    mkdir -p "$dir/uploads"
    coproc REPLY_SERVER { exec "$bin" --listen 127.0.0.1:0 --root "$dir/uploads" \
        --notify-type by-value --notify-url "$app" 2>"$dir/reply-server.err"; }
    REPLY_SERVER_PID=$REPLY_SERVER_PID
    read -r -t 20 listening <&"${REPLY_SERVER[0]}" || true
    if [[ $listening != "listening on "* ]]; then
        echo "FAIL: openbits-server did not start: $listening" >&2
        cat "$dir/reply-server.err" >&2 || true
        exit 1
    fi
    REPLY_SERVER_URL=${listening#listening on }
}
