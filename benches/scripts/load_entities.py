#!/usr/bin/env python3
"""Loads driver ids 0..N-1 (3 features each) into a featgrid with pushes of CHUNK rows.

Usage: load_entities.py URL N [CHUNK]   e.g. load_entities.py http://127.0.0.1:6566 1000000 10000
Used for the durability figures in BENCHMARKS.md (snapshot and restore rates)."""
import json
import sys
import time
import urllib.request

url, n = sys.argv[1], int(sys.argv[2])
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
start = time.time()
for first in range(0, n, chunk):
    ids = list(range(first, min(n, first + chunk)))
    body = json.dumps({
        "push_source_name": "driver_stats_push_source",
        "df": {
            "driver_id": ids,
            "event_timestamp": [1_700_000_000 + i % 1000 for i in ids],
            "conv_rate": [(i % 100) / 100 for i in ids],
            "acc_rate": [(i % 7) / 7 for i in ids],
            "avg_daily_trips": [i % 500 for i in ids],
        },
        "to": "online",
    }).encode()
    req = urllib.request.Request(url + "/push", data=body, method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200, r.status
print(f"loaded {n} entities in {time.time() - start:.1f} s", file=sys.stderr)
