#!/usr/bin/env python3
"""Reads and pushes together through a 3-node loopback cluster (benches/cluster.py's helpers: three
groups, each on every node, leaders spread; 100,000 entities): one `featgrid bench --workload mixed`
per node (READ_RATIO, default 0.9; batch 1; 11 connections; DUR seconds), throughput of each
operation summed and the worst client's p99. Where follower read leases cost writes something: a
commit waits for every lease holder.

    BIN=target/release/featgrid benches/scripts/cluster_mixed.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cluster as cb  # noqa: E402

DUR = os.environ.get("DUR", "8")
READ_RATIO = os.environ.get("READ_RATIO", "0.9")
GROUPS = [("0-5460", [1, 2, 3]), ("5461-10922", [2, 3, 1]), ("10923-16383", [3, 1, 2])]


def main():
    os.makedirs(cb.OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="cluster-mixed-")
    try:
        topology = os.path.join(tmp, "cluster.toml")
        cb.write_topology(topology, GROUPS)
        nodes = cb.start_cluster(tmp, topology)
        subprocess.run([cb.BIN, "bench", "--target", nodes[0].url, "--entities", "100000", "--preload-batch",
                        "5000", "--max-requests", "1", "--warmup", "0s"], stdout=subprocess.DEVNULL, check=True)
        time.sleep(1)
        runs = []
        for i, node in enumerate(nodes):
            out = os.path.join(tmp, f"mixed-{i}.json")
            runs.append((subprocess.Popen(
                [cb.BIN, "bench", "--target", node.url, "--workload", "mixed", "--read-ratio", READ_RATIO,
                 "--batch", "1", "--entities", "100000", "--connections", "11", "--threads", "1",
                 "--warmup", "1s", "--duration", f"{DUR}s", "--json", out], stdout=subprocess.DEVNULL), out))
        rate, p99 = {}, {}
        for proc, out in runs:
            if proc.wait() != 0:
                sys.exit(f"featgrid bench failed ({out})")
            for op in json.load(open(out))["operations"]:
                rate[op["op"]] = rate.get(op["op"], 0) + op["requests_per_sec"]
                p99[op["op"]] = max(p99.get(op["op"], 0), op["latency_us"]["p99"])
        for op in sorted(rate):
            print(f"{op}: {rate[op]:.0f}/s, p99 (worst client) {p99[op] / 1000:.1f} ms")
    finally:
        cb.stop_all(tmp)


if __name__ == "__main__":
    main()
