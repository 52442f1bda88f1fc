#!/usr/bin/env bash
# bench/upload.sh: openbits uploading one large file to openbits-server, against curl -T of the same
# file to nginx's WebDAV (dav_methods PUT), both on 127.0.0.1, in alternating rounds.
#
#   bench/upload.sh                          # 1 GiB, 3 rounds
#   UPLOAD_SIZE_MB=256 UPLOAD_ROUNDS=5 bench/upload.sh
#
# openbits: bench/download.c built with -DBENCH_UPLOAD, through the C ABI, from bits_create_job to the return of bits_complete
# (openbits-server acknowledges a fragment only once it is durable). curl: `curl -T` then
# `sync FILE` on the server's copy, timed by bash. Prints the medians and their ratio (bar: <= 1.5);
# nothing is asserted.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size_mb="${UPLOAD_SIZE_MB:-1024}"
rounds="${UPLOAD_ROUNDS:-3}"
[[ "$size_mb" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ ]] ||
    { echo "UPLOAD_SIZE_MB and UPLOAD_ROUNDS must be positive integers" >&2; exit 2; }
NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
[[ -x "$NGINX" ]] || { echo "needs nginx (apt-get install nginx-light)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/openbits-upload.XXXXXX")"
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building libopenbits, openbits-server (profiling profile) and bench/download.c in upload mode"
(cd "$repo" && cargo build --profile profiling -q -p openbits-ffi -p openbits-server)
lib="$repo/target/profiling"
cc -O2 -Wall -Wextra -Werror -std=c11 -DBENCH_UPLOAD -I "$repo/include" "$repo/bench/download.c" \
    -o "$work/upload" -L "$lib" -lopenbits -Wl,-rpath,"$lib"

src="$work/source.bin"
head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$src"
mkdir -p "$work/up" "$work/dav" "$work/nginx/logs" "$work/nginx/tmp"

# openbits-server: its first line says where it listens.
"$lib/openbits-server" --listen 127.0.0.1:0 --root "$work/up" --allow-overwrites \
    >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on ' "$work/server.out" 2>/dev/null && break; sleep 0.05; done
server_url="$(sed -n 's/^listening on //p' "$work/server.out" | head -n1)"
[[ -n "$server_url" ]] || { echo "openbits-server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

# nginx with WebDAV PUT on a free port.
port=""
for ((try = 0; try < 20; try++)); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$p;
        root $work/dav;
        dav_methods PUT;
    }
}
CONF
    "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" </dev/null >/dev/null 2>&1 &
    npid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { port=$p; break; }; sleep 0.05; done
    [[ -n "$port" ]] && { pids+=("$npid"); break; }
    kill -TERM "$npid" 2>/dev/null || true
done
[[ -n "$port" ]] || { echo "nginx did not start" >&2; exit 1; }
echo "== $size_mb MiB; openbits-server at $server_url, nginx WebDAV at http://127.0.0.1:$port"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ob=() cu=()
printf '%-6s %-10s %10s %10s\n' round who seconds MB/s
for ((r = 1; r <= rounds; r++)); do
    rm -rf "$work/state" "$work/up/file.bin" "$work/dav/file.bin"; sync
    t=$("$work/upload" "$server_url/file.bin" "$src" "$work/state")
    cmp -s "$src" "$work/up/file.bin" || { echo "openbits: the server's copy differs" >&2; exit 1; }
    ob+=("$t")
    printf '%-6s %-10s %10.3f %10.1f\n' "$r" openbits "$t" "$(awk -v s="$t" -v m="$size_mb" 'BEGIN { print m * 1.048576 / s }')"
    sync
    t0=$EPOCHREALTIME
    curl -sS -T "$src" "http://127.0.0.1:$port/file.bin" -o /dev/null
    sync "$work/dav/file.bin"
    t=$(secs "$t0" "$EPOCHREALTIME")
    cmp -s "$src" "$work/dav/file.bin" || { echo "curl: nginx's copy differs" >&2; exit 1; }
    cu+=("$t")
    printf '%-6s %-10s %10.3f %10.1f\n' "$r" curl "$t" "$(awk -v s="$t" -v m="$size_mb" 'BEGIN { print m * 1.048576 / s }')"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mo=$(median "${ob[@]}"); mc=$(median "${cu[@]}")
echo "== results ($size_mb MiB, $rounds rounds)"
echo "median openbits -> openbits-server: $mo s"
echo "median curl -T -> nginx WebDAV:     $mc s"
awk -v a="$mo" -v b="$mc" 'BEGIN { r = a / b; printf "ratio openbits/curl: %.2f (bar <= 1.5: %s)\n", r, (r <= 1.5) ? "ok" : "MISSED" }'
