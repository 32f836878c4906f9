#!/usr/bin/env bash
# The cluster's history check, longer than in CI: three `featgrid serve --cluster` nodes under
# push load with a reader checking every linearizable read, KILLS kill -9 of random nodes (each
# restarted, every other one on a wiped data directory; Raft snapshots every 50 entries), then
# every acknowledged push read back through every node; then the same under
# PARTITIONS network partitions (namespaces; skipped unless root). Prints what they checked.
#   benches/cluster_history.sh [KILLS] [PARTITIONS]      (default 20 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-20}"
partitions="${2:-10}"
FEATGRID_TEST_KILLS="$kills" cargo test --release --test it -- --nocapture --exact \
    cluster_failures::kill_9_under_load_loses_no_acknowledged_push_and_restarted_nodes_catch_up 2>&1 \
    | grep -E "cluster kill test|test result|panicked"
FEATGRID_TEST_PARTITIONS="$partitions" cargo test --release --test it -- --nocapture cluster_partition 2>&1 \
    | grep -E "partition|skipped|test result|panicked"
