#!/usr/bin/env bash
# Push throughput (100-row pushes, closed loop, wrk -t1 -c32 -d10s) for each fsync policy,
# and for a build without the write-ahead log when PREWAL_BIN names one.
# Usage: benches/scripts/push_by_fsync.sh [BIN]   (BIN defaults to target/release/featgrid)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/featgrid}
PORT=7610
run() { # name, binary, extra args...
  local name=$1 bin=$2; shift 2
  local dir; dir=$(mktemp -d)
  "$bin" serve --bind 127.0.0.1:$PORT --data-dir "$dir/data" "$@" >/dev/null 2>"$dir/err" &
  local pid=$!
  sleep 1
  python3 benches/scripts/load_entities.py http://127.0.0.1:$PORT 10000 1000 2>/dev/null
  local out
  out=$(MODE=push100 ENTITIES=10000 wrk -t1 -c32 -d10s --latency -s benches/wrk/feast.lua http://127.0.0.1:$PORT)
  printf '%-10s %s req/s  p50 %s  p99 %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
  if [ "$name" != pre-wal ]; then curl -s localhost:$PORT/admin/snapshot | python3 -c 'import json,sys; w=json.load(sys.stdin)["wal"]; print("           records", w["records"], "group commits", w["group_commits"], "fsyncs", w["fsyncs"])'; fi
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
}
if [ -n "${PREWAL_BIN:-}" ]; then run pre-wal "$PREWAL_BIN"; fi
for mode in always everysec no; do
  run "$mode" "$BIN" --fsync "$mode" --snapshot-interval 0
done
