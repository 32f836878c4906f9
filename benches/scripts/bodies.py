#!/usr/bin/env python3
"""Request bodies for oha (`-Z FILE`: one body per line), the shapes and id range of the shared ceiling's wrk
bodies (../shared/ceiling/wrk): 2,000 each of read1.bodies and read100.bodies (Feast reads of 1 and 100 random
driver ids over 0..999999, three features) and push100.bodies (100-row Feast pushes stamped now).

Usage: bodies.py DIR"""
import random
import sys
import time

out = sys.argv[1]
rnd = random.Random(17)
ids = lambda n: ",".join(str(rnd.randint(0, 999999)) for _ in range(n))
col = lambda make: ",".join(make() for _ in range(100))
features = '"features":["driver_hourly_stats:conv_rate","driver_hourly_stats:acc_rate","driver_hourly_stats:avg_daily_trips"]'
for name, n in (("read1", 1), ("read100", 100)):
    with open(f"{out}/{name}.bodies", "w") as f:
        for _ in range(2000):
            f.write('{%s,"entities":{"driver_id":[%s]}}\n' % (features, ids(n)))
ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
with open(f"{out}/push100.bodies", "w") as f:
    for _ in range(2000):
        stamps = col(lambda: f'"{ts}"')
        f.write('{"push_source_name":"driver_stats_push_source","to":"online","df":{"driver_id":[%s],'
                '"event_timestamp":[%s],"created":[%s],"conv_rate":[%s],"acc_rate":[%s],"avg_daily_trips":[%s]}}\n' % (
                    ids(100), stamps, stamps, col(lambda: f"{rnd.random():.4f}"), col(lambda: f"{rnd.random():.4f}"),
                    col(lambda: str(rnd.randint(0, 500)))))
