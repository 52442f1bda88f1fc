#!/usr/bin/env bash
# bench/run.sh: openbits against curl, downloading one large file from a local nginx.
#
#   bench/run.sh                      # 1 GiB file, 5 rounds
#   BENCH_SIZE_MB=256 BENCH_ROUNDS=3 bench/run.sh
#   BENCH_BASELINE_LIB=/path/to/old/libopenbits.so bench/run.sh    # adds a third contestant
#
# Environment:
#   BENCH_SIZE_MB  size of the file in MiB (default 1024)
#   BENCH_ROUNDS   rounds; each round runs openbits once and curl once (default 5)
#   BENCH_WARMUP   untimed rounds first (default 1): the first touch of fresh page-cache memory
#                  is slower on a VM, whichever tool comes first
#   BENCH_DIR      parent of the work folder (default <repo>/bench/out); the source file, the
#                  destination folder and the openbits state folder all live in one work folder,
#                  on one file system. The work folder is deleted at exit.
#   BENCH_BASELINE_LIB  optional path to another build of libopenbits.so (say, an older commit's):
#                  bench/download.c is compiled a second time against it (this repository's
#                  header, rpath to the library's folder) and runs as "openbits-baseline" in every
#                  round. openbits and the baseline swap places each round (odd rounds openbits
#                  first); curl stays last. The results add baseline/curl and openbits/baseline.
#
# What is timed:
#   openbits  bench/download.c, CLOCK_MONOTONIC from before bits_create_job to after bits_complete
#             returns (bits_complete fsyncs the file, renames it, fsyncs the folder).
#   curl      `curl -sS -o FILE URL && sync FILE` (sync FILE = fsync of the file), timed by bash's
#             EPOCHREALTIME around both commands; this includes starting the curl process
#             (a few ms), which openbits' time does not.
# Both download over plain HTTP/1.1 from 127.0.0.1. Numbers are printed, never judged.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size_mb="${BENCH_SIZE_MB:-1024}"
rounds="${BENCH_ROUNDS:-5}"
warmup="${BENCH_WARMUP:-1}"
[[ "$size_mb" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_SIZE_MB must be a positive integer" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive integer" >&2; exit 2; }
[[ "$warmup" =~ ^[0-9]+$ ]] || { echo "BENCH_WARMUP must be a non-negative integer" >&2; exit 2; }
baseline_lib="${BENCH_BASELINE_LIB:-}"
if [[ -n "$baseline_lib" ]]; then
    [[ -f "$baseline_lib" ]] || { echo "BENCH_BASELINE_LIB: no such file: $baseline_lib" >&2; exit 2; }
    baseline_lib="$(cd "$(dirname "$baseline_lib")" && pwd)/$(basename "$baseline_lib")"
fi

# --- tools -------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if ((${#need[@]})); then
    echo "== installing ${need[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "need root to install ${need[*]} (or install them yourself)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"

echo "== versions"
echo "curl:  $(curl --version | head -n1)"
echo "nginx: $("$NGINX" -v 2>&1)"
echo "cc:    $(cc --version | head -n1)"
echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
echo "cpu:   $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"

# --- work folder, cleanup ----------------------------------------------------------------------
base="${BENCH_DIR:-$repo/bench/out}"
mkdir -p "$base"
work="$(mktemp -d "$base/run.XXXXXX")"
chmod 755 "$work"
nginx_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$nginx_pid" ]] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== work folder $work ($(df -hT "$work" | awk 'NR==2 {print $2 " on " $1}'))"

# --- the file ----------------------------------------------------------------------------------
src="$work/www/big.bin"
mkdir -p "$work/www"
bytes=$((size_mb * 1024 * 1024))
chunk_mb=$((size_mb < 64 ? size_mb : 64))
echo "== creating $size_mb MiB of random data (a ${chunk_mb} MiB random block repeated)"
head -c "$((chunk_mb * 1024 * 1024))" /dev/urandom >"$work/block"
: >"$src"
for ((i = 0; i < size_mb / chunk_mb; i++)); do cat "$work/block" >>"$src"; done
rest=$((bytes - (size_mb / chunk_mb) * chunk_mb * 1024 * 1024))
((rest == 0)) || head -c "$rest" "$work/block" >>"$src"
rm -f "$work/block"
[[ $(stat -c %s "$src") -eq $bytes ]] || { echo "source file has the wrong size" >&2; exit 1; }

# --- nginx -------------------------------------------------------------------------------------
ngx="$work/nginx"
mkdir -p "$ngx/logs" "$ngx/tmp"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for ((try = 0; try < 20; try++)); do
    p=$((20000 + RANDOM % 40000))
    port_free "$p" || continue
    cat >"$ngx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $ngx/tmp/client;
    proxy_temp_path $ngx/tmp/proxy;
    fastcgi_temp_path $ngx/tmp/fastcgi;
    uwsgi_temp_path $ngx/tmp/uwsgi;
    scgi_temp_path $ngx/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    server {
        listen 127.0.0.1:$p;
        root $work/www;
    }
}
EOF
    "$NGINX" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/logs/error.log" </dev/null >"$ngx/logs/stdout.log" 2>&1 &
    nginx_pid=$!
    started=""
    for ((i = 0; i < 200; i++)); do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then started=1; break; fi
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -n "$started" ]]; then port=$p; break; fi
    # Lost a race for the port, or nginx cannot start: show why and try another port.
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
    tail -n 3 "$ngx/logs/error.log" "$ngx/logs/stdout.log" >&2 2>/dev/null || true
done
[[ -n "$port" ]] || { echo "nginx did not start" >&2; exit 1; }
url="http://127.0.0.1:$port/big.bin"
echo "== nginx (pid $nginx_pid) serving $url"
got=$(curl -sI "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length" {print $2}')
[[ "$got" == "$bytes" ]] || { echo "nginx reports Content-Length '$got', expected $bytes" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------------
echo "== building libopenbits (optimized, with symbols: --profile profiling)"
(cd "$repo" && cargo build --profile profiling -q -p openbits-ffi)
lib="$repo/target/profiling"
[[ -f "$lib/libopenbits.so" ]] || { echo "missing $lib/libopenbits.so" >&2; exit 1; }
cc -O2 -Wall -Wextra -Werror -std=c11 -I "$repo/include" "$repo/bench/download.c" \
    -o "$work/download" -L "$lib" -lopenbits -Wl,-rpath,"$lib"
if [[ -n "$baseline_lib" ]]; then
    # A private folder with a libopenbits.so link, so -lopenbits finds the baseline whatever its name.
    blib="$work/baseline-lib"
    mkdir -p "$blib"
    ln -s "$baseline_lib" "$blib/libopenbits.so"
    bdir="$(dirname "$baseline_lib")"
    cc -O2 -Wall -Wextra -Werror -std=c11 -I "$repo/include" "$repo/bench/download.c" \
        -o "$work/download-baseline" -L "$blib" -lopenbits -Wl,-rpath,"$bdir"
    got_lib=$(ldd "$work/download-baseline" | awk '$1 ~ /^libopenbits/ { print $3 }')
    [[ "$(readlink -f "$got_lib")" == "$(readlink -f "$baseline_lib")" ]] ||
        { echo "download-baseline loads '$got_lib', not $baseline_lib" >&2; exit 1; }
    echo "== baseline: $baseline_lib (sha256 $(sha256sum "$baseline_lib" | cut -c1-16))"
fi

# --- runs --------------------------------------------------------------------------------------
dest_dir="$work/dest"
state_dir="$work/state"
mkdir -p "$dest_dir"
dest="$dest_dir/big.bin"
fresh() { rm -rf "$dest" "$dest_dir"/BIT*.tmp "$state_dir"; }

verify() { # the first run of each tool checks the bytes, outside the timing
    cmp -s "$src" "$dest" || { echo "$1: the downloaded file differs from the source" >&2; exit 1; }
}

ob_times=()
base_times=()
curl_times=()
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
run_openbits() {
    fresh
    sync
    t=$("$work/download" "$url" "$dest" "$state_dir")
}
run_baseline() {
    fresh
    sync
    t=$("$work/download-baseline" "$url" "$dest" "$state_dir")
}
run_curl() {
    fresh
    sync
    local t0 t1
    t0=$EPOCHREALTIME
    curl -sS -o "$dest" "$url" && sync "$dest"
    t1=$EPOCHREALTIME
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
}
if [[ -n "$baseline_lib" ]]; then
    echo "== $warmup warm-up round(s), then $rounds rounds of $size_mb MiB; openbits and openbits-baseline (swapping places each round), then curl"
else
    echo "== $warmup warm-up round(s), then $rounds rounds of $size_mb MiB; openbits then curl in each round"
fi
tw=9
[[ -z "$baseline_lib" ]] || tw=17
printf "%-6s %-${tw}s %10s %10s\n" round tool seconds "MB/s"
# one ROUND_LABEL COUNTED TOOL: runs TOOL, verifies its first run, prints and (if counted) keeps its time.
declare -A verified=()
one() {
    local label=$1 counted=$2 tool=$3
    case "$tool" in
        openbits) run_openbits ;;
        openbits-baseline) run_baseline ;;
        curl) run_curl ;;
    esac
    [[ -n "${verified[$tool]:-}" ]] || { verify "$tool"; verified[$tool]=1; }
    if ((counted)); then
        case "$tool" in
            openbits) ob_times+=("$t") ;;
            openbits-baseline) base_times+=("$t") ;;
            curl) curl_times+=("$t") ;;
        esac
        printf "%-6s %-${tw}s %10.3f %10s\n" "$label" "$tool" "$t" "$(mbps "$t")"
    else
        printf "%-6s %-${tw}s %10.3f %10s  (warm-up, not counted)\n" "$label" "$tool" "$t" "$(mbps "$t")"
    fi
}
order() { # the tools of round $1, in order
    if [[ -z "$baseline_lib" ]]; then echo openbits curl
    elif (($1 % 2)); then echo openbits openbits-baseline curl
    else echo openbits-baseline openbits curl
    fi
}
for ((r = 1; r <= warmup; r++)); do
    for tool in $(order "$r"); do one "w$r" 0 "$tool"; done
done
for ((r = 1; r <= rounds; r++)); do
    for tool in $(order "$r"); do one "$r" 1 "$tool"; done
done
fresh

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ob_med=$(median "${ob_times[@]}")
curl_med=$(median "${curl_times[@]}")
echo "== results ($size_mb MiB, $rounds rounds, MB = 10^6 bytes; curl timed as 'curl -sS -o FILE URL && sync FILE')"
printf 'median openbits: %8.3f s  %8s MB/s\n' "$ob_med" "$(mbps "$ob_med")"
printf 'median curl:     %8.3f s  %8s MB/s\n' "$curl_med" "$(mbps "$curl_med")"
if [[ -n "$baseline_lib" ]]; then
    base_med=$(median "${base_times[@]}")
    printf 'median openbits-baseline: %8.3f s  %8s MB/s  (%s)\n' "$base_med" "$(mbps "$base_med")" "$baseline_lib"
fi
awk -v a="$ob_med" -v b="$curl_med" 'BEGIN { printf "ratio openbits/curl: %.3f (<= 1.0: openbits as fast or faster)\n", a / b }'
if [[ -n "$baseline_lib" ]]; then
    awk -v a="$base_med" -v b="$curl_med" 'BEGIN { printf "ratio baseline/curl: %.3f\n", a / b }'
    awk -v a="$ob_med" -v b="$base_med" 'BEGIN { printf "ratio openbits/baseline: %.3f (> 1.0: this build is slower than the baseline)\n", a / b }'
fi
