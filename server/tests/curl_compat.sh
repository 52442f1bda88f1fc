#!/usr/bin/env bash
# A client nobody here wrote: curl speaking the BITS upload protocol by hand against
# openbits-server (Ping, Create-Session, Fragments with a gap and an overlap, Close-Session,
# Cancel-Session, an unknown session, SIGTERM). With --via-nginx the same checks go through nginx
# configured as the README says. Usage: server/tests/curl_compat.sh [--via-nginx] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
via_nginx=
if [ "${1:-}" = --via-nginx ]; then via_nginx=1; shift; fi
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet -p openbits-server
  bin=target/debug/openbits-server
fi
work=$(mktemp -d)
pid=
npid=
trap 'rc=$?; [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; [ -z "$npid" ] || kill "$npid" 2>/dev/null || true; rm -rf "$work"; [ $rc = 0 ] || echo "curl_compat: FAILED (line $LINENO, status $rc)" >&2' EXIT
guid='{7df0354d-249b-430f-820d-3d2a9bef4931}'

exec 3< <(exec "$bin" --listen 127.0.0.1:0 --root "$work/root" 2>"$work/server.log")
pid=$!
read -r first <&3
base=${first#listening on }
[ "$base" != "$first" ] || { echo "unexpected first line: $first" >&2; exit 1; }
if [ -n "$via_nginx" ]; then
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/nginx"
  # The location block is the README's ("Behind nginx, or with TLS"), without TLS.
  cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events {}
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 64m;
        location / {
            proxy_pass ${base};
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_set_header Host \$host;
            proxy_read_timeout 360s;
        }
    }
}
CONF
  "$nginx" -c "$work/nginx/nginx.conf" &
  npid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$npid" || { cat "$work/nginx/error.log" >&2; exit 1; }
    sleep 0.1
  done
  base="http://127.0.0.1:$port"
fi
url="$base/compat/file.bin"

fail() { echo "curl_compat: $*" >&2; echo "--- server log" >&2; cat "$work/server.log" >&2; exit 1; }
# bits PACKET [curl args...]: prints the response head with CRs removed.
bits() {
  local packet=$1; shift
  curl -sS -i -X BITS_POST -H "BITS-Packet-Type: $packet" "$@" "$url" | tr -d '\r'
}
header() { sed -n "s/^$1: //Ip" | head -1; }
status() { head -1 | cut -d' ' -f2; }

head -c 300000 /dev/urandom > "$work/src.bin"
size=$(stat -c %s "$work/src.bin")

r=$(bits Ping -H 'Content-Length: 0')
[ "$(status <<<"$r")" = 200 ] && [ "$(header bits-packet-type <<<"$r")" = Ack ] || fail "Ping: $r"

r=$(bits Create-Session -H "BITS-Supported-Protocols: $guid" -H 'Content-Length: 0')
[ "$(status <<<"$r")" = 200 ] || fail "Create-Session: $r"
[ "$(header bits-protocol <<<"$r")" = "$guid" ] || fail "BITS-Protocol: $r"
sid=$(header bits-session-id <<<"$r")
[ -n "$sid" ] || fail "no session id: $r"

frag() { # frag FIRST LAST: sends bytes FIRST..LAST of the source
  local first=$1 last=$2
  dd if="$work/src.bin" of="$work/part" iflag=skip_bytes,count_bytes skip="$first" count=$((last - first + 1)) status=none
  bits Fragment -H "BITS-Session-Id: $sid" -H "Content-Name: src.bin" \
    -H "Content-Range: bytes $first-$last/$size" --data-binary @"$work/part"
}

r=$(frag 0 99999)
[ "$(header bits-received-content-range <<<"$r")" = 100000 ] || fail "first fragment: $r"
r=$(frag 150000 199999)
[ "$(status <<<"$r")" = 416 ] && [ "$(header bits-received-content-range <<<"$r")" = 100000 ] || fail "gap: $r"
r=$(frag 50000 199999)
[ "$(status <<<"$r")" = 200 ] && [ "$(header bits-received-content-range <<<"$r")" = 200000 ] || fail "overlap: $r"
r=$(frag 200000 $((size - 1)))
[ "$(header bits-received-content-range <<<"$r")" = "$size" ] || fail "last fragment: $r"
[ ! -e "$work/root/compat/file.bin" ] || fail "file placed before Close-Session"
r=$(bits Close-Session -H "BITS-Session-Id: $sid" -H 'Content-Length: 0')
[ "$(status <<<"$r")" = 200 ] || fail "Close-Session: $r"
cmp "$work/src.bin" "$work/root/compat/file.bin" || fail "uploaded file differs"

r=$(bits Fragment -H "BITS-Session-Id: $sid" -H "Content-Range: bytes 0-0/1" --data-binary x)
[ "$(status <<<"$r")" = 500 ] && [ "$(header bits-error-code <<<"$r")" = 0x8020001F ] || fail "closed session: $r"

r=$(bits Create-Session -H "BITS-Supported-Protocols: $guid" -H 'Content-Length: 0')
[ "$(status <<<"$r")" = 409 ] || fail "overwrite: $r"
url="$base/compat/cancelled.bin"
r=$(bits Create-Session -H "BITS-Supported-Protocols: $guid" -H 'Content-Length: 0')
sid=$(header bits-session-id <<<"$r")
frag 0 999 >/dev/null
r=$(bits Cancel-Session -H "BITS-Session-Id: $sid" -H 'Content-Length: 0')
[ "$(status <<<"$r")" = 200 ] && [ ! -e "$work/root/compat/cancelled.bin" ] || fail "Cancel-Session: $r"

[ -z "$via_nginx" ] || grep -q '"BITS_POST /compat/file.bin HTTP/1.1" 416' "$work/nginx/access.log" || fail "nginx did not carry the requests"
kill -TERM "$pid"
wait "$pid" || fail "exit status $? after SIGTERM"
echo "curl_compat: ok ($size bytes through curl${via_nginx:+ and nginx})"
