#!/usr/bin/env python3
"""The write-side price of follower read leases: a 1-group 3-node loopback cluster (n1 leads),
reads through n3 every 5 ms keep its lease, 1-row pushes through n1 one after another for 6 s; after
3 s n3 is killed (FAULT=kill, the default) or paused (FAULT=stop): the slowest push after the fault,
against the p99 before it. A commit waits for every live lease holder, so a lost holder stalls the
group's pushes until its lease ends (at most 200 ms), once.

    BIN=target/release/featgrid FAULT=stop benches/scripts/cluster_lease_stall.py
"""
import datetime, os, sys, time, json, signal, tempfile, threading, urllib.request
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cluster as cb
FAULT = os.environ.get("FAULT", "kill")
os.makedirs(cb.OUT, exist_ok=True)
tmp = tempfile.mkdtemp(prefix="stall-")
def post(url, body, timeout=5):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # the paused or killed node: no answer
        return None
try:
    topo = os.path.join(tmp, "c.toml"); cb.write_topology(topo, [("0-16383", [1, 2, 3])])
    nodes = cb.start_cluster(tmp, topo)
    n1, n2, n3 = nodes
    stop = threading.Event()
    def reader():
        body = {"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}}
        while not stop.is_set():
            post(n3.url + "/get-online-features", body, timeout=1)
            time.sleep(0.005)
    threading.Thread(target=reader, daemon=True).start()
    lat = []
    fault_at = None
    t_end = time.monotonic() + 6
    i = 0
    while time.monotonic() < t_end:
        i += 1
        if fault_at is None and time.monotonic() > t_end - 3:
            fault_at = time.monotonic()
            if FAULT == "kill":
                n3.kill9()
            else:
                n3.proc.send_signal(signal.SIGSTOP)
        body = {"push_source_name": "driver_stats_push_source", "df": {"driver_id": [i % 1000], "event_timestamp": [datetime.datetime.now(datetime.timezone.utc).isoformat()], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [i]}}
        t0 = time.monotonic()
        st = post(n1.url + "/push", body)
        lat.append((t0, time.monotonic() - t0, st))
    stop.set()
    if FAULT != "kill":
        n3.proc.send_signal(signal.SIGCONT)
    before = sorted(l for t, l, s in lat if t < fault_at - 0.1)
    after = [(t, l, s) for t, l, s in lat if t >= fault_at]
    p99 = before[int(len(before) * 0.99)] * 1000
    worst = max(l for t, l, s in after) * 1000
    bad = sum(1 for t, l, s in after if s != 200)
    print(f"{FAULT}: {len(before)} pushes before, p99 {p99:.1f} ms; after the fault: worst {worst:.0f} ms, {bad} not 200, {len(after)} pushes in the 3 s after it")
finally:
    cb.stop_all(tmp)
