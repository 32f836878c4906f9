#!/usr/bin/env bash
# featgrid against the ceiling with wrk, A B A B, same bodies: read 1 x 3, read 100 x 3, push 100
# (Feast JSON). The ceiling is the shared yardstick, `fsbench` (../shared/ceiling, built as its
# compare.sh does; CEILING_DIR to point elsewhere), when it is there, else examples/ceiling.rs (a
# typed handler of the same design at featgrid's URLs; measured beside fsbench on 2026-12-03: read 1
# 0.94x, read 100 1.26x, push 100 0.90x of it, so ratios against it are not the figures of record).
# featgrid runs with --fsync no and each read path (FEATGRID_READ_PATH=direct, then actor); every
# server holds ENTITIES entities (fsbench preloads its own).
#
#   benches/scripts/wrk_ab.sh                 # ENTITIES=1000000 DURATION=10s ROUNDS=2
#
# Needs wrk (apt-get install wrk). Servers listen on 127.0.0.1 and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
ENTITIES=${ENTITIES:-1000000}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
FSYNC=${FSYNC:-no}
OUT=${OUT:-target/wrk-ab}
mkdir -p "$OUT"
source benches/scripts/common.sh

CEILING_DIR=${CEILING_DIR:-../shared/ceiling}
FSBENCH=
if [ -f "$CEILING_DIR/Cargo.toml" ]; then
  ctarget=${CEILING_TARGET:-${TMPDIR:-/tmp}/featgrid-ceiling-target}
  (cd "$CEILING_DIR" && CARGO_TARGET_DIR="$ctarget" cargo build --release --quiet --locked)
  FSBENCH="$ctarget/release/fsbench"
else
  echo "no shared ceiling at $CEILING_DIR: measuring against examples/ceiling.rs" >&2
fi

measure() { # NAME [ROUTES]: one wrk run per workload, requests/s printed as "NAME MODE RPS"
  for mode in read1 read100 push100; do
    rps=$(ROUTES=${2:-} MODE=$mode ENTITIES=$ENTITIES wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
      -s benches/wrk/feast.lua "$url" | awk '/Requests\/sec/ {print $2}')
    echo "$1 $mode $rps" | tee -a "$OUT/results.txt"
  done
}

: >"$OUT/results.txt"
for round in $(seq "$ROUNDS"); do
  for path in direct actor; do
    rm -rf "$OUT/data"
    FEATGRID_READ_PATH=$path start "featgrid-$path" "$BIN" serve --bind 127.0.0.1:0 --fsync "$FSYNC" --data-dir "$OUT/data" --snapshot-interval 0
    measure "featgrid-$path"
    stop
  done
  if [ -n "$FSBENCH" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$FSBENCH" server --port "$port" --workers 2 --keys "$ENTITIES" --actor-mode local >"$OUT/fsbench.log" 2>&1 &
    pid=$!
    url=http://127.0.0.1:$port
    for _ in $(seq 600); do curl -sf -o /dev/null "$url/hello" && break; sleep 0.2; done
    measure ceiling fsbench
  else
    start ceiling target/release/examples/ceiling 127.0.0.1:0
    measure ceiling
  fi
  stop
done
python3 - "$OUT/results.txt" <<'PY'
import sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, mode, rps = line.split()
    runs[(name, mode)].append(float(rps))
best = {k: max(v) for k, v in runs.items()}
print("| workload | ceiling | featgrid direct | ratio | featgrid actor | ratio |")
print("|---|---|---|---|---|---|")
for mode in ["read1", "read100", "push100"]:
    ce = best[("ceiling", mode)]
    d = best[("featgrid-direct", mode)]
    a = best[("featgrid-actor", mode)]
    print(f"| {mode} | {ce:,.0f} | {d:,.0f} | {d/ce:.2f} | {a:,.0f} | {a/ce:.2f} |")
print("\nall runs (requests/s):", dict(runs))
PY
