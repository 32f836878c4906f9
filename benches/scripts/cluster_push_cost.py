#!/usr/bin/env python3
"""What a cluster push costs, and how much of it is per Raft entry: a 3-node loopback cluster started
by benches/cluster.py's helpers (free ports; three groups, each on every node, leaders spread),
100,000 entities, wrk push 100 (benches/wrk/feast.lua) through n1 at each of CONNS connections. For each run: requests/s, p50/p99, the
machine's idle share (/proc/stat), each node's CPU per push (utime + stime), and each group's Raft entries per
second and writes per entry (GET /cluster). Then a least-squares fit of the nodes' CPU to
`a * pushes + b * entries`: a is what a push costs wherever it goes, b what one Raft entry costs (log appends,
replication calls, commit notices, applies) summed over the nodes.

    benches/scripts/cluster_push_cost.py                    # CONNS="32 64 128", 10 s each
    BIN=/path/to/featgrid CONNS="32" DUR=12 benches/scripts/cluster_push_cost.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cluster as cb  # noqa: E402  (benches/cluster.py: BIN, FSYNC, OUT, the cluster's helpers)

DUR = int(os.environ.get("DUR", "10"))
CONNS = os.environ.get("CONNS", "32 64 128").split()
TICK = os.sysconf("SC_CLK_TCK")
GROUPS = [("0-5460", [1, 2, 3]), ("5461-10922", [2, 3, 1]), ("10923-16383", [3, 1, 2])]


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return v[3] + v[4], sum(v)


def entries(node):
    return {g["group"]: (g["writes_proposed"], g["entries_proposed"]) for g in cb.status(node)["groups"]}


def run(conns):
    tmp = tempfile.mkdtemp(prefix="push-cost-")
    try:
        topology = os.path.join(tmp, "cluster.toml")
        cb.write_topology(topology, GROUPS)
        nodes = cb.start_cluster(tmp, topology)
        n1 = nodes[0]
        subprocess.run([cb.BIN, "bench", "--target", n1.url, "--entities", "100000", "--preload-batch", "5000",
                        "--max-requests", "1", "--warmup", "0s"], stdout=subprocess.DEVNULL, check=True)
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{conns}", f"-d{DUR}s", "--latency", "-s",
             os.path.join(cb.ROOT, "benches/wrk/feast.lua"), n1.url + "/push"],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, MODE="push100", ENTITIES="100000"))
        time.sleep(2)  # past wrk's start
        pids = [n.proc.pid for n in nodes]
        e0, c0, m0, t0 = entries(n1), [cpu(p) for p in pids], machine(), time.time()
        time.sleep(DUR - 4)
        e1, c1, m1, t1 = entries(n1), [cpu(p) for p in pids], machine(), time.time()
        out = wrk.communicate()[0]
    finally:
        for p in cb.processes:
            if p.poll() is None:
                p.terminate()
                p.wait()
        cb.processes.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    dt = t1 - t0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50, p99 = (re.search(rf"\s{q}%\s+(\S+)", out).group(1) for q in (50, 99))
    cores = [(b - a) / dt for a, b in zip(c0, c1)]
    per_second = sum(e1[g][1] - e0[g][1] for g in e1) / dt
    print(f"-c{conns}: {rps:,.0f} pushes/s, p50 {p50}, p99 {p99}, "
          f"{'non-2xx answers, ' if 'Non-2xx' in out else ''}machine idle "
          f"{100 * (m1[0] - m0[0]) / (m1[1] - m0[1]):.1f}%")
    print(f"  CPU per push by node (us): {[round(1e6 * c / rps) for c in cores]}, cores {[round(c, 2) for c in cores]}")
    for g in sorted(e1):
        n = e1[g][1] - e0[g][1]
        print(f"  group {g}: {n / dt:,.0f} entries/s, {(e1[g][0] - e0[g][0]) / max(1, n):.1f} writes per entry")
    return rps, per_second, sum(cores)


def fit(points):
    """Least squares of cores = a * pushes/s + b * entries/s."""
    s11 = sum(p * p for p, e, _ in points)
    s12 = sum(p * e for p, e, _ in points)
    s22 = sum(e * e for _, e, _ in points)
    t1 = sum(p * c for p, _, c in points)
    t2 = sum(e * c for _, e, c in points)
    d = s11 * s22 - s12 * s12
    return (t1 * s22 - t2 * s12) / d, (s11 * t2 - s12 * t1) / d


os.makedirs(cb.OUT, exist_ok=True)  # the nodes' logs
points = [run(c) for c in CONNS]
if len(points) >= 2:
    a, b = fit(points)
    print(f"fit over the nodes: {a * 1e6:.0f} us per push + {b * 1e6:.0f} us per Raft entry")
