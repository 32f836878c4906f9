#!/usr/bin/env python3
"""wrk as the second generator beside `featgrid bench` (benches/cluster.py ONLY=throughput): reads
through a 3-node loopback cluster started by benches/cluster.py's helpers (three groups, each on
every node, leaders spread; 100,000 entities), one `wrk -t1 -c11` per node for DUR seconds,
throughput summed; with SINGLE=1, one node and one `wrk -t2 -c33` instead.

    BIN=target/release/featgrid benches/scripts/cluster_reads_wrk.py
    BIN=... SINGLE=1 benches/scripts/cluster_reads_wrk.py
    MODE=read100 DUR=10 benches/scripts/cluster_reads_wrk.py
"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cluster as cb  # noqa: E402  (benches/cluster.py: BIN, OUT, the cluster's helpers)

DUR = int(os.environ.get("DUR", "8"))
MODE = os.environ.get("MODE", "read1")
GROUPS = [("0-5460", [1, 2, 3]), ("5461-10922", [2, 3, 1]), ("10923-16383", [3, 1, 2])]
LUA = os.path.join(cb.ROOT, "benches/wrk/feast.lua")


def preload(url):
    subprocess.run([cb.BIN, "bench", "--target", url, "--entities", "100000", "--preload-batch", "5000",
                    "--max-requests", "1", "--warmup", "0s"], stdout=subprocess.DEVNULL, check=True)


def wrk(urls, threads, conns):
    env = dict(os.environ, MODE=MODE, ENTITIES="100000")
    runs = [subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", f"-d{DUR}s", "-s", LUA, u + "/get-online-features"],
                             stdout=subprocess.PIPE, text=True, env=env) for u in urls]
    return sum(float(re.search(r"Requests/sec:\s+([\d.]+)", r.communicate()[0]).group(1)) for r in runs)


def main():
    os.makedirs(cb.OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="cluster-reads-")
    try:
        if os.environ.get("SINGLE"):
            node = cb.Node("single", ["--bind", "127.0.0.1:0"], os.path.join(tmp, "single"))
            preload(node.url)
            print(f"single node {MODE}: {wrk([node.url], 2, 33):.0f}/s")
        else:
            topology = os.path.join(tmp, "cluster.toml")
            cb.write_topology(topology, GROUPS)
            nodes = cb.start_cluster(tmp, topology)
            preload(nodes[0].url)
            time.sleep(1)
            print(f"cluster {MODE}, a wrk per node: {wrk([n.url for n in nodes], 1, 11):.0f}/s")
    finally:
        cb.stop_all(tmp)


if __name__ == "__main__":
    main()
