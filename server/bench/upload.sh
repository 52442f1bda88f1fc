#!/usr/bin/env bash
# Uploads one file of BENCH_SIZE_MB (default 1024) to a release build of openbits-server with the
# example client (server/examples/upload_client.rs: one keep-alive connection, fragments read from
# the file as they are sent), once per fragment size in BENCH_FRAGMENTS_MB (default "1 8 64"),
# timed from Create-Session to the Close-Session Ack (the file is fsynced and in place by then);
# then `cp` + `sync -f` of the same file as the baseline for this disk. Prints the server's peak
# RSS. Nothing asserts on time.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${BENCH_SIZE_MB:-1024}
cargo build --quiet --release -p openbits-server --bin openbits-server --example upload_client
bin=target/release/openbits-server
work=$(mktemp -d /var/tmp/obs-bench.XXXXXX)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((size_mb * 1024 * 1024)) /dev/urandom > "$work/src.bin"
exec 3< <(exec "$bin" --listen 127.0.0.1:0 --root "$work/root" 2>/dev/null)
pid=$!
read -r first <&3
base=${first#listening on }
for f in ${BENCH_FRAGMENTS_MB:-1 8 64}; do
  printf 'openbits-server, %d MiB in %d MiB fragments: ' "$size_mb" "$f"
  target/release/examples/upload_client "$base/bench/$f.bin" "$work/src.bin" $((f * 1024 * 1024))
  cmp "$work/src.bin" "$work/root/bench/$f.bin"
  rm "$work/root/bench/$f.bin"
done
echo "server peak RSS: $(sed -n 's/^VmHWM:\s*//p' /proc/$pid/status)"
start=$(date +%s.%N)
cp "$work/src.bin" "$work/copy.bin"
sync -f "$work/copy.bin"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v mb="$size_mb" 'BEGIN { printf "cp + sync -f of the same file: %.2f s, %.0f MiB/s\n", e - s, mb / (e - s) }'
