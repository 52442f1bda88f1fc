#!/usr/bin/env bash
# bench/many.sh: many small files. openbits (one job of N files; N jobs of one file) against curl
# (parallel and sequential), downloading N files from a local nginx.
#
#   bench/many.sh                     # 2,000 files of 16 KiB, 5 rounds
#   MANY_FILES=500 MANY_ROUNDS=3 bench/many.sh
#
# Environment:
#   MANY_FILES    number of files (default 2000)
#   MANY_SIZE_KB  size of each file in KiB (default 16); random content
#   MANY_ROUNDS   rounds; each round runs a, b, c and d once: odd rounds in that order, even rounds
#                 in the reverse order (d, c, b, a), so no contestant always runs after the same
#                 one (default 5)
#   MANY_DIR      parent of the work folder (default <repo>/bench/out); the source files, the
#                 destination folder and the openbits state folder all live in one work folder,
#                 on one file system. The work folder is deleted at exit (and only then: each
#                 run's outputs are moved aside, see `fresh`).
#
# The four contestants, each a whole process of its own:
#   a  openbits, one job with the N files (bench/many.c `one`): bits_manager_open_ex with
#      max_files_per_job raised to N, then bits_create_job, bits_add_file_set, bits_resume,
#      bits_job_wait, bits_complete.
#   b  openbits, N jobs of one file each (bench/many.c `jobs`): bits_manager_open_ex with max_jobs
#      and max_jobs_per_owner raised to N; every job created, given its file and resumed, then each
#      waited for and completed, in creation order.
#   c  `curl -sS -Z --parallel-max 16 -K LIST` (LIST: a url/output pair per file), then
#      `sync -f DEST_DIR` (syncfs of the destination's file system).
#   d  the same curl without -Z (one file after the other on one connection), then `sync -f`.
#
# What is timed:
#   a, b  inside bench/many.c, CLOCK_MONOTONIC from just before the first bits_create_job to just
#         after the last bits_complete returns (bits_complete fsyncs the files and their folder).
#         Each process opens a manager on a fresh state folder (it creates the folder and its
#         database): that and the close are outside the timed interval but inside the process
#         time, which bash also measures (EPOCHREALTIME around the whole process) and prints
#         beside it. Every other manager option keeps its default (max_concurrent_jobs 6).
#         Each run's line also gives the time spent inside bits_complete and how long after the
#         last job became TRANSFERRED (the jobs' transfer_completion_ms, a wall clock in whole
#         milliseconds) the last complete returned: the part of the time that is not transfer.
#         And the CPU of the timed part (bench/many.c reads each thread's schedstat before and
#         after it): the application's thread (every call) and the engine's (the runtime's
#         workers and blocking threads); the results give their medians beside a and b.
#   c, d  bash's EPOCHREALTIME around the curl and sync commands (process start included).
# Before each run the destinations and the state folder are moved aside, `sync` runs and, as root,
# the clean page cache is dropped and the sources read again (untimed; see `fresh`).
# Before each round, `many creates` times 500 file creations in a new folder beside the
# destination and the round prints the mean: what creating a file costs at that moment moves the
# ratios more than anything else measured (see the README).
# After each run every destination is checked against the sources' SHA-256 sums and the
# destination folder must hold exactly the N files, so a broken run is never reported as fast.
# All download over plain HTTP/1.1 from 127.0.0.1.
#
# Numbers are printed next to the bars (a/c <= 1.0, b/c <= 1.0, from the medians) and marked ok
# or MISSED; beside them, without bars, the median of each round's own a/c and b/c (a slow minute of
# the VM slows every contestant of its round). Nothing is asserted: the exit status is 0 whatever
# the numbers (non-zero only if a step fails).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nfiles="${MANY_FILES:-2000}"
size_kb="${MANY_SIZE_KB:-16}"
rounds="${MANY_ROUNDS:-5}"
[[ "$nfiles" =~ ^[1-9][0-9]*$ ]] || { echo "MANY_FILES must be a positive integer" >&2; exit 2; }
[[ "$size_kb" =~ ^[1-9][0-9]*$ ]] || { echo "MANY_SIZE_KB must be a positive integer" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "MANY_ROUNDS must be a positive integer" >&2; exit 2; }

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
curl --help all 2>/dev/null | grep -q -- '--parallel-max' ||
    { echo "this curl has no --parallel-max (needs curl 7.66 or later)" >&2; exit 1; }

echo "== versions"
echo "curl:  $(curl --version | head -n1)"
echo "nginx: $("$NGINX" -v 2>&1)"
echo "cc:    $(cc --version | head -n1)"
echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
echo "cpu:   $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"

# --- work folder, cleanup ----------------------------------------------------------------------
base="${MANY_DIR:-$repo/bench/out}"
mkdir -p "$base"
work="$(mktemp -d "$base/many.XXXXXX")"
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
# See `fresh` below: inodes deleted shortly before a run (by anything) slow its file creations
# down on ext4 without a journal. Say so, since the numbers then depend on what ran before.
fs_source=$(findmnt -no SOURCE,FSTYPE -T "$work" 2>/dev/null || true)
if [[ "$fs_source" == *" ext4" ]]; then
    dev=$(basename "${fs_source%% *}")
    if ! compgen -G "/proc/fs/jbd2/$dev-*" >/dev/null; then
        echo "   note: $dev is ext4 without a journal: file creation there skips inodes deleted in the"
        echo "   last minutes (a CPU scan), so a run soon after large deletions is slower for every"
        echo "   contestant; MANY_DIR on a journaled file system avoids it"
    fi
fi

# --- the files ---------------------------------------------------------------------------------
www="$work/www"
mkdir -p "$www"
fbytes=$((size_kb * 1024))
width=${#nfiles}
((width >= 5)) || width=5
echo "== creating $nfiles files of $size_kb KiB of random data"
head -c "$((nfiles * fbytes))" /dev/urandom | split -b "$fbytes" -d -a "$width" - "$www/f"
names="$work/names"
for ((i = 0; i < nfiles; i++)); do printf "f%0${width}d\n" "$i"; done >"$names"
got=$(find "$www" -maxdepth 1 -type f -size "${fbytes}c" | wc -l)
[[ "$got" -eq "$nfiles" ]] || { echo "created $got files of $fbytes bytes, expected $nfiles" >&2; exit 1; }
[[ -f "$www/$(tail -n1 "$names")" ]] || { echo "the source files are not named as expected" >&2; exit 1; }
sums="$work/sha256sums"
(cd "$www" && xargs -a "$names" sha256sum) >"$sums"

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
events { worker_connections 256; }
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
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$p;
        root $www;
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
base_url="http://127.0.0.1:$port"
echo "== nginx (pid $nginx_pid) serving $base_url/$(head -n1 "$names") .. $(tail -n1 "$names")"
got=$(curl -sI "$base_url/$(tail -n1 "$names")" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length" {print $2}')
[[ "$got" == "$fbytes" ]] || { echo "nginx reports Content-Length '$got', expected $fbytes" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------------
echo "== building libopenbits (optimized, with symbols: --profile profiling) and bench/many.c"
(cd "$repo" && cargo build --profile profiling -q -p openbits-ffi)
lib="$repo/target/profiling"
[[ -f "$lib/libopenbits.so" ]] || { echo "missing $lib/libopenbits.so" >&2; exit 1; }
cc -O2 -Wall -Wextra -Werror -std=c11 -I "$repo/include" "$repo/bench/many.c" \
    -o "$work/many" -L "$lib" -lopenbits -Wl,-rpath,"$lib"

# --- runs --------------------------------------------------------------------------------------
dest="$work/dest"
state="$work/state"
curl_list="$work/curl.list"
# curl's stderr goes to a file: curl 7.88.1 draws its progress meter in parallel mode despite -s
# (curl/curl#10573, fixed in 8.0); the file is shown if curl fails.
curl_err="$work/curl.err"
while IFS= read -r n; do
    printf 'url = "%s/%s"\noutput = "%s/%s"\n' "$base_url" "$n" "$dest" "$n"
done <"$names" >"$curl_list"

# Each run's outputs are moved into a folder that is deleted only at exit, not deleted before the
# next run. On ext4 without a journal (this project's VMs) creating a file skips every inode
# deleted in the last minute or more (`recently_deleted`, a kernel CPU scan under the folder's
# lock: perf shows it as most of curl's own time), so deleting 2,000 files before each run made
# each contestant pay for the ones before it, more each round (curl 0.26 s in round 1, 2.0 s in
# round 5). Nothing is deleted while runs are timed now.
#
# Then, as root, the clean page cache is dropped and the sources read back in. On a VM (this
# project's are Firecracker guests) the first write to a guest page the guest never used before
# costs a fault in the host: 32 MB of new files written into never-used pages cost up to six
# times as much kernel copying as the same files written into recycled pages (perf shows it as
# copy_folio_from_iter_atomic), and which contestant got which pages decided a run by 20-30%.
# After the drop every contestant writes into pages freed just before it.
spent="$work/spent"
mkdir -p "$spent"
drop_caches=""
if [[ $(id -u) -eq 0 && -w /proc/sys/vm/drop_caches ]]; then drop_caches=1; fi
[[ -n "$drop_caches" ]] || echo "   note: not root, so the page cache is not dropped between runs (see fresh)"
fresh() {
    local n=$((${n_fresh:-0} + 1))
    n_fresh=$n
    [[ ! -e "$dest" ]] || mv "$dest" "$spent/dest.$n"
    [[ ! -e "$state" ]] || mv "$state" "$spent/state.$n"
    mkdir -p "$dest"
    sync
    if [[ -n "$drop_caches" ]]; then
        echo 1 >/proc/sys/vm/drop_caches
        cat "$www"/* >/dev/null
    fi
}

verify() { # every destination has its source's bytes, and nothing else is in the folder
    local what=$1 bad count
    if ! bad=$(cd "$dest" && sha256sum --quiet -c "$sums" 2>&1); then
        echo "$what: the destination files differ from the sources:" >&2
        head -n 5 <<<"$bad" >&2
        exit 1
    fi
    count=$(find "$dest" -mindepth 1 | wc -l)
    [[ "$count" -eq "$nfiles" ]] ||
        { echo "$what: the destination folder holds $count entries, expected $nfiles" >&2; exit 1; }
}

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
get() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }

declare -A inner=() outer=() app_cpu=() engine_cpu=() now=()
pair_ac=""
pair_bc=""
cpu_app=""
cpu_engine=""
t=""
pt=""
extra=""
run_openbits() { # MODE: t = inner seconds, pt = process seconds
    local mode=$1 out t0 t1
    fresh
    t0=$EPOCHREALTIME
    if ! out=$("$work/many" "$mode" "$state" "$base_url" "$dest" "$names"); then
        echo "openbits ($mode) failed" >&2
        exit 1
    fi
    t1=$EPOCHREALTIME
    t=$(get "$out" seconds)
    pt=$(secs "$t0" "$t1")
    [[ "$(get "$out" files)" == "$nfiles" ]] || { echo "openbits ($mode) did not report $nfiles files" >&2; exit 1; }
    cpu_app=$(get "$out" cpu_app_ms)
    cpu_engine=$(get "$out" cpu_engine_ms)
    extra=$(awk -v o="$(get "$out" open_seconds)" -v c="$(get "$out" close_seconds)" \
        -v k="$(get "$out" complete_seconds)" -v x="$(get "$out" after_transfers_ms)" \
        -v ca="$cpu_app" -v ce="$cpu_engine" \
        'BEGIN { printf "  in bits_complete %.3f s, done %d ms after the last transfer; CPU app %.0f ms, engine %.0f ms; open %.3f s, close %.3f s", k, x, ca, ce, o, c }')
}
run_curl() { # ARGS...: extra curl options; t = seconds of curl + sync -f
    local t0 t1
    fresh
    t0=$EPOCHREALTIME
    if ! curl -sS "$@" -K "$curl_list" 2>"$curl_err" || ! sync -f "$dest"; then
        echo "curl $* failed:" >&2
        tr '\r' '\n' <"$curl_err" | grep -v '^ *$' | tail -n 5 >&2
        exit 1
    fi
    t1=$EPOCHREALTIME
    t=$(secs "$t0" "$t1")
    pt=""
    extra=""
}

label_a="openbits, 1 job of $nfiles files"
label_b="openbits, $nfiles jobs of 1 file"
label_c="curl -Z --parallel-max 16, sync -f"
label_d="curl sequential, sync -f"
echo "== $rounds rounds of $nfiles files of $size_kb KiB; a, b, c, d in odd rounds, d, c, b, a in even ones"
echo "   a  $label_a (bench/many.c one)"
echo "   b  $label_b (bench/many.c jobs)"
echo "   c  curl -sS -Z --parallel-max 16 -K LIST && sync -f DEST"
echo "   d  curl -sS -K LIST && sync -f DEST"
printf '%-6s %-4s %10s %10s %10s\n' round case seconds process files/s
creates=""
for ((r = 1; r <= rounds; r++)); do
    # The create probe (see the header and bench/many.c `creates`).
    probe=$("$work/many" creates "$spent/probe.$r" 500) || { echo "the create probe failed" >&2; exit 1; }
    create_us=$(get "$probe" create_us)
    [[ -n "$create_us" ]] || { echo "the create probe printed no create_us" >&2; exit 1; }
    creates+="$create_us "
    printf '%-6s %s\n' "$r" "creating an empty file beside the destination: $create_us us (mean of 500)"
    order="a b c d"
    ((r % 2)) || order="d c b a"
    for c in $order; do
        case "$c" in
            a) run_openbits one ;;
            b) run_openbits jobs ;;
            c) run_curl -Z --parallel-max 16 ;;
            d) run_curl ;;
        esac
        verify "$c (round $r)"
        inner[$c]+="$t "
        now[$c]=$t
        [[ -z "$pt" ]] || outer[$c]+="$pt "
        [[ -z "$pt" ]] || { app_cpu[$c]+="$cpu_app "; engine_cpu[$c]+="$cpu_engine "; }
        printf '%-6s %-4s %10.3f %10s %10.0f%s\n' "$r" "$c" "$t" \
            "$([[ -n "$pt" ]] && printf '%.3f' "$pt" || echo -)" \
            "$(awk -v n="$nfiles" -v s="$t" 'BEGIN { print n / s }')" "$extra"
    done
    # The same round's ratios: a slow hour slows every contestant of its round.
    pair_ac+="$(awk -v x="${now[a]}" -v y="${now[c]}" 'BEGIN { print x / y }') "
    pair_bc+="$(awk -v x="${now[b]}" -v y="${now[c]}" 'BEGIN { print x / y }') "
done
rm -rf "$dest" "$state"

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A med=() pmed=()
for c in a b c d; do
    # shellcheck disable=SC2086 # word splitting of the space-separated times is intended
    med[$c]=$(median ${inner[$c]})
done
for c in a b; do
    # shellcheck disable=SC2086
    pmed[$c]=$(median ${outer[$c]})
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v v="$1" -v b="$2" 'BEGIN { print (v <= b) ? "ok" : "MISSED" }'; }
ac=$(ratio "${med[a]}" "${med[c]}")
bc=$(ratio "${med[b]}" "${med[c]}")

echo "== results: $nfiles files of $size_kb KiB, $rounds rounds, medians"
echo "   (a, b: from bits_create_job to the return of bits_complete; process: the whole process, from bash)"
printf '%-4s %-38s %10s %10s\n' case "" "median s" "process s"
# shellcheck disable=SC2086 # word splitting of the space-separated CPU times is intended
printf '%-4s %-38s %10.3f %10.3f   CPU app %s ms, engine %s ms\n' a "$label_a" "${med[a]}" "${pmed[a]}" \
    "$(median ${app_cpu[a]})" "$(median ${engine_cpu[a]})"
printf '%-4s %-38s %10.3f %10.3f   CPU app %s ms, engine %s ms\n' b "$label_b" "${med[b]}" "${pmed[b]}" \
    "$(median ${app_cpu[b]})" "$(median ${engine_cpu[b]})"
printf '%-4s %-38s %10.3f %10s\n' c "$label_c" "${med[c]}" -
printf '%-4s %-38s %10.3f %10s\n' d "$label_d" "${med[d]}" -
printf '%-6s %10s   %-12s %s\n' ratio value bar verdict
printf '%-6s %10s   %-12s %s\n' a/c "$ac" "a/c <= 1.0" "$(verdict "$ac" 1.0)"
printf '%-6s %10s   %-12s %s\n' b/c "$bc" "b/c <= 1.0" "$(verdict "$bc" 1.0)"
printf '%-6s %10s   %s\n' d/c "$(ratio "${med[d]}" "${med[c]}")" "(no bar)"
# shellcheck disable=SC2086
printf '   the same round'"'"'s ratios, median of the rounds: a/c %.3f, b/c %.3f (no bars)\n' \
    "$(median $pair_ac)" "$(median $pair_bc)"
echo "   whole processes: a/c $(ratio "${pmed[a]}" "${med[c]}"), b/c $(ratio "${pmed[b]}" "${med[c]}") (no bars)"
# shellcheck disable=SC2086
echo "   creating an empty file, median of the rounds: $(median $creates) us (the higher, the more curl's one thread is slowed)"
