#!/usr/bin/env bash
# Materialization throughput (BENCHMARKS.md "Materialization"): ROWS rows (ROWS/10 drivers,
# 3 features: float32, int64, string; event and created timestamps) in one local Parquet file
# written by pandas, loaded by one featgrid node with `featgrid materialize`; prints the wall
# time, rows/s and the server's peak resident memory (VmHWM). Then PLUGIN_ROWS rows both ways:
# featgrid reading the file itself, and Feast's client-side `feast materialize` writing through
# the featgrid_feast plugin (python/featgrid-feast).
# Usage: benches/scripts/materialize.sh [ROWS] [PLUGIN_ROWS]   (defaults: 10000000 1000000)
# Needs the Feast venv ($FEATGRID_FEAST_VENV or ~/.cache/featgrid/feast-venv, feast 0.67).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-10000000}
PLUGIN_ROWS=${2:-1000000}
VENV=${FEATGRID_FEAST_VENV:-$HOME/.cache/featgrid/feast-venv}
PY=$VENV/bin/python
FIXTURE=tests/it/feast_materialize
OUT=$(mktemp -d)
cargo build --release --quiet --bin featgrid
BIN=target/release/featgrid
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./python/featgrid-feast
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

repo() { # DIR ONLINE_TYPE ROWS: a Feast repo with ROWS generated rows, applied
  mkdir -p "$1/data"
  cp "$FIXTURE/definitions.py" "$1/"
  printf 'project: bench\nregistry: data/registry.db\nprovider: local\noffline_store:\n  type: file\nonline_store:\n  type: %s\n  path: http://127.0.0.1:6566\nentity_key_serialization_version: 3\n' "$2" >"$1/feature_store.yaml"
  "$PY" "$FIXTURE/write_parquet.py" "$1/data/stats.parquet" --rows "$3"
  (cd "$1" && "$VENV/bin/feast" apply >/dev/null)
  echo "$3 rows: $(du -h "$1/data/stats.parquet" | cut -f1) of Parquet"
}

serve() { # REPO NAME: featgrid on a fresh data directory, serving REPO; sets $url, $pid
  "$BIN" serve --bind 127.0.0.1:0 --data-dir "$OUT/$2-data" --feast-repo "$1" >"$OUT/$2.stdout" 2>"$OUT/$2.stderr" &
  pid=$!
  url=
  for _ in $(seq 200); do
    url=$(grep -o 'http://[0-9.:]*' "$OUT/$2.stdout" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "featgrid did not start; see $OUT/$2.stderr" >&2; exit 1; }
  sed -i "s#path: http://.*#path: $url#" "$1/feature_store.yaml"
}

timed() { # LABEL ROWS CMD...: runs CMD, prints seconds and rows/s
  local label=$1 rows=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$OUT/last.out" 2>"$OUT/last.err" || { cat "$OUT/last.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v l="$label" -v r="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s: %d rows in %.2f s = %.0f rows/s\n", l, r, b - a, r / (b - a) }'
}

peak() { # the server's peak and current resident memory
  awk '/VmHWM|VmRSS/ { printf "%s %.0f MiB  ", $1, $2 / 1024 } END { print "" }' "/proc/$pid/status"
}

echo "== featgrid reads the file: $ROWS rows"
repo "$OUT/native" remote "$ROWS"
serve "$OUT/native" native
echo -n "server at start: "; peak
timed "featgrid materialize" "$ROWS" "$BIN" materialize --disable-event-timestamp --url "$url"
cat "$OUT/last.out"
echo -n "server after: "; peak
curl -s "$url/stats" | "$PY" -c 'import json,sys; s=json.load(sys.stdin); print("stored:", [(v["name"], v["rows"]) for v in s["feature_views"]], "memory_bytes", s["memory_bytes"])'
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

echo "== $PLUGIN_ROWS rows, both ways"
repo "$OUT/plugin" featgrid_feast.FeatgridOnlineStore "$PLUGIN_ROWS"
serve "$OUT/plugin" small
timed "featgrid materialize" "$PLUGIN_ROWS" "$BIN" materialize --disable-event-timestamp --url "$url"
echo -n "server after: "; peak
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
serve "$OUT/plugin" plugin
timed "feast materialize through featgrid_feast" "$PLUGIN_ROWS" bash -c "cd '$OUT/plugin' && /usr/bin/time -v '$VENV/bin/feast' materialize --disable-event-timestamp"
grep -E "Maximum resident" "$OUT/last.err" | sed 's/^\s*/feast client: /'
echo -n "server after: "; peak
