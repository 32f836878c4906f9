#!/usr/bin/env bash
# Snapshot write rate, restore rate from a snapshot, and log replay rate, for N driver
# entities x 3 features (8 shards). Usage: benches/scripts/snapshot_restore.sh [N] [BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
BIN=${2:-target/release/featgrid}
PORT=7630
dir=$(mktemp -d)
start() { "$BIN" serve --bind 127.0.0.1:$PORT --data-dir "$dir/data" --snapshot-interval 0 >/dev/null 2>"$dir/err" & pid=$!; }
restored() { # waits for the "restored" line, prints it
  until grep -q restored "$dir/err"; do sleep 0.1; done
  sed 's/\x1b\[[0-9;]*m//g' "$dir/err" | grep -o 'snapshot_rows=.*elapsed_ms=[0-9]*'
}
start; sleep 1
python3 benches/scripts/load_entities.py http://127.0.0.1:$PORT "$N" 20000
kill -9 $pid; wait $pid 2>/dev/null || true
echo "log replay after kill -9 (no snapshot yet):"; start; restored
for i in 1 2 3; do echo "snapshot $i: $(curl -s -XPOST localhost:$PORT/admin/snapshot)"; done
digest=$(curl -s localhost:$PORT/admin/digest)
du -sh "$dir/data/snapshots"
kill -9 $pid; wait $pid 2>/dev/null || true
for i in 1 2; do
  echo "restore $i from the snapshot:"; start; restored
  [ "$(curl -s localhost:$PORT/admin/digest)" = "$digest" ] && echo "  same digest: $digest"
  kill -9 $pid; wait $pid 2>/dev/null || true
done
rm -rf "$dir"
