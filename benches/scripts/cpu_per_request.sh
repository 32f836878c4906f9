#!/usr/bin/env bash
# Server CPU time and context switches per request at a fixed rate (open loop), for featgrid with
# each read path and for the bare actix-web ceiling: a figure that a busy machine disturbs far
# less than throughput does (the server's own CPU time is counted, not the wall clock).
#
#   benches/scripts/cpu_per_request.sh        # RATE=10000 DURATION=10s ENTITIES=100000 BATCH=1
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-10000}
DURATION=${DURATION:-10s}
ENTITIES=${ENTITIES:-100000}
BATCH=${BATCH:-1}
WORKLOAD=${WORKLOAD:-read}
OUT=${OUT:-target/cpu-per-request}
mkdir -p "$OUT"
source benches/scripts/common.sh
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }

run() { # NAME CMD...
  local name=$1
  start "$@"
  local t0 s0 t1 s1
  t0=$(ticks "$pid"); s0=$(switches "$pid")
  "$BIN" bench --target "$url" --entities "$ENTITIES" --no-preload --workload "$WORKLOAD" --batch "$BATCH" \
    --rate "$RATE" --connections 128 --warmup 0s --duration "$DURATION" --json "$OUT/$name.json" >"$OUT/$name.txt"
  t1=$(ticks "$pid"); s1=$(switches "$pid")
  python3 - "$name" "$OUT/$name.json" "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, path, t0, t1, s0, s1, hz = sys.argv[1:]
op = json.load(open(path))["operations"][0]
n = op["requests"]
cpu_us = (int(t1) - int(t0)) / int(hz) * 1e6 / n
sw = (int(s1) - int(s0)) / n
l = op["latency_us"]
print(f"| {name} | {n:,} | {cpu_us:.1f} | {sw:.2f} | {l['p50']} | {l['p99']} | {l['p999']} |")
PY
  stop
}

echo "$WORKLOAD, batch $BATCH, $RATE requests/s for $DURATION:"
echo "| server | requests | CPU µs / request | voluntary switches / request | p50 µs | p99 µs | p99.9 µs |"
echo "|---|---|---|---|---|---|---|"
for path in direct actor; do
  rm -rf "$OUT/data"
  FEATGRID_READ_PATH=$path run "featgrid-$path" "$BIN" serve --bind 127.0.0.1:0 --fsync no --data-dir "$OUT/data" --snapshot-interval 0
done
run ceiling target/release/examples/ceiling 127.0.0.1:0
