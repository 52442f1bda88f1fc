#!/usr/bin/env bash
# Uploads one file of BENCH_SIZE_MB (default 1024) to a release build of openbits-server with curl,
# in fragments of BENCH_FRAGMENT_MB (default 8), timing Create-Session to the Close-Session Ack (the
# file is fsynced and in place by then); then a local `cp` + `sync -f` of the same file as the
# baseline for this disk. Prints the server's peak RSS too. Nothing asserts on time.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${BENCH_SIZE_MB:-1024}
frag_mb=${BENCH_FRAGMENT_MB:-8}
cargo build --quiet --release -p openbits-server
bin=target/release/openbits-server
work=$(mktemp -d /var/tmp/obs-bench.XXXXXX)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((size_mb * 1024 * 1024)) /dev/urandom > "$work/src.bin"
size=$(stat -c %s "$work/src.bin")
exec 3< <(exec "$bin" --listen 127.0.0.1:0 --root "$work/root" 2>/dev/null)
pid=$!
read -r first <&3
url="${first#listening on }/bench/file.bin"
guid='{7df0354d-249b-430f-820d-3d2a9bef4931}'

start=$(date +%s.%N)
sid=$(curl -sS -i -X BITS_POST -H 'BITS-Packet-Type: Create-Session' -H "BITS-Supported-Protocols: $guid" \
  -H 'Content-Length: 0' "$url" | tr -d '\r' | sed -n 's/^bits-session-id: //Ip')
frag=$((frag_mb * 1024 * 1024))
off=0
while [ "$off" -lt "$size" ]; do
  len=$((size - off < frag ? size - off : frag))
  # curl reads the fragment from a pipe so nothing is staged on disk.
  dd if="$work/src.bin" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=1M status=none |
    curl -sS -o /dev/null -X BITS_POST -H 'BITS-Packet-Type: Fragment' -H "BITS-Session-Id: $sid" \
      -H "Content-Range: bytes $off-$((off + len - 1))/$size" -H "Content-Length: $len" --data-binary @- "$url"
  off=$((off + len))
done
curl -sS -o /dev/null -X BITS_POST -H 'BITS-Packet-Type: Close-Session' -H "BITS-Session-Id: $sid" -H 'Content-Length: 0' "$url"
end=$(date +%s.%N)
cmp "$work/src.bin" "$work/root/bench/file.bin"
hwm=$(sed -n 's/^VmHWM:\s*//p' /proc/$pid/status)

cstart=$(date +%s.%N)
cp "$work/src.bin" "$work/copy.bin"
sync -f "$work/copy.bin"
cend=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v cs="$cstart" -v ce="$cend" -v mb="$size_mb" -v f="$frag_mb" -v h="$hwm" 'BEGIN {
  t = e - s; c = ce - cs
  printf "openbits-server: %d MiB in %d MiB fragments with curl: %.2f s, %.0f MiB/s; server peak RSS %s\n", mb, f, t, mb / t, h
  printf "cp + sync -f of the same file: %.2f s, %.0f MiB/s\n", c, mb / c
}'
