#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS_PER_TARGET]: runs every fuzz target (fuzz/fuzz_targets/*.rs) with
# libFuzzer for SECONDS_PER_TARGET seconds each (default 60) and prints the executions per target.
# Needs the nightly toolchain; installs cargo-fuzz with `cargo install` if it is missing.
#
# New inputs go to fuzz/work/TARGET (not committed); fuzz/corpus/TARGET seeds each run and is what
# `cargo test` replays: copy an input worth keeping there (crashes land in fuzz/artifacts/TARGET).
#
# Environment:
#   TARGETS="http_decision state_db"  only these targets (default: all)
#   NICE=15                           niceness of the fuzzing processes (default 15)
#   FUZZ_ARGS="-jobs=2"               more libFuzzer options
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

if [[ -n "${TARGETS:-}" ]]; then
    read -r -a targets <<<"$TARGETS"
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

echo "== cargo +nightly fuzz build"
nice -n "${NICE:-15}" cargo +nightly fuzz build --fuzz-dir fuzz

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t" "fuzz/corpus/$t"
    log="fuzz/work/$t.log"
    extra=()
    # The upload server logs every request on stderr; libFuzzer keeps its own reports.
    [[ $t == upload_server ]] && extra+=(-close_fd_mask=2)
    echo "== $t for ${seconds}s (log: $log)"
    rc=0
    # shellcheck disable=SC2086
    nice -n "${NICE:-15}" cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 "${extra[@]}" ${FUZZ_ARGS:-} \
        >"$log" 2>&1 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    line="$t: ${execs:-?} executions in ${seconds}s"
    if [[ $rc != 0 ]]; then
        line+=", FAILED (exit $rc; see $log and fuzz/artifacts/$t/)"
        failed+=("$t")
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
[[ ${#failed[@]} == 0 ]]
