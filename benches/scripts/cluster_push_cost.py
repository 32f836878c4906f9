#!/usr/bin/env python3
"""What a cluster push costs, and how much of it is per Raft entry: the 3-node loopback cluster of
config/cluster-3node.toml (ports 7001-7003 and 7101-7103 must be free), 100,000 entities, wrk push 100
(benches/wrk/feast.lua) through n1 at each of CONNS connections. For each run: requests/s, p50/p99, the
machine's idle share (/proc/stat), each node's CPU per push (utime + stime), and each group's Raft entries per
second and writes per entry (GET /cluster). Then a least-squares fit of the nodes' CPU to
`a * pushes + b * entries`: a is what a push costs wherever it goes, b what one Raft entry costs (log appends,
replication calls, commit notices, applies) summed over the nodes.

    benches/scripts/cluster_push_cost.py                    # CONNS="32 64 128", 10 s each
    BIN=/path/to/featgrid CONNS="32" DUR=12 benches/scripts/cluster_push_cost.py
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/featgrid"))
DUR = int(os.environ.get("DUR", "10"))
CONNS = os.environ.get("CONNS", "32 64 128").split()
FSYNC = os.environ.get("FSYNC", "everysec")
TICK = os.sysconf("SC_CLK_TCK")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return v[3] + v[4], sum(v)


def entries():
    groups = json.loads(get("http://127.0.0.1:7001/cluster"))["groups"]
    return {g["group"]: (g["writes_proposed"], g["entries_proposed"]) for g in groups}


def run(conns):
    tmp = tempfile.mkdtemp(prefix="push-cost-")
    shutil.copy(os.path.join(ROOT, "config/cluster-3node.toml"), tmp)
    shutil.copy(os.path.join(ROOT, "config/cluster.secret"), tmp)
    procs = []
    try:
        for i in (1, 2, 3):
            procs.append(subprocess.Popen(
                [BIN, "serve", "--cluster", os.path.join(tmp, "cluster-3node.toml"), "--node-id", f"n{i}",
                 "--bootstrap", "--data-dir", os.path.join(tmp, f"n{i}"), "--fsync", FSYNC],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"n{i}.log"), "w"),
                env=dict(os.environ, FEATGRID_LOG="warn,openraft=off")))
        for _ in range(300):
            try:
                if all(g["leader"] for g in json.loads(get("http://127.0.0.1:7001/cluster"))["groups"]):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        subprocess.run([BIN, "bench", "--target", "http://127.0.0.1:7001", "--entities", "100000",
                        "--preload-batch", "5000", "--max-requests", "1", "--warmup", "0s"],
                       stdout=subprocess.DEVNULL, check=True)
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{conns}", f"-d{DUR}s", "--latency", "-s", os.path.join(ROOT, "benches/wrk/feast.lua"),
             "http://127.0.0.1:7001/push"],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, MODE="push100", ENTITIES="100000"))
        time.sleep(2)  # past wrk's start
        e0, c0, m0, t0 = entries(), [cpu(p.pid) for p in procs], machine(), time.time()
        time.sleep(DUR - 4)
        e1, c1, m1, t1 = entries(), [cpu(p.pid) for p in procs], machine(), time.time()
        out = wrk.communicate()[0]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
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


points = [run(c) for c in CONNS]
if len(points) >= 2:
    a, b = fit(points)
    print(f"fit over the nodes: {a * 1e6:.0f} us per push + {b * 1e6:.0f} us per Raft entry")
