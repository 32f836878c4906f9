#!/usr/bin/env bash
# Memory per entity and the cost of growing, for one or more featgrid builds, interleaved (BIN1 BIN2 BIN1 ...):
#   1. bytes per entity after a preload of N entities (3 numeric features, --fsync no): resident (VmRSS growth / N,
#      after 5,000 reads of 1 and 11 s: the reads let the epoch collector free the index retired by the last growth,
#      which an idle server keeps; the 11 s let the periodic malloc_trim run) and accounted (/stats memory_bytes / N);
#   2. the same after a restart that restores those entities from a snapshot (resident over an empty server's);
#   3. push 100 of new keys into an empty store for 8 s (`featgrid bench`, 32 connections, ids over 100M, so every
#      table grows all the time): throughput and p50 / p99 / p99.9 / max latency.
#   benches/scripts/memory_ab.sh BIN [BIN...]        # N="1000000 2000000 3000000" ROUNDS=2
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
N=${N:-1000000 2000000 3000000}
ROUNDS=${ROUNDS:-2}
port=16971
data=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
start() { # BIN [keep]: a server on an empty data directory (or, with keep, the one left)
  [ "${2:-}" = keep ] || rm -rf "$data/store"
  "$1" serve --bind 127.0.0.1:$port --fsync no --snapshot-interval 0 --data-dir "$data/store" >"$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:$port/health && return; sleep 0.2; done
  echo "$1 did not start" >&2; cat "$data/log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
report() { # BIN N RESIDENT_KB WHEN
  local accounted
  accounted=$(curl -s http://127.0.0.1:$port/stats | python3 -c "import json,sys; print(json.load(sys.stdin)['memory_bytes'])")
  python3 -c "import sys; b, n, r, a, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]; \
print(f'{b} {n:,} entities{w}: resident {r * 1024 / n:.1f} B/entity, accounted {a / n:.1f} B/entity')" \
    "$1" "$2" "$3" "$accounted" "$4"
}
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    for n in $N; do
      start "$bin"
      before=$(rss_kb)
      "$bin" bench --target http://127.0.0.1:$port --entities "$n" --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
      "$bin" bench --target http://127.0.0.1:$port --no-preload --entities "$n" --workload read --batch 1 \
        --max-requests 5000 --warmup 0s >/dev/null
      sleep 11
      after=$(rss_kb)
      report "$bin" "$n" "$((after - before))" ""
      curl -sf -X POST http://127.0.0.1:$port/admin/snapshot >/dev/null
      stop
      start "$bin" keep
      "$bin" bench --target http://127.0.0.1:$port --no-preload --entities "$n" --workload read --batch 1 \
        --max-requests 5000 --warmup 0s >/dev/null
      sleep 11
      report "$bin" "$n" "$(($(rss_kb) - before))" " after a restart"
      stop
    done
    start "$bin"
    "$bin" bench --target http://127.0.0.1:$port --no-preload --entities 100000000 --workload push --batch 100 \
      --connections 32 --duration 8s --warmup 0s --json "$data/grow.json" >/dev/null 2>&1
    python3 - "$bin" "$data/grow.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[2]))["operations"][0]
l = {k: v / 1000 for k, v in o["latency_us"].items()}
print(f"{sys.argv[1]} push 100 of new keys: {o['requests_per_sec']:,.0f}/s, p50 {l['p50']:.2f} p99 {l['p99']:.2f} "
      f"p99.9 {l['p999']:.2f} max {l['max']:.2f} ms")
PY
    stop
  done
done
