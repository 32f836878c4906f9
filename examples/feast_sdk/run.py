"""Feast SDK compatibility check: the Feast 0.67 Python SDK, with a remote online store
pointed at featgrid, writes, pushes and reads back the quickstart driver features.

By hand, with featgrid serving this feature repo's own registry:

    python3 -m venv ~/.cache/featgrid/feast-venv
    ~/.cache/featgrid/feast-venv/bin/pip install feast==0.67.0
    cd examples/feast_sdk
    ~/.cache/featgrid/feast-venv/bin/feast apply          # writes data/registry.db
    featgrid serve --feast-repo . &                      # listens on 127.0.0.1:6566
    ~/.cache/featgrid/feast-venv/bin/python run.py --repo .

With --repo it uses that (applied) repo as it is; without, a temporary copy of this folder
with online_store.path set to --url, applied in-process (for a featgrid on its embedded
registry, which is the same quickstart). It prints what get_online_features returned as JSON
and ends with "feast sdk check: OK"; on any mismatch it says what differs and exits 1.
tests/it/feast_sdk.rs runs it in CI.
"""

import argparse
import importlib.util
import json
import math
import shutil
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from feast import FeatureStore
from feast.data_source import PushMode

REPO = Path(__file__).resolve().parent
FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
]
ENTITY_ROWS = [{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 9999}]
# driver_id -> (conv_rate, acc_rate, avg_daily_trips); None: never written.
EXPECTED = {1001: (0.5, 0.9, 12), 1002: (0.25, 0.75, 7), 9999: (None, None, None)}


def copy_repo(url: str, workdir: Path, cert: str = "") -> Path:
    """Copy the feature repo into workdir with online_store.path set to url (and
    online_store.cert, the server's certificate for an https url, when given)."""
    config = yaml.safe_load((REPO / "feature_store.yaml").read_text())
    config["online_store"]["path"] = url.rstrip("/")
    if cert:
        config["online_store"]["cert"] = cert
    (workdir / "feature_store.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(REPO / "definitions.py", workdir / "definitions.py")
    return workdir


def load_definitions(repo: Path):
    spec = importlib.util.spec_from_file_location("featgrid_demo_definitions", repo / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def driver_frame(driver_id: int, conv_rate: float, acc_rate: float, trips: int) -> pd.DataFrame:
    now = pd.Timestamp(datetime.now(timezone.utc))
    return pd.DataFrame(
        {
            "driver_id": [driver_id],
            "conv_rate": [conv_rate],
            "acc_rate": [acc_rate],
            "avg_daily_trips": [trips],
            "event_timestamp": [now],
            "created": [now],
        }
    )


def mismatches(label: str, got: dict) -> list:
    """Compare a to_dict() answer with EXPECTED; return one line per difference."""
    problems = []
    names = ["conv_rate", "acc_rate", "avg_daily_trips"]
    for column in ["driver_id", *names]:
        if len(got.get(column, [])) != len(ENTITY_ROWS):
            problems.append(f"{label}: column {column!r} is {got.get(column)!r}, want {len(ENTITY_ROWS)} values")
    if problems:
        return problems
    for row, entity in enumerate(ENTITY_ROWS):
        driver_id = entity["driver_id"]
        if got["driver_id"][row] != driver_id:
            problems.append(f"{label}: row {row} driver_id is {got['driver_id'][row]!r}, want {driver_id}")
        for name, want in zip(names, EXPECTED[driver_id]):
            value = got[name][row]
            if want is None:
                ok = value is None
            elif isinstance(want, float):
                ok = isinstance(value, float) and math.isclose(value, want, abs_tol=1e-6)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value == want
            if not ok:
                problems.append(f"{label}: driver {driver_id} {name} is {value!r}, want {want!r}")
    return problems


def step(name: str, call):
    """Run one SDK call; on an exception say which step failed and exit 1."""
    try:
        return call()
    except Exception as error:  # the SDK raises RuntimeError, requests and Feast errors
        traceback.print_exc()
        sys.exit(f"feast sdk check: FAILED at {name}: {type(error).__name__}: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:6566", help="featgrid base URL (without --repo)")
    parser.add_argument("--repo", type=Path, help="an applied feature repo to use as it is (its online_store.path is featgrid)")
    parser.add_argument("--cert", default="", help="the server's PEM certificate, for an https:// url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="featgrid-feast-repo-") as tmp:
        if args.repo:
            store = FeatureStore(repo_path=str(args.repo))
        else:
            repo = copy_repo(args.url, Path(tmp), args.cert)
            definitions = load_definitions(repo)
            store = FeatureStore(repo_path=str(repo))
            store.apply(definitions.ALL)  # what `feast apply` does, in-process

        step("write_to_online_store", lambda: store.write_to_online_store(
            "driver_hourly_stats", driver_frame(1001, 0.5, 0.9, 12)))
        step("push", lambda: store.push(
            "driver_stats_push_source", driver_frame(1002, 0.25, 0.75, 7), to=PushMode.ONLINE))
        service = store.get_feature_service("driver_activity")
        answers = {
            "features": step("get_online_features(features=[...])", lambda: store.get_online_features(
                features=FEATURES, entity_rows=ENTITY_ROWS).to_dict()),
            "feature_service": step("get_online_features(feature service)", lambda: store.get_online_features(
                features=service, entity_rows=ENTITY_ROWS).to_dict()),
        }

    print(json.dumps(answers, indent=2, sort_keys=True))
    problems = [line for label, got in answers.items() for line in mismatches(label, got)]
    if problems:
        print("feast sdk check: FAILED", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("feast sdk check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
