#!/usr/bin/env bash
# The performance budget in one run, on this machine, with one load generator (`featgrid bench`,
# one client thread per core) and the same request bodies for every server, every closed-loop
# figure cross-checked with a second, independent generator (wrk, when installed:
# `apt-get install wrk`; the script says so when it is missing):
#   (a) featgrid (Feast JSON and the native path),
#   (b) the ceiling: a bare actix-web handler over a plain sharded map (examples/ceiling.rs; not the
#       shared fsbench of ../shared/ceiling, the yardstick of record: see BENCHMARKS.md "About the
#       ceiling" for how the two compare; benches/scripts/wrk_ab.sh measures against fsbench),
#   (c) Redis, when redis-server is installed (HMGET/HSET of the same rows, with redis-benchmark),
# then featgrid's ratio to the ceiling, p99 at half the peak rate (open loop), and resident bytes per
# entity against Redis for the same rows.
#
#   benches/compare.sh                      # defaults below; about 4 minutes
#   DURATION=20s MEM_ENTITIES=1000000 FSYNC=everysec benches/compare.sh
#
# FSYNC (default no) is featgrid's write-ahead-log policy for the main table; push throughput with
# everysec and always is measured as well.
#
# Every server listens on 127.0.0.1 on a free port and is stopped at the end. Results (JSON, SVG
# plots, summary.md) go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
ENTITIES=${ENTITIES:-100000}
MEM_ENTITIES=${MEM_ENTITIES:-1000000}
FSYNC=${FSYNC:-no}
OUT=${OUT:-target/compare}
mkdir -p "$OUT"

command -v python3 >/dev/null || { echo "compare.sh needs python3 to read the JSON reports" >&2; exit 1; }
echo "building (release)..." >&2
cargo build --release --quiet --bin featgrid --example ceiling
BIN=target/release/featgrid
CEILING=target/release/examples/ceiling

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start NAME CMD...: runs a server that prints "... listening on http://ADDR", sets $url and $pid.
start() {
  local name=$1; shift
  "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$OUT/$name.stdout" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "$name did not start; see $OUT/$name.stderr" >&2
  exit 1
}

# wrk_run NAME URL MODE: wrk -t2 -c64 with benches/wrk/feast.lua; requests/s into $OUT/wrk-NAME.txt.
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
wrk_run() {
  local name=$1 url=$2 mode=$3
  if ! command -v wrk >/dev/null; then echo "-" >"$OUT/wrk-$name.txt"; return; fi
  MODE=$mode ENTITIES=$ENTITIES wrk -t2 -c"$WRK_CONNECTIONS" -d"$DURATION" -s benches/wrk/feast.lua "$url" \
    | awk '/Requests\/sec/ {print $2}' >"$OUT/wrk-$name.txt"
}

# run NAME ARGS...: one featgrid bench run, JSON and SVG into $OUT.
run() {
  local name=$1; shift
  local connections=(--connections "$CONNECTIONS")
  [[ " $* " == *" --connections "* ]] && connections=()
  "$BIN" bench --warmup "$WARMUP" --duration "$DURATION" "${connections[@]}" \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" >"$OUT/$name.txt"
}

# field FILE OP KEY: a number from a bench report.
field() {
  python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
op = next(o for o in report["operations"] if o["op"] == sys.argv[2])
value = op
for part in sys.argv[3].split("."):
    value = value[part]
print(value)
EOF
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

rm -rf "$OUT/data"
serve() { local name=$1; shift; start "$name" "$BIN" serve --bind 127.0.0.1:0 --data-dir "$OUT/data/$name" "$@"; }

echo "featgrid..." >&2
serve featgrid --fsync "$FSYNC"
fg=$url
run fg-read1 --target "$fg" --entities "$ENTITIES"
run fg-read100 --target "$fg" --entities "$ENTITIES" --no-preload --batch 100
run fg-push100 --target "$fg" --entities "$ENTITIES" --no-preload --batch 100 --workload push
run fg-native-read1 --target "$fg" --entities "$ENTITIES" --no-preload --protocol native
run fg-native-read100 --target "$fg" --entities "$ENTITIES" --no-preload --batch 100 --protocol native
run fg-native-push100 --target "$fg" --entities "$ENTITIES" --no-preload --batch 100 --workload push --protocol native
peak=$(field "$OUT/fg-read1.json" read requests_per_sec)
half=$(python3 -c "print(int($peak / 2))")
run fg-read1-half --target "$fg" --entities "$ENTITIES" --no-preload --rate "$half" --connections 256
run fg-freshness --target "$fg" --entities "$ENTITIES" --no-preload --workload freshness --connections 1
for mode in read1 read100 push100; do wrk_run "fg-$mode" "$fg" "$mode"; done

echo "ceiling..." >&2
start ceiling "$CEILING" 127.0.0.1:0
ce=$url
run ce-read1 --target "$ce" --entities "$ENTITIES"
run ce-read100 --target "$ce" --entities "$ENTITIES" --no-preload --batch 100
run ce-push100 --target "$ce" --entities "$ENTITIES" --no-preload --batch 100 --workload push
ce_peak=$(field "$OUT/ce-read1.json" read requests_per_sec)
run ce-read1-half --target "$ce" --entities "$ENTITIES" --no-preload --rate "$(python3 -c "print(int($ce_peak / 2))")" --connections 256
for mode in read1 read100 push100; do wrk_run "ce-$mode" "$ce" "$mode"; done
kill "$pid"

for policy in everysec always; do
  echo "featgrid, push with --fsync $policy..." >&2
  serve "featgrid-$policy" --fsync "$policy"
  run "fg-push100-$policy" --target "$url" --entities "$ENTITIES" --batch 100 --workload push
  kill "$pid"
done

echo "memory: featgrid with $MEM_ENTITIES entities..." >&2
serve featgrid-mem --fsync no --snapshot-interval 0
before=$(rss_kb "$pid")
"$BIN" bench --target "$url" --entities "$MEM_ENTITIES" --preload-batch 5000 --max-requests 1 --warmup 0s >"$OUT/mem-preload.txt"
# Reads first: an idle server keeps the index retired by its last growth until a thread pins the epoch collector
# again (a serving one does at once). featgrid hands freed request buffers back to the OS every 10 s
# (malloc_trim): measure after that.
"$BIN" bench --target "$url" --no-preload --entities "$MEM_ENTITIES" --workload read --batch 1 --max-requests 5000 \
  --warmup 0s >/dev/null
sleep 11
fg_bytes=$(( ($(rss_kb "$pid") - before) * 1024 / MEM_ENTITIES ))
kill "$pid"

redis="not installed (apt-get install redis-server redis-tools to compare)"
redis_read1=- redis_read100=- redis_push100=- redis_bytes=-
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  echo "redis..." >&2
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  base=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  python3 - "$MEM_ENTITIES" <<'EOF' | redis-cli -p "$port" --pipe >/dev/null
import sys
out = sys.stdout
for i in range(1, int(sys.argv[1]) + 1):
    args = ["HSET", "driver:%d" % i, "conv_rate", "0.5", "acc_rate", "0.9", "avg_daily_trips", "12"]
    out.write("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
EOF
  used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  redis_bytes=$(( (used - base) / MEM_ENTITIES ))
  n=${REDIS_REQUESTS:-300000}
  rb() { redis-benchmark -p "$port" -c "$CONNECTIONS" -r "$MEM_ENTITIES" --csv "$@" | tail -1 | cut -d, -f2 | tr -d '"'; }
  redis_read1=$(rb -n "$n" HMGET "driver:__rand_int__" conv_rate acc_rate avg_daily_trips)
  # 100 entities a request: 100 pipelined HMGETs make one round trip.
  per_cmd=$(rb -n "$((n * 10))" -P 100 HMGET "driver:__rand_int__" conv_rate acc_rate avg_daily_trips)
  redis_read100=$(python3 -c "print(round($per_cmd / 100, 1))")
  per_cmd=$(rb -n "$((n * 10))" -P 100 HSET "driver:__rand_int__" conv_rate 0.5 acc_rate 0.9 avg_daily_trips 12)
  redis_push100=$(python3 -c "print(round($per_cmd / 100, 1))")
  redis=$(redis-server --version | awk '{print $3}')
fi

python3 - "$OUT" "$redis" "$redis_read1" "$redis_read100" "$redis_push100" "$fg_bytes" "$redis_bytes" "$MEM_ENTITIES" "$FSYNC" <<'EOF' | tee "$OUT/summary.md"
import json, sys
out, redis, r1, r100, rpush, fg_bytes, redis_bytes, mem_entities, fsync = sys.argv[1:]
def op(name, kind):
    report = json.load(open(f"{out}/{name}.json"))
    return next(o for o in report["operations"] if o["op"] == kind)
def rps(name, kind):
    return op(name, kind)["requests_per_sec"]
rows = [
    ("read 1 entity x 3 features", "read1", "read", r1),
    ("read 100 entities x 3 features", "read100", "read", r100),
    ("push 100 rows", "push100", "push", rpush),
]
print(f"featgrid with --fsync {fsync}.")
print()
print(f"| workload (requests/s) | ceiling | featgrid JSON | ratio | featgrid native | ratio | Redis {redis} |")
print("|---|---|---|---|---|---|---|")
for label, key, kind, redis_rps in rows:
    ce, fg, nat = rps(f"ce-{key}", kind), rps(f"fg-{key}", kind), rps(f"fg-native-{key}", kind)
    print(f"| {label} | {ce:,.0f} | {fg:,.0f} | {fg / ce:.2f} | {nat:,.0f} | {nat / ce:.2f} | {redis_rps} |")
print()
print("| latency (µs), read 1 x 3 | p50 | p90 | p99 | p99.9 | max |")
print("|---|---|---|---|---|---|")
for label, name in [("featgrid, closed loop at peak", "fg-read1"), ("featgrid, open loop at half the peak", "fg-read1-half"),
                    ("ceiling, open loop at half its peak", "ce-read1-half"), ("featgrid native, closed loop", "fg-native-read1")]:
    l = op(name, "read")["latency_us"]
    print(f"| {label} | {l['p50']} | {l['p90']} | {l['p99']} | {l['p999']} | {l['max']} |")
def wrk(name):
    text = open(f"{out}/wrk-{name}.txt").read().strip()
    return float(text) if text not in ("", "-") else None
print()
print("Cross-check with wrk -t2 (requests/s; `-` when wrk is not installed):")
print()
print("| workload | ceiling (wrk) | featgrid (wrk) | ratio (wrk) | ratio (featgrid bench) |")
print("|---|---|---|---|---|")
for label, key, kind, _ in rows:
    ce, fg = wrk(f"ce-{key}"), wrk(f"fg-{key}")
    bench_ratio = rps(f"fg-{key}", kind) / rps(f"ce-{key}", kind)
    if ce and fg:
        print(f"| {label} | {ce:,.0f} | {fg:,.0f} | {fg / ce:.2f} | {bench_ratio:.2f} |")
    else:
        print(f"| {label} | - | - | - | {bench_ratio:.2f} |")
ce_push = rps("ce-push100", "push")
for policy in ["everysec", "always"]:
    fg = rps(f"fg-push100-{policy}", "push")
    print(f"\nPush 100 rows with --fsync {policy}: {fg:,.0f} requests/s, {fg / ce_push:.2f} x the ceiling.", end="")
print()
half = json.load(open(f"{out}/fg-read1-half.json"))
print()
print(f"Open loop: featgrid at {half['setup']['rate']:,.0f} requests/s (half its peak), {half['unsent']} requests never sent.")
fresh = op("fg-freshness", "freshness")["latency_us"]
print(f"Freshness (push, then read until visible): p50 {fresh['p50']} µs, p99 {fresh['p99']} µs.")
ratio = f"{int(fg_bytes) / int(redis_bytes):.2f}" if redis_bytes != "-" else "-"
print(f"Memory, {int(mem_entities):,} entities x 3 numeric features: featgrid {fg_bytes} B/entity (resident), Redis {redis_bytes} B/entity (used_memory); ratio {ratio}.")
EOF
