#!/usr/bin/env python3
"""The cluster's figures (BENCHMARKS.md, "Cluster"), on this machine, loopback only:

1. `featgrid bench` with a --target per node against the 3-node example cluster
   (config/cluster-3node.toml: three groups, each on all three nodes, leaders spread): reads of 1
   and 100 entities and 100-row pushes, closed loop; throughput, p99, and the share of per-group
   parts served locally, under a follower's read lease, or forwarded (from the nodes'
   featgrid_cluster_group_parts_total). Each connection of that client sends its requests to the
   nodes in turn; a second run has one client per node instead (three `featgrid bench`, the
   connections split between them). The same runs against one single node (no --cluster, and
   three clients on the one node), for comparison.
2. Forwarded vs local read p99 at half load: a 3-node cluster with one group (leader n1);
   reads of 1 entity at half n1's closed-loop peak, open loop, through n1 (the leader: local)
   and through n2 (a follower: each read asks n1 for a read index), p99 of each and the ratio.
3. Election pause after kill -9: a client pushes 100-row pushes (every group) back to back
   through a surviving node; a group leader is killed; the pause is from the kill to the first
   acknowledged push. Repeated ROUNDS times (the victim restarted, and every replica caught up,
   in between).
4. Catch-up: one node is killed, pushes go on for CATCHUP_SECS, the node is restarted; the
   time until its applied index reaches the leaders' last index in every group, and the
   entries and rows per second that makes.
5. A big Raft snapshot: SNAPSHOT_ROWS rows (default 1.5M: 3 groups x 500k) loaded, a probe
   reads one entity through every node every 10 ms while every node snapshots every group
   (POST /admin/snapshot); the worst and p99 probe latency, the probes not answered 200, and
   whether any group elected a new leader (its term changed).

Every process is stopped at the end. Results go to $OUT (default target/cluster-bench):
JSON per run and summary.md.

    benches/cluster.py                 # about 6 minutes
    DURATION=20s ROUNDS=10 benches/cluster.py
    ONLY=snapshot benches/cluster.py   # section 5 alone
    ONLY=throughput benches/cluster.py # section 1 alone (about 2 minutes)
    BIN=/path/to/featgrid benches/cluster.py  # another build (default: target/release/featgrid)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/featgrid"))
DURATION = os.environ.get("DURATION", "10s")
WARMUP = os.environ.get("WARMUP", "2s")
ENTITIES = int(os.environ.get("ENTITIES", "100000"))
CONNECTIONS = os.environ.get("CONNECTIONS", "32")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CATCHUP_SECS = float(os.environ.get("CATCHUP_SECS", "10"))
SNAPSHOT_ROWS = int(os.environ.get("SNAPSHOT_ROWS", "1500000"))
FSYNC = os.environ.get("FSYNC", "everysec")
OUT = os.path.join(ROOT, os.environ.get("OUT", "target/cluster-bench"))
SECRET = "bench-cluster-secret-0123456789abcdef"

processes = []


class Node:
    """A featgrid server process; `url` once it printed its address."""

    def __init__(self, name, args, data_dir):
        self.name, self.args, self.data_dir = name, args, data_dir
        self.start()

    def start(self):
        log = open(os.path.join(OUT, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", self.data_dir, "--fsync", FSYNC] + self.args,
            stdout=subprocess.PIPE, stderr=log, env=dict(os.environ, FEATGRID_LOG="warn,openraft=off"),
        )
        processes.append(self.proc)
        for line in self.proc.stdout:
            m = re.search(rb"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1).decode()
                break
        else:
            sys.exit(f"{self.name} did not start; see {OUT}/{self.name}.log")
        # Keep draining stdout so the server never blocks on it.
        subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def stop_all(tmp):
    """Kills every node still running (resuming paused ones) and removes `tmp`."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def status(node):
    return json.loads(get(node.url + "/cluster"))


def wait_for_leaders(node, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = status(node)
            if all(g["leader"] for g in s["groups"]):
                return s
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"no leader for every group through {node.name}")


def caught_up(node, timeout=120):
    """Waits until every replica has applied every group's last log index."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = status(node)
        if all(g["leader"] and len(g["applied"]) == len(g["replicas"])
               and all(a == g["last_log_index"] for a in g["applied"].values()) for g in s["groups"]):
            return
        time.sleep(0.1)
    sys.exit("the replicas did not catch up")


def parts(nodes):
    """Sum over the nodes of featgrid_cluster_group_parts_total by (op, served)."""
    total = {}
    for n in nodes:
        for m in re.finditer(
            r'featgrid_cluster_group_parts_total\{op="(\w+)",served="(\w+)"\} (\d+)',
            get(n.url + "/metrics").decode(),
        ):
            key = (m.group(1), m.group(2))
            total[key] = total.get(key, 0) + int(m.group(3))
    return total


def bench(name, targets, workload, batch, *extra, duration=DURATION, warmup=WARMUP):
    out = os.path.join(OUT, name + ".json")
    args = [BIN, "bench", "--workload", workload, "--batch", str(batch), "--entities", str(ENTITIES),
            "--connections", CONNECTIONS, "--warmup", warmup, "--duration", duration, "--json", out,
            "--plot", os.path.join(OUT, name + ".svg")]
    for t in targets:
        args += ["--target", t.url]
    subprocess.run(args + list(extra), check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        report = json.load(f)
    op = report["operations"][0]
    return {"rps": op["requests_per_sec"], "rows_per_sec": op["rows_per_sec"],
            "p50_us": op["latency_us"]["p50"], "p99_us": op["latency_us"]["p99"],
            "errors": sum(op["errors"].values())}


def bench_per_client(name, targets, workload, batch, duration=DURATION, warmup=WARMUP):
    """`bench` as one client per target, run at once (CONNECTIONS split between them, one thread
    each): every connection keeps talking to one node, where `bench` with several targets sends
    each connection's requests to the targets in turn. Sums the throughput; the worst p99."""
    conns = str(max(1, int(CONNECTIONS) // len(targets)))
    procs = []
    for i, t in enumerate(targets):
        out = os.path.join(OUT, f"{name}-{i}.json")
        args = [BIN, "bench", "--workload", workload, "--batch", str(batch), "--entities", str(ENTITIES),
                "--connections", conns, "--threads", "1", "--warmup", warmup, "--duration", duration,
                "--json", out, "--target", t.url]
        procs.append((subprocess.Popen(args, stdout=subprocess.DEVNULL), out))
    ops = []
    for proc, out in procs:
        if proc.wait() != 0:
            sys.exit(f"featgrid bench failed ({out})")
        with open(out) as f:
            ops.append(json.load(f)["operations"][0])
    return {"rps": sum(o["requests_per_sec"] for o in ops), "rows_per_sec": sum(o["rows_per_sec"] for o in ops),
            "p99_us": max(o["latency_us"]["p99"] for o in ops),
            "errors": sum(sum(o["errors"].values()) for o in ops)}


def write_topology(path, groups):
    """Three nodes on loopback (free ports), `groups` a list of (slots, [node numbers])."""
    import socket

    def free():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    text = f'cluster_secret = "{SECRET}"\n'
    for i in range(1, 4):
        text += f'[[node]]\nid = "n{i}"\nclient = "127.0.0.1:{free()}"\ninternal = "127.0.0.1:{free()}"\n'
    for slots, members in groups:
        names = ", ".join(f'"n{m}"' for m in members)
        text += f'[[group]]\nslots = "{slots}"\nnodes = [{names}]\n'
    with open(path, "w") as f:
        f.write(text)


def start_cluster(tmp, topology):
    # --bootstrap: a brand-new cluster (harmless on the restarts after a kill: a node with Raft
    # state ignores it).
    nodes = [Node(f"n{i}", ["--cluster", topology, "--node-id", f"n{i}", "--bootstrap"], os.path.join(tmp, f"n{i}"))
             for i in range(1, 4)]
    wait_for_leaders(nodes[0])
    return nodes


def push_body(ids, value):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"push_source_name": "driver_stats_push_source", "df": {
        "driver_id": ids, "event_timestamp": [now] * len(ids), "conv_rate": [0.5] * len(ids),
        "acc_rate": [0.5] * len(ids), "avg_daily_trips": [value] * len(ids)}}).encode()


def push(node, body, timeout=5):
    """The status of a push through `node` (0: no answer), and the error body if any."""
    req = urllib.request.Request(node.url + "/push", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def snapshot_probe(tmp):
    """Section 5: probe reads while every node snapshots every group of SNAPSHOT_ROWS rows."""
    import threading

    nodes = start_cluster(os.path.join(tmp, "snap"), os.path.join(ROOT, "config/cluster-3node.toml"))
    global ENTITIES
    loaded, ENTITIES = ENTITIES, SNAPSHOT_ROWS
    try:
        bench("snapshot-load", nodes, "read", 1, duration="1s", warmup="0s")
    finally:
        ENTITIES = loaded
    caught_up(nodes[0])
    terms = {g["group"]: g["term"] for g in status(nodes[0])["groups"]}
    last = {g["group"]: g["last_log_index"] for g in status(nodes[0])["groups"]}
    latencies, failures, stop = [], [], threading.Event()
    body = json.dumps({"features": ["driver_hourly_stats:conv_rate"],
                       "entities": {"driver_id": [1001]}}).encode()

    def probe():
        i = 0
        while not stop.is_set():
            node = nodes[i % 3]
            i += 1
            req = urllib.request.Request(node.url + "/get-online-features", data=body, method="POST")
            started = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            except OSError as e:
                code = str(e)
            latencies.append(time.monotonic() - started)
            if code != 200:
                failures.append(code)
            time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(2)
    started = time.monotonic()
    for n in nodes:
        req = urllib.request.Request(n.url + "/admin/snapshot", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=120).read()

    def built(n):
        for g, index in last.items():
            d = os.path.join(n.data_dir, "raft", f"g{g}")
            names = os.listdir(d) if os.path.isdir(d) else []
            if not any(x.startswith("snapshot-") and x.endswith(".meta") and int(x[9:29]) >= index for x in names):
                return False
        return True

    while not all(built(n) for n in nodes):
        if time.monotonic() - started > 300:
            sys.exit("the raft snapshots were not built within 300 s")
        time.sleep(0.1)
    took = time.monotonic() - started
    time.sleep(2)
    stop.set()
    thread.join()
    after = {g["group"]: g["term"] for g in status(nodes[0])["groups"]}
    ordered = sorted(latencies)
    result = {"rows": SNAPSHOT_ROWS, "snapshots_seconds": round(took, 2), "probes": len(latencies),
              "not_200": len(failures), "worst_ms": round(ordered[-1] * 1000, 1),
              "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
              "elections": sum(1 for g in terms if after[g] != terms[g])}
    for n in nodes:
        n.stop()
    return result


def main():
    os.makedirs(OUT, exist_ok=True)
    if "BIN" not in os.environ:
        print("building (release)...", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "featgrid"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="featgrid-cluster-bench-")
    summary = {}
    if os.environ.get("ONLY") == "snapshot":
        try:
            summary["snapshot_probe"] = snapshot_probe(tmp)
        finally:
            stop_all(tmp)
        print(json.dumps(summary, indent=1))
        return
    try:
        # 1. Throughput and p99 through every node, and a single node beside it.
        single = Node("single", ["--bind", "127.0.0.1:0"], os.path.join(tmp, "single"))
        runs = [("read1", "read", 1), ("read100", "read", 100), ("push100", "push", 100)]
        for name, workload, batch in runs:
            summary[f"single-{name}"] = bench(f"single-{name}", [single], workload, batch)
            print(f"single {name}: {summary[f'single-{name}']}", file=sys.stderr)
            # The same three clients as the cluster's per-node run below, all on the one node.
            summary[f"single-{name}-3clients"] = bench_per_client(
                f"single-{name}-3clients", [single] * 3, workload, batch)
            print(f"single {name}, 3 clients: {summary[f'single-{name}-3clients']}", file=sys.stderr)
        single.stop()
        nodes = start_cluster(tmp, os.path.join(ROOT, "config/cluster-3node.toml"))
        for name, workload, batch in runs:
            before = parts(nodes)
            result = bench(f"cluster-{name}", nodes, workload, batch)
            after = parts(nodes)
            op = "write" if workload == "push" else "read"
            served = {k: after.get((op, k), 0) - before.get((op, k), 0) for k in ("local", "leased", "forwarded")}
            total = max(1, sum(served.values()))
            result["local_share"] = served["local"] / total
            result["leased_share"] = served["leased"] / total
            summary[f"cluster-{name}"] = result
            print(f"cluster {name}: {result}", file=sys.stderr)
            summary[f"cluster-{name}-3clients"] = bench_per_client(f"cluster-{name}-3clients", nodes, workload, batch)
            print(f"cluster {name}, a client per node: {summary[f'cluster-{name}-3clients']}", file=sys.stderr)
        proposed = status(nodes[0])["groups"]
        summary["writes_per_entry"] = [
            g["writes_proposed"] / max(1, g["entries_proposed"]) for g in proposed]
        if os.environ.get("ONLY") == "throughput":
            print(json.dumps(summary, indent=1))
            return

        # 3. Election pause after kill -9 of a group leader, pushes through a survivor.
        ids = list(range(1, 101))
        pauses = []
        for r in range(ROUNDS):
            s = wait_for_leaders(nodes[0] if nodes[0].proc.poll() is None else nodes[1])
            leader = s["groups"][r % len(s["groups"])]["leader"]
            victim = next(n for n in nodes if n.name == leader)
            survivor = next(n for n in nodes if n is not victim)
            assert push(survivor, push_body(ids, r))[0] == 200
            victim.kill9()
            killed = time.monotonic()
            while push(survivor, push_body(ids, r))[0] != 200:
                if time.monotonic() - killed > 30:
                    sys.exit("no push acknowledged 30 s after the kill")
            pauses.append(time.monotonic() - killed)
            print(f"election pause {r + 1}: {leader} killed, {pauses[-1] * 1000:.0f} ms", file=sys.stderr)
            victim.start()
            wait_for_leaders(victim)
            caught_up(survivor)
        summary["election_pause_ms"] = [round(p * 1000) for p in pauses]

        # 4. Catch-up of a restarted node.
        victim = nodes[2]
        before = status(nodes[0])
        behind = {g["group"]: g["applied"].get("n3") for g in before["groups"]}
        victim.kill9()
        # Pushes while n3 is away (after the groups it led have new leaders).
        wait_for_leaders(nodes[0])
        pushed = bench("catchup-push", nodes[:2], "push", 100, "--no-preload",
                       duration=f"{CATCHUP_SECS}s", warmup="0s")
        if pushed["errors"]:
            print(f"catch-up pushes failed: {push(nodes[0], push_body(ids, 0))}", file=sys.stderr)
        leaders = wait_for_leaders(nodes[0])
        target = {g["group"]: g["last_log_index"] for g in leaders["groups"]}
        restarted = time.monotonic()
        victim.start()
        while True:
            s = status(nodes[0])
            if all((g["applied"].get("n3") or 0) >= target[g["group"]] for g in s["groups"]):
                break
            if time.monotonic() - restarted > 120:
                sys.exit("n3 did not catch up within 120 s")
            time.sleep(0.05)
        took = time.monotonic() - restarted
        entries = sum(target[g] - (behind[g] or 0) for g in target)
        rows = pushed["rows_per_sec"] * CATCHUP_SECS
        summary["catchup"] = {"seconds_from_restart": round(took, 2), "entries": entries,
                              "entries_per_sec": round(entries / took), "rows_missed": round(rows),
                              "rows_per_sec": round(rows / took)}
        print(f"catch-up: {summary['catchup']}", file=sys.stderr)
        for n in nodes:
            n.stop()

        # 2. Forwarded vs local read p99 at half load, one group led by n1.
        topology = os.path.join(tmp, "one-group.toml")
        write_topology(topology, [("0-16383", [1, 2, 3])])
        one = start_cluster(os.path.join(tmp, "one"), topology)
        peak = bench("one-group-read1-peak", [one[0]], "read", 1)
        half = max(1, int(peak["rps"] / 2))
        local = bench("one-group-read1-local-half", [one[0]], "read", 1, "--no-preload", "--rate", str(half))
        forwarded = bench("one-group-read1-forwarded-half", [one[1]], "read", 1, "--no-preload", "--rate", str(half))
        summary["forwarded_vs_local"] = {"rate": half, "local_p99_us": local["p99_us"],
                                         "forwarded_p99_us": forwarded["p99_us"],
                                         "ratio": round(forwarded["p99_us"] / max(1, local["p99_us"]), 2),
                                         "local_errors": local["errors"], "forwarded_errors": forwarded["errors"]}
        print(f"forwarded vs local: {summary['forwarded_vs_local']}", file=sys.stderr)
        for n in one:
            n.stop()

        # 5. A big Raft snapshot under probe reads.
        summary["snapshot_probe"] = snapshot_probe(tmp)
        print(f"snapshot probe: {summary['snapshot_probe']}", file=sys.stderr)
    finally:
        stop_all(tmp)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
