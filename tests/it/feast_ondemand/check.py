"""featgrid against Feast's own server on the same repo with on-demand views.

Starts `feast serve` on --feast-repo (Feast's SQLite online store), pushes the same rows to it
and to featgrid (--featgrid, serving --featgrid-repo with --python), then checks that:
- the raw JSON of /get-online-features is the same for reads of python-mode, pandas-mode
  (with request data) and singleton views, plain features beside them, full feature names
  and a feature service;
- the SDK's remote store (`get_online_features(...).to_dict()`) answers the same through
  featgrid as through Feast's server;
- a write-time view is computed from pushed features (unless transform_on_write is false or
  the push goes offline only) and from its written inputs, stored, and read back through the
  SDK; written with transform_on_write false its rows are stored as given;
- a transformation that raises answers a clear 500 naming the view, and the server goes on.

Prints "feast ondemand check: OK" when every check passes.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pandas as pd

from feast import FeatureStore


def post(url, path, body):
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_feast(repo):
    port = free_port()
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    log = open(os.path.join(repo, "serve.log"), "w")
    # Its own process group: `feast serve` runs its server in a child process, which must be
    # stopped with it (stop_feast).
    proc = subprocess.Popen(
        [feast, "serve", "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            stop_feast(proc)
            raise SystemExit("feast serve exited: " + open(os.path.join(repo, "serve.log")).read())
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except Exception:
            time.sleep(0.5)
    stop_feast(proc)
    raise SystemExit("feast serve did not answer /health in 120 s")


def stop_feast(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def same(what, a, b):
    if a != b:
        raise SystemExit(f"{what}: featgrid and Feast differ\n  featgrid: {a}\n  feast:    {b}")


PUSH = {
    "push_source_name": "driver_stats_push",
    "df": {
        "driver_id": [1001, 1002, 1003],
        "conv_rate": [0.5, 0.25, 0.125],
        "acc_rate": [0.9, 0.1, None],
        "avg_daily_trips": [10, 20, 30],
        "city": ["Paris", "Oslo", "Lima"],
        "event_timestamp": ["2026-11-25T10:00:00"] * 3,
        "created": ["2026-11-25T10:00:00"] * 3,
    },
    "to": "online",
}

READS = [
    # python mode, pandas mode with request data, plain features beside them, a missing entity
    {
        "features": [
            "driver_stats:conv_rate",
            "driver_python:conv_plus_acc",
            "driver_python:trips_label",
            "transformed_conv_rate:conv_rate_plus_val1",
            "transformed_conv_rate:conv_rate_plus_val2",
        ],
        "entities": {"driver_id": [1001, 1002, 1003, 9], "val_to_add": [1, 2, 3, 4], "val_to_add_2": [10, 20, 30, 40]},
    },
    # on-demand only: the source features are read but not answered
    {"features": ["driver_python:conv_plus_acc"], "entities": {"driver_id": [1002]}},
    # pandas mode with full feature names
    {
        "features": ["driver_stats:acc_rate", "transformed_conv_rate:conv_rate_plus_val2"],
        "entities": {"driver_id": [1001, 5], "val_to_add": [1, 1], "val_to_add_2": [2, 2]},
        "full_feature_names": True,
    },
    # singleton (one row: Feast's server transforms only the first row of a read)
    {"features": ["driver_singleton:trips_doubled"], "entities": {"driver_id": [1003]}},
    # a feature service with a plain, a pandas and a python view
    {"feature_service": "driver_service", "entities": {"driver_id": [1001, 1002], "val_to_add": [5, 6], "val_to_add_2": [7, 8]}},
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--featgrid", required=True)
    parser.add_argument("--featgrid-repo", required=True)
    parser.add_argument("--feast-repo", required=True)
    args = parser.parse_args()

    feast_proc, feast_url = start_feast(args.feast_repo)
    try:
        for url in (args.featgrid, feast_url):
            status, text = post(url, "/push", PUSH)
            assert status == 200, f"push to {url}: {status} {text}"

        # 1. The raw JSON.
        for i, body in enumerate(READS):
            fs, ft = post(args.featgrid, "/get-online-features", body)
            es, et = post(feast_url, "/get-online-features", body)
            assert fs == 200 and es == 200, f"read {i}: featgrid {fs} {ft}; feast {es} {et}"
            same(f"read {i} ({json.dumps(body)})", json.loads(ft), json.loads(et))

        # 2. Through the SDK's remote store, at featgrid and at Feast's server.
        remote_feast = tempfile.mkdtemp()
        shutil.copy(os.path.join(args.featgrid_repo, "definitions.py"), remote_feast)
        shutil.copytree(os.path.join(args.featgrid_repo, "data"), os.path.join(remote_feast, "data"))
        text = open(os.path.join(args.featgrid_repo, "feature_store.yaml")).read()
        text = text.replace(args.featgrid, feast_url)
        open(os.path.join(remote_feast, "feature_store.yaml"), "w").write(text)
        store_fg = FeatureStore(repo_path=args.featgrid_repo)
        store_feast = FeatureStore(repo_path=remote_feast)
        rows = [
            {"driver_id": 1001, "val_to_add": 1, "val_to_add_2": 2},
            {"driver_id": 1003, "val_to_add": 3, "val_to_add_2": 4},
            {"driver_id": 42, "val_to_add": 5, "val_to_add_2": 6},
        ]
        features = [
            "driver_stats:conv_rate",
            "driver_stats:city",
            "driver_python:conv_plus_acc",
            "transformed_conv_rate:conv_rate_plus_val1",
        ]
        same(
            "SDK get_online_features",
            store_fg.get_online_features(features=features, entity_rows=rows).to_dict(),
            store_feast.get_online_features(features=features, entity_rows=rows).to_dict(),
        )
        service = store_fg.get_feature_service("driver_service")
        same(
            "SDK get_online_features (feature service)",
            store_fg.get_online_features(features=service, entity_rows=rows).to_dict(),
            store_feast.get_online_features(features=store_feast.get_feature_service("driver_service"), entity_rows=rows).to_dict(),
        )

        # 3. Write time. The push above computed the write-time view from the pushed features
        # (featgrid's addition: Feast's push writes only the feature views); a push with
        # transform_on_write false, or to the offline store only, does not.
        got = store_fg.get_online_features(
            features=["stored_doubled:conv_rate_doubled"],
            entity_rows=[{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 1003}],
        ).to_dict()
        assert got["conv_rate_doubled"] == [1.0, 0.5, 0.25], f"computed on push: {got}"
        for extra in ({"transform_on_write": False}, {"to": "offline"}):
            body = {**PUSH, "df": {k: v[:1] for k, v in PUSH["df"].items()}, **extra}
            body["df"]["driver_id"] = [1004]
            status, text = post(args.featgrid, "/push", body)
            assert status == 200, f"push with {extra}: {status} {text}"
            got = store_fg.get_online_features(features=["stored_doubled:conv_rate_doubled"], entity_rows=[{"driver_id": 1004}]).to_dict()
            assert got["conv_rate_doubled"] == [None], f"push with {extra} computed the write-time view: {got}"
        # Written with its inputs: transformed by featgrid and the outputs stored. (The SDK's
        # remote store cannot write such a view, to Feast's server either: it sends each join
        # key twice per row.)
        status, text = post(
            args.featgrid,
            "/write-to-online-store",
            {"feature_view_name": "stored_doubled", "df": {"driver_id": [1001, 1002, 1003], "conv_rate": [0.5, 0.25, 4.0]}},
        )
        assert status == 200, f"write of a write-time view: {status} {text}"
        got = store_fg.get_online_features(
            features=["stored_doubled:conv_rate_doubled"],
            entity_rows=[{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 1003}, {"driver_id": 7}],
        ).to_dict()
        assert got["conv_rate_doubled"] == [1.0, 0.5, 8.0, None], got
        # transform_on_write false: stored as given.
        status, text = post(
            args.featgrid,
            "/write-to-online-store",
            {"feature_view_name": "stored_doubled", "df": {"driver_id": [7], "conv_rate_doubled": [99.5]}, "transform_on_write": False},
        )
        assert status == 200, f"write with transform_on_write false: {status} {text}"
        got = store_fg.get_online_features(features=["stored_doubled:conv_rate_doubled"], entity_rows=[{"driver_id": 7}]).to_dict()
        assert got["conv_rate_doubled"] == [99.5], got

        # 4. A transformation that raises: a clear error naming the view; the server goes on.
        status, text = post(args.featgrid, "/get-online-features", {"features": ["fragile:fragile"], "entities": {"driver_id": [1001, 666]}})
        assert status == 500 and "fragile" in text and "driver 666 is not allowed here" in text, (status, text)
        # The SDK retries a 500 (as it does against Feast's server), then raises.
        raised = False
        try:
            store_fg.get_online_features(features=["fragile:fragile"], entity_rows=[{"driver_id": 666}])
        except Exception:
            raised = True
        assert raised, "the SDK read of a raising transformation did not raise"
        got = store_fg.get_online_features(features=["fragile:fragile"], entity_rows=[{"driver_id": 1001}]).to_dict()
        assert got["fragile"] == [5.0], got
    finally:
        stop_feast(feast_proc)
    print("feast ondemand check: OK")


if __name__ == "__main__":
    main()
