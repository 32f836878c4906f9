#!/usr/bin/env bash
# On-demand feature views (BENCHMARKS.md "On-demand feature views"): read 1 x 3 plain, and one
# python-mode on-demand feature computed from those three, against featgrid (--python) and
# against Feast's own server (`feast serve`, SQLite online store) on the same repo and rows.
#
#   PYTHON=~/.cache/featgrid/feast-venv/bin/python benches/scripts/odfv_bench.sh
#
# Env: BIN (a featgrid binary; default: build target/release/featgrid), WITH_FEAST (0: featgrid only, no
# `feast serve`), PYTHON (a python with feast installed), ENTITIES (10000), DURATION (10s), WORKERS
# (featgrid's python_workers; default one per core), CONNS (wrk connections at full load, 16),
# OUT (results/odfv-<time>), AB (1: also ApacheBench (Debian's apache2-utils), `ab -c$CONNS`, on the on-demand read of featgrid
# and of Feast, as a second generator; keep-alive for featgrid, not for `feast serve`, whose worker
# restarts every ~1,000 requests and resets its connections). Each run: wrk -t1 -c$CONNS -d$DURATION --latency (the peak); then
# the same read paced at about half of that peak (8 connections, DELAY_MS between requests;
# wrk, not wrk2: the latency of a paced closed loop, without coordinated-omission correction). OHA=1
# (needs oha: `cargo install oha`): also featgrid's on-demand read in an open loop at exactly half its wrk
# peak (`oha -q RATE --latency-correction`: each latency counts from the request's scheduled send time).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$HOME/.cache/featgrid/feast-venv/bin/python}
FEAST=$(dirname "$PYTHON")/feast
ENTITIES=${ENTITIES:-10000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
OUT=${OUT:-benches/results/odfv-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin featgrid
  BIN=$PWD/target/release/featgrid
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

repo() { # DIR ONLINE_STORE_YAML
  mkdir -p "$1/data"
  cp benches/ondemand/definitions.py "$1/"
  sed "s#^online_store:.*##; s#^  type: remote##; s#^  path: http://127.0.0.1:6566##" \
    benches/ondemand/feature_store.yaml | grep -v '^$' >"$1/feature_store.yaml"
  printf '%s\n' "$2" >>"$1/feature_store.yaml"
  (cd "$1" && "$FEAST" apply >/dev/null 2>&1)
}

push_rows() { # URL
  "$PYTHON" - "$1" "$ENTITIES" <<'PY'
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
for start in range(1, n + 1, 1000):
    ids = list(range(start, min(start + 1000, n + 1)))
    body = {"push_source_name": "driver_stats_push", "to": "online", "df": {
        "driver_id": ids, "conv_rate": [0.5] * len(ids), "acc_rate": [0.25] * len(ids),
        "avg_daily_trips": [i % 50 for i in ids], "event_timestamp": ["2026-11-25T10:00:00"] * len(ids),
        "created": ["2026-11-25T10:00:00"] * len(ids)}}
    req = urllib.request.Request(url + "/push", json.dumps(body).encode(), {"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=300).read()
PY
}

wait_health() { # URL
  for _ in $(seq 600); do curl -sf "$1/health" >/dev/null && return; sleep 0.2; done
  echo "no answer from $1" >&2; exit 1
}

rate() { grep -E 'Requests/sec' "$OUT/$1.txt" | awk '{print $2}'; }
half_delay() { python3 -c "print(max(1, int(8 * 1000 / (float('$1') / 2))))"; }

run() { # NAME URL MODE CONNS [DELAY_MS]
  DELAY_MS=${5:-0} MODE=$3 ENTITIES=$ENTITIES wrk -t1 -c"$4" -d"$DURATION" --latency -s benches/wrk/odfv.lua "$2" \
    >"$OUT/$1.txt" 2>&1
  echo "== $1 (c$4): $(grep -E 'Requests/sec' "$OUT/$1.txt")  p50 $(grep -E '^ +50%' "$OUT/$1.txt" | awk '{print $2}')  p99 $(grep -E '^ +99%' "$OUT/$1.txt" | awk '{print $2}')  $(grep -E 'Non-2xx' "$OUT/$1.txt" || true)"
}

ab_run() { # NAME URL REQUESTS [AB OPTIONS]
  [ "${AB:-0}" = 1 ] || return 0
  printf '{"features":["driver_score:score"],"entities":{"driver_id":[%s]}}' "$((ENTITIES / 2))" >"$OUT/odfv.json"
  ab -q -r -c"$CONNS" -n "$3" "${@:4}" -p "$OUT/odfv.json" -T application/json "$2/get-online-features" >"$OUT/$1.txt" 2>&1
  echo "== $1 (ab, c$CONNS): $(grep -E 'Requests per second' "$OUT/$1.txt" | awk '{print $4}')/s  p50 $(grep -E '^ +50%' "$OUT/$1.txt" | awk '{print $2}') ms  p99 $(grep -E '^ +99%' "$OUT/$1.txt" | awk '{print $2}') ms  failed $(grep -E 'Failed requests' "$OUT/$1.txt" | awk '{print $3}')"
}

oha_run() { # NAME URL RATE
  [ "${OHA:-0}" = 1 ] || return 0
  oha --no-tui --output-format json -z "$DURATION" -w -c "$CONNS" -q "$3" --latency-correction -m POST \
    -T application/json -d "$(printf '{"features":["driver_score:score"],"entities":{"driver_id":[%s]}}' "$((ENTITIES / 2))")" \
    "$2/get-online-features" >"$OUT/$1.json"
  read -r p50 p99 p999 rps bad < <(python3 benches/scripts/oha_summary.py "$OUT/$1.json")
  echo "== $1 (oha, open loop at $3/s): ${rps}/s  p50 ${p50}ms  p99 ${p99}ms  p99.9 ${p999}ms  non-2xx or errors $bad"
}

FG=$(mktemp -d)
repo "$FG" "online_store: {type: remote, path: 'http://127.0.0.1:6566'}"
FEATGRID_PYTHON_WORKERS=${WORKERS:-0} "$BIN" serve --feast-repo "$FG" --python "$PYTHON" \
  --bind 127.0.0.1:0 --data-dir "$FG/fgdata" --fsync no >"$OUT/featgrid.stdout" 2>"$OUT/featgrid.stderr" &
pids+=($!)
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*' "$OUT/featgrid.stdout" 2>/dev/null | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "featgrid did not start; see $OUT/featgrid.stderr" >&2; exit 1; }
push_rows "$url"
# The first on-demand read waits for the workers to import Feast.
curl -sf -XPOST "$url/get-online-features" -d '{"features":["driver_score:score"],"entities":{"driver_id":[1]}}' >/dev/null
sleep 3
run featgrid-plain "$url" plain "$CONNS"
run featgrid-odfv "$url" odfv "$CONNS"
ab_run featgrid-odfv-ab "$url" 40000 -k
run featgrid-plain-half "$url" plain 8 "$(half_delay "$(rate featgrid-plain)")"
run featgrid-odfv-half "$url" odfv 8 "$(half_delay "$(rate featgrid-odfv)")"
oha_run featgrid-odfv-open "$url" "$(python3 -c "print(int(float('$(rate featgrid-odfv)') / 2))")"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
[ "${WITH_FEAST:-1}" = 1 ] || { echo "results in $OUT"; exit 0; }

FE=$(mktemp -d)
repo "$FE" "online_store: {type: sqlite, path: data/online.db}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# In a session of its own: `feast serve` runs its server in a child, stopped with it.
(cd "$FE" && exec setsid "$FEAST" serve -h 127.0.0.1 -p "$port" >"$OUT/feast.log" 2>&1) &
pids+=(-$!)
wait_health "http://127.0.0.1:$port"
push_rows "http://127.0.0.1:$port"
run feast-plain "http://127.0.0.1:$port" plain "$CONNS"
run feast-odfv "http://127.0.0.1:$port" odfv "$CONNS"
ab_run feast-odfv-ab "http://127.0.0.1:$port" 4000
run feast-odfv-half "http://127.0.0.1:$port" odfv 8 "$(half_delay "$(rate feast-odfv)")"
echo "results in $OUT"
