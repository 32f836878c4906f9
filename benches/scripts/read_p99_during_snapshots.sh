#!/usr/bin/env bash
# Read latency (1 entity x 3 features, wrk -t1 -c32 -d10s) with N entities loaded, without
# and then during back-to-back snapshots (POST /admin/snapshot in a loop).
# Usage: benches/scripts/read_p99_during_snapshots.sh [N] [BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
BIN=${2:-target/release/featgrid}
PORT=7620
dir=$(mktemp -d)
"$BIN" serve --bind 127.0.0.1:$PORT --data-dir "$dir/data" --snapshot-interval 0 >/dev/null 2>"$dir/err" &
pid=$!
sleep 1
python3 benches/scripts/load_entities.py http://127.0.0.1:$PORT "$N" 20000 2>/dev/null
curl -s -XPOST localhost:$PORT/admin/snapshot >/dev/null
bench() {
  local out
  out=$(MODE=read1 ENTITIES=$N wrk -t1 -c32 -d10s --latency -s benches/wrk/feast.lua http://127.0.0.1:$PORT)
  printf '%-22s %s req/s  p50 %s  p99 %s  max %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '$1=="Latency" {print $4}' <<<"$out")"
}
bench "warm-up" >/dev/null
bench "no snapshot"
( end=$((SECONDS + 11)); n=0; while [ $SECONDS -lt $end ]; do curl -s -XPOST localhost:$PORT/admin/snapshot >/dev/null; n=$((n + 1)); done; echo "$n" >"$dir/count" ) &
loop=$!
bench "during snapshots"
wait $loop
echo "snapshots written during the second run: $(cat "$dir/count"); last: $(curl -s localhost:$PORT/admin/snapshot | python3 -c 'import json,sys; l=json.load(sys.stdin)["last"]; print(l["duration_ms"], "ms,", l["freeze_ms"], "ms freezing")')"
kill -TERM $pid; wait $pid || true
rm -rf "$dir"
