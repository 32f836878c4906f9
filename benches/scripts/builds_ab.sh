#!/usr/bin/env bash
# Two featgrid builds against each other and the shared ceiling (fsbench), interleaved A B ceiling per
# round so that the host's drift (15-30% within minutes on the development machine) falls on all three
# alike. Each server runs with --fsync no and 1M entities preloaded (fsbench preloads its own). MODE:
#   wrk     requests/s under wrk -t2 -c64 (the ceiling's wrk bodies), medians and ratios (default)
#   oha     the same with oha -c64 and 2,000 random bodies from bodies.py: the second generator
#   cpu     server CPU per request at a fixed RATE (oha -q, 2,000 random bodies from bodies.py): less
#           disturbed by a busy host than throughput; the ceiling is not run
#   malloc  libc malloc calls per request (a perf uprobe on malloc, wrk -c$MALLOC_CONNS (4) for 4 s):
#           exact, needs root and perf; the ceiling is run too. Spare-buffer pools show at -c64
#
#   benches/scripts/builds_ab.sh BIN_A BIN_B            # WORKLOADS="push100 read1 read100" ROUNDS=3 MODE=wrk
#   MODE=cpu RATE=8000 ROUNDS=8 WORKLOADS=push100 benches/scripts/builds_ab.sh /tmp/featgrid-base target/release/featgrid
#
# Run from the project root; needs wrk (and oha for MODE=cpu: `cargo install oha`).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
bins=("$1" "$2")
MODE=${MODE:-wrk}
WORKLOADS=${WORKLOADS:-push100 read1 read100}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-8000}
here=$(cd "$(dirname "$0")" && pwd)
shared=${CEILING_DIR:-$here/../../../shared/ceiling}
ctarget=${CEILING_TARGET:-${TMPDIR:-/tmp}/featgrid-ceiling-target}
(cd "$shared" && CARGO_TARGET_DIR="$ctarget" cargo build --release --quiet --locked)
ceiling="$ctarget/release/fsbench"
case $MODE in
  wrk | malloc) command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; } ;;
  cpu | oha) command -v oha >/dev/null || { echo "oha is not installed (cargo install oha)" >&2; exit 1; } ;;
  *) echo "MODE is wrk, oha, cpu or malloc" >&2; exit 2 ;;
esac
if [ "$MODE" = malloc ]; then
  libc=$(ldd "${bins[0]}" | awk '/libc.so/ {print $3}')
  perf probe -q -x "$libc" malloc 2>/dev/null || true
  [ -n "$(perf probe -l 2>/dev/null | grep probe_libc:malloc)" ] || { echo "no malloc uprobe (needs root and perf)" >&2; exit 1; }
fi
data=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$data"
  if [ "$MODE" = malloc ]; then perf probe -q -d probe_libc:malloc 2>/dev/null || true; fi
}
trap cleanup EXIT
ports=(16991 16992 16993)
for i in 0 1; do
  mkdir "$data/$i"
  "${bins[$i]}" serve --bind "127.0.0.1:${ports[$i]}" --fsync no --data-dir "$data/$i" >"$data/$i.log" 2>&1 &
  pids+=($!)
done
"$ceiling" server --port "${ports[2]}" --workers 2 --actor-mode local >"$data/ceiling.log" 2>&1 &
pids+=($!)
for i in 0 1; do
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:${ports[$i]}/health" && break; sleep 0.2; done
  "${bins[0]}" bench --target "http://127.0.0.1:${ports[$i]}" --entities 1000000 --preload-batch 5000 \
    --max-requests 1 --warmup 0s >/dev/null
done
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:${ports[2]}/hello" && break; sleep 0.2; done
if [ "$MODE" = cpu ] || [ "$MODE" = oha ]; then python3 "$here/bodies.py" "$data"; fi
tck=$(getconf CLK_TCK)

# One measurement of server $1 (0, 1: featgrid A, B; 2: the ceiling) under workload $2.
measure() {
  local i=$1 w=$2 path
  case $i/$w in
    2/push100) path=/push_feast ;;
    2/*) path=/get ;;
    */push100) path=/push ;;
    *) path=/get-online-features ;;
  esac
  local url="http://127.0.0.1:${ports[$i]}$path" pid=${pids[$i]}
  case $MODE in
    wrk) wrk -t2 -c64 -d8s -s "$shared/wrk/$w.lua" "$url" | awk '/Requests\/sec/ {print $2}' ;;
    oha)
      oha --no-tui --output-format json -z 8s -c 64 -m POST -T application/json -Z "$data/$w.bodies" "$url" |
        python3 -c "import json, sys; print(json.load(sys.stdin)['summary']['requestsPerSec'])" ;;
    cpu)
      local a b n
      a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      n=$(oha --no-tui --output-format json -z 6s -c 32 -q "$RATE" -m POST -T application/json \
        -Z "$data/$w.bodies" "$url" | python3 -c "import json, sys; print(sum(json.load(sys.stdin)['statusCodeDistribution'].values()))")
      b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      python3 -c "print(round(($b - $a) / $tck * 1e6 / $n, 1))" ;;
    malloc)
      wrk -t1 -c"${MALLOC_CONNS:-4}" -d6s -s "$shared/wrk/$w.lua" "$url" >"$data/wrk.out" &
      sleep 1
      local calls
      calls=$(perf stat -x, -e probe_libc:malloc -p "$pid" -- sleep 4 2>&1 | awk -F, '/probe_libc:malloc/ {print $1}')
      wait $!
      python3 -c "import sys; print(round($calls / (float(sys.argv[1]) * 4), 1))" \
        "$(awk '/Requests\/sec/ {print $2}' "$data/wrk.out")" ;;
  esac
}

servers="0 1 2"
if [ "$MODE" = cpu ]; then servers="0 1"; fi
for w in $WORKLOADS; do
  declare -A got=()
  for _ in $(seq "$ROUNDS"); do
    for i in $servers; do got[$i]+="$(measure "$i" "$w") "; done
  done
  python3 - "$MODE" "$w" "${got[0]}" "${got[1]}" "${got[2]:-}" <<'EOF'
import statistics as s, sys
mode, w, *runs = sys.argv[1:]
runs = [[float(x) for x in r.split()] for r in runs]
unit = {"wrk": "requests/s", "oha": "requests/s", "cpu": "us of CPU per request", "malloc": "mallocs per request"}[mode]
names = ["A", "B", "ceiling"]
med = [s.median(r) if r else None for r in runs]
print(f"{w} ({unit}, medians of {len(runs[0])}):")
for name, r, m in zip(names, runs, med):
    if r:
        extra = f", {m / med[2]:.3f} of the ceiling" if mode in ("wrk", "oha") and name != "ceiling" else ""
        print(f"  {name:8} {m:>12,.1f}  {[round(x, 1) for x in r]}{extra}")
print(f"  B/A {med[1] / med[0]:.3f}")
EOF
  unset got
done
