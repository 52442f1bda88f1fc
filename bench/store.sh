#!/usr/bin/env bash
# bench/store.sh: the durable store with many idle jobs (bench/store.c), against the issue's bars.
#
#   bench/store.sh                    # 10,000 jobs
#   STORE_JOBS=100000 bench/store.sh  # the 100,000-job bars
#
# Environment:
#   STORE_JOBS  jobs to create (default 10000)
#   STORE_DIR   parent of the fresh work folder (default $TMPDIR or /tmp); the work folder (state
#               folder and destination folder) is deleted at exit.
#
# Steps: builds libopenbits (--profile profiling) and bench/store.c; process 1 runs `store create` (N
# bits_create_job + bits_add_file, jobs left SUSPENDED, no network); process 2 runs `store reopen`
# (bits_manager_open on that folder, then bits_enum_jobs and the state of every job, then memory).
# The page cache is warm for process 2 (the database was just written); nothing is dropped.
#
# Numbers are printed next to the bars and marked ok or MISSED; nothing is asserted: the exit
# status is 0 whatever the numbers (non-zero only if a step fails).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${STORE_JOBS:-10000}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "STORE_JOBS must be a positive integer" >&2; exit 2; }
command -v cc >/dev/null 2>&1 || { echo "needs a C compiler (cc)" >&2; exit 1; }

parent="${STORE_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "$parent"
work="$(mktemp -d "$parent/openbits-store.XXXXXX")"
cleanup() {
    local rc=$?
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building libopenbits (optimized, with symbols: --profile profiling) and bench/store.c"
(cd "$repo" && cargo build --profile profiling -q -p openbits-ffi)
lib="$repo/target/profiling"
[[ -f "$lib/libopenbits.so" ]] || { echo "missing $lib/libopenbits.so" >&2; exit 1; }
cc -O2 -Wall -Wextra -Werror -std=c11 -I "$repo/include" "$repo/bench/store.c" \
    -o "$work/store" -L "$lib" -lopenbits -Wl,-rpath,"$lib"

echo "== $(nproc) cores; work folder $work ($(df -hT "$work" | awk 'NR==2 {print $2 " on " $1}'))"
state="$work/state"
dest="$work/dest"
mkdir -p "$dest"

echo "== create: $jobs jobs (process 1)"
create_out="$("$work/store" create "$state" "$jobs" "$dest")"
sed 's/^/   /' <<<"$create_out"
db_bytes=$(find "$state" -maxdepth 1 -name 'openbits.db*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
printf '   %s\n' "state folder after close: $(ls "$state" | tr '\n' ' ')($(awk -v b="$db_bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }') in openbits.db*)"

echo "== reopen (process 2)"
reopen_out="$("$work/store" reopen "$state")"
sed 's/^/   /' <<<"$reopen_out"

get() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }
c_secs=$(get "$create_out" create_seconds)
c_rate=$(get "$create_out" creates_per_second)
o_secs=$(get "$reopen_out" open_seconds)
e_secs=$(get "$reopen_out" enum_read_seconds)
n_jobs=$(get "$reopen_out" jobs)
n_read=$(get "$reopen_out" states_read)
n_susp=$(get "$reopen_out" suspended)
rss=$(get "$reopen_out" rss_mib)
peak=$(get "$reopen_out" peak_rss_mib)
base=$(get "$reopen_out" rss_before_open_mib)
oe_secs=$(awk -v a="$o_secs" -v b="$e_secs" 'BEGIN { printf "%.6f", a + b }')

# verdict VALUE BAR: ok if VALUE < BAR, else MISSED; at_least VALUE BAR: ok if VALUE >= BAR.
verdict() { awk -v v="$1" -v b="$2" 'BEGIN { print (v < b) ? "ok" : "MISSED" }'; }
at_least() { awk -v v="$1" -v b="$2" 'BEGIN { print (v >= b) ? "ok" : "MISSED" }'; }
# The bars: 10,000 jobs (the first store issue) and 100,000 jobs (the layered-core issue). Other
# sizes print the 100,000-job bars for reference.
note=""
if ((jobs == 10000)); then
    bar_create="< 2 s"; ok_create=$(verdict "$c_secs" 2)
    bar_open=1; bar_rss=50
else
    bar_create=">= 15000/s"; ok_create=$(at_least "$c_rate" 15000)
    bar_open=0.75; bar_rss=80
    ((jobs == 100000)) || note="  (the bars are for 100,000 jobs; this run has $jobs)"
fi

echo "== results: $jobs jobs$note"
printf '%-44s %14s   %-12s %s\n' measure value bar verdict
if ((jobs == 10000)); then
    printf '%-44s %12.3f s   %-12s %s\n' "create+add_file of $jobs jobs" "$c_secs" "$bar_create" "$ok_create"
    printf '%-44s %12.0f /s\n' "  creates per second" "$c_rate"
else
    printf '%-44s %12.3f s\n' "create+add_file of $jobs jobs" "$c_secs"
    printf '%-44s %12.0f /s  %-12s %s\n' "  creates per second" "$c_rate" "$bar_create" "$ok_create"
fi
printf '%-44s %12.3f s\n' "reopen: bits_manager_open" "$o_secs"
printf '%-44s %12.3f s   %-12s %s\n' "reopen + enum + state of every job" "$oe_secs" "< $bar_open s" "$(verdict "$oe_secs" "$bar_open")"
printf '%-44s %12.1f MiB %-12s %s\n' "resident (VmRSS) with $n_jobs jobs loaded" "$rss" "< $bar_rss MiB" "$(verdict "$rss" "$bar_rss")"
printf '%-44s %12.1f MiB\n' "peak resident (ru_maxrss)" "$peak"
printf '%-44s %12.1f MiB\n' "  resident before bits_manager_open" "$base"
if [[ "$n_jobs" != "$jobs" || "$n_read" != "$jobs" || "$n_susp" != "$jobs" ]]; then
    echo "NOTE: created $jobs jobs, reopen enumerated $n_jobs, read $n_read states, $n_susp SUSPENDED"
fi
