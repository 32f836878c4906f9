#!/usr/bin/env bash
# Issue 17, item 5: latency in an open loop at half the shared ceiling's peak, corrected for coordinated omission,
# featgrid (`--fsync no`, 1M entities) against the typed ceiling of ../shared/ceiling (`fsbench`), same bodies:
#   1. the ceiling's closed-loop peak per workload with wrk (-t2 -c64, the ceiling's own wrk bodies);
#   2. at half that rate, oha (`-q R --latency-correction`: each latency counts from the request's scheduled
#      send time) against the ceiling and featgrid, A B A B, with 2,000 random bodies per workload (`-Z`, one per
#      line, the same shapes and id range as the wrk bodies);
#   3. featgrid bench `--rate R` (open loop, latency from the intended send time) against featgrid, the second
#      generator for featgrid's figure (it speaks featgrid's URLs only).
#   benches/scripts/open_loop_p99.sh [FEATGRID_BINARY]      (needs wrk and oha: `cargo install oha`; ~6 minutes)
# Prints p50 / p99 / p99.9 per server and workload and featgrid's p99 as a multiple of the ceiling's (goal <= 1.25).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/featgrid}
DURATION=${DURATION:-10}
for tool in wrk oha; do
  command -v $tool >/dev/null || { echo "$tool is not installed (wrk: apt-get install wrk; oha: cargo install oha)" >&2; exit 1; }
done
[ -x "$bin" ] || cargo build --release --quiet --bin featgrid
here=../shared/ceiling
ctarget=${CEILING_TARGET:-${TMPDIR:-/tmp}/featgrid-ceiling-target}
(cd "$here" && CARGO_TARGET_DIR="$ctarget" cargo build --release --quiet --locked)
ceiling="$ctarget/release/fsbench"
data=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$data"' EXIT
"$bin" serve --bind 127.0.0.1:16921 --fsync no --data-dir "$data/fg" >"$data/featgrid.log" 2>&1 & pids+=($!)
"$ceiling" server --port 16922 --workers 2 --actor-mode local >"$data/ceiling.log" 2>&1 & pids+=($!)
for _ in $(seq 300); do
  curl -sf -o /dev/null http://127.0.0.1:16921/health && curl -sf -o /dev/null http://127.0.0.1:16922/hello && break
  sleep 0.2
done
"$bin" bench --target http://127.0.0.1:16921 --entities 1000000 --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
# The ceiling preloads its own 1M rows at start (fsbench); reads of both find every id.
python3 benches/scripts/bodies.py "$data"
oha_run() { # URL BODIES RATE -> "p50 p99 p999 rps errors" in ms
  oha --no-tui --output-format json -z "${DURATION}s" -w -c 64 -q "$3" --latency-correction -m POST \
    -T application/json -Z "$2" "$1" >"$data/oha.json"
  python3 benches/scripts/oha_summary.py "$data/oha.json"
}
printf '| workload | ceiling peak (wrk) | rate | ceiling p50 / p99 / p99.9 (oha) | featgrid p50 / p99 / p99.9 (oha) | featgrid p99 (featgrid bench) | p99 ratio |\n|---|---|---|---|---|---|---|\n'
for w in "read1 /get-online-features /get read 1" "read100 /get-online-features /get read 100" "push100 /push /push_feast push 100"; do
  set -- $w
  peak=$(wrk -t2 -c64 -d8s -s "$here/wrk/$1.lua" "http://127.0.0.1:16922$3" | awk '/Requests\/sec/ {print $2}')
  rate=$(python3 -c "print(int(float('$peak') / 2))")
  c=(); f=()
  for _ in 1 2; do
    c+=("$(oha_run "http://127.0.0.1:16922$3" "$data/$1.bodies" "$rate")")
    f+=("$(oha_run "http://127.0.0.1:16921$2" "$data/$1.bodies" "$rate")")
  done
  fb=$("$bin" bench --target http://127.0.0.1:16921 --no-preload --entities 1000000 --workload "$4" --batch "$5" \
    --rate "$rate" --connections 256 --duration "${DURATION}s" --warmup 2s --json "$data/fb.json" >/dev/null 2>&1 \
    && python3 -c "import json,sys; o=json.load(open(sys.argv[1]))['operations'][0]; print(f\"{o['latency_us']['p99']/1e3:.2f}\")" "$data/fb.json" || echo "?")
  python3 - "$1" "$peak" "$rate" "$fb" "${c[@]}" "${f[@]}" <<'PY'
import statistics as s, sys
name, peak, rate, fb = sys.argv[1:5]
runs = [x.split() for x in sys.argv[5:9]]
ce, fg = runs[:2], runs[2:]
med = lambda rs, i: s.median(float(r[i]) for r in rs)
bad = sum(int(r[4]) for r in runs)
cell = lambda rs: f"{med(rs,0):.2f} / {med(rs,1):.2f} / {med(rs,2):.2f} ms"
print(f"| {name} | {float(peak):,.0f}/s | {int(rate):,}/s | {cell(ce)} | {cell(fg)} | {fb} ms | **{med(fg,1)/med(ce,1):.2f}** |" + (f" ({bad} non-2xx or errors)" if bad else ""))
PY
done
