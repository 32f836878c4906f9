#!/usr/bin/env bash
# Push 100 in an open loop at fixed rates (BENCHMARKS.md, "Push: buffers reused, log writeback spread"): one release
# node (1M entities preloaded), oha at each rate (`-q R --latency-correction`, 64 connections, 8 s, 2,000 random
# 100-row bodies), and around each run the server's voluntary / involuntary context switches and CPU time, summed
# over its threads from /proc. Prints, per rate: switches and CPU per push, p50 and p99.
#   benches/scripts/push_open_loop.sh [BIN] [RATE...]          (default: target/release/featgrid 2000 3000 5000)
#   FSYNC=everysec benches/scripts/push_open_loop.sh           (the log's fsync policy; default no)
#   CONFIG=big-segments.toml benches/scripts/push_open_loop.sh (a settings file, e.g. wal_segment_bytes)
# Needs oha (`cargo install oha`). Run it on a quiet machine and compare builds A B A B.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/featgrid}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(2000 3000 5000)
command -v oha >/dev/null || { echo "oha is not installed (cargo install oha)" >&2; exit 1; }
d=$(mktemp -d)
extra=()
[ -n "${CONFIG:-}" ] && extra=(--config "$CONFIG")
"$bin" serve --bind 127.0.0.1:16931 --fsync "${FSYNC:-no}" --data-dir "$d/data" "${extra[@]}" >"$d/log" 2>&1 & sp=$!
trap 'kill $sp 2>/dev/null; wait $sp 2>/dev/null; rm -rf "$d"' EXIT
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:16931/health && break; sleep 0.2; done
"$bin" bench --target http://127.0.0.1:16931 --entities 1000000 --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
python3 benches/scripts/bodies.py "$d"
# voluntary, involuntary switches and CPU ticks, summed over the server's threads
counters() {
  local v=0 i=0 c=0 t
  for t in /proc/$sp/task/*; do
    read -r tv ti < <(awk '/^voluntary/ {v=$2} /^nonvoluntary/ {n=$2} END {print v, n}' "$t/status")
    v=$((v + tv)); i=$((i + ti)); c=$((c + $(awk '{print $14+$15}' "$t/stat")))
  done
  echo "$v $i $c"
}
for rate in "${rates[@]}"; do
  before=$(counters)
  oha --no-tui --output-format json -z 8s -w -c 64 -q "$rate" --latency-correction -m POST \
    -T application/json -Z "$d/push100.bodies" http://127.0.0.1:16931/push >"$d/oha.json"
  after=$(counters)
  python3 - "$d/oha.json" "$rate" "$(getconf CLK_TCK)" $before $after <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rate, tck = sys.argv[2], int(sys.argv[3])
v0, i0, c0, v1, i1, c1 = map(int, sys.argv[4:10])
n = sum(r["statusCodeDistribution"].values())
p = r["latencyPercentiles"]
bad = sum(v for k, v in r["statusCodeDistribution"].items() if not k.startswith("2")) + sum(r.get("errorDistribution", {}).values())
print(f"push 100 at {rate}/s: {n} answers ({bad} not 2xx), voluntary switches {(v1-v0)/n:.2f} and involuntary "
      f"{(i1-i0)/n:.2f} per push, CPU {(c1-c0)/tck*1e6/n:.0f} us per push, p50 {p['p50']*1e3:.2f} ms, p99 {p['p99']*1e3:.2f} ms")
PY
done
