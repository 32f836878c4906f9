"""The Python worker's own cost for one on-demand read, in-process (no socket, no featgrid):
read the input batch, Feast's transform_dict, the requested outputs, the answer batch.

    cd $(mktemp -d) && cp <repo>/benches/ondemand/* . && mkdir data && feast apply
    python <repo>/benches/scripts/odfv_worker_profile.py <repo>/python/featgrid_ondemand_worker.py .
"""

import sys
import time

import pyarrow as pa

worker, repo = sys.argv[1], sys.argv[2]
code = open(worker).read().replace('if __name__ == "__main__":', "if False:")
exec(code)  # the worker's functions, without starting it

views = Views(f"{repo}/data/registry.db", "odfv_bench", repo)  # noqa: F821
views.load(None)
odfv = views.get("driver_score", views.version)
table = pa.table(
    {
        "driver_id": pa.array([5], pa.int64()),
        "conv_rate": pa.array([0.5], pa.float32()),
        "acc_rate": pa.array([0.25], pa.float32()),
        "avg_daily_trips": pa.array([3], pa.int64()),
    }
)
body = ipc_bytes(table)  # noqa: F821


def whole():
    t = pa.ipc.open_stream(body).read_all()
    return ipc_bytes(read_time(odfv, t, {"score"}, False, "driver_score"))  # noqa: F821


steps = [
    ("whole read", whole),
    ("read the input batch", lambda: pa.ipc.open_stream(body).read_all()),
    ("to_pydict", lambda: table.to_pydict()),
    ("Feast's transform_dict", lambda: odfv.transform_dict(table.to_pydict())),
    ("write a batch", lambda: ipc_bytes(table)),  # noqa: F821
]
for name, step in steps:
    step()
    n = 3000
    start = time.perf_counter()
    for _ in range(n):
        step()
    print(f"{name}: {(time.perf_counter() - start) / n * 1e6:.1f} us")
