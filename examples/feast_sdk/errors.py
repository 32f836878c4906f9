"""Feast SDK error check: with featgrid's `error_format = "feast"`, the Feast 0.67 SDK raises its
own exception classes for featgrid's errors, as it does against Feast's own server.

By hand (featgrid started with FEATGRID_ERROR_FORMAT=feast, listening on 127.0.0.1:6566):

    ~/.cache/featgrid/feast-venv/bin/python examples/feast_sdk/errors.py --url http://127.0.0.1:6566

The SDK's local registry gets a feature view, feature service and push source that featgrid does
not have, so the SDK sends the requests and featgrid refuses them. The SDK never posts to `/push`
(it resolves push sources itself), so the unknown push source goes through the SDK's own error
handling wrapper (`feast.rest_error_handler`), as its remote stores do. Ends with
"feast sdk errors: OK", or says what differed and exits 1.
"""

import argparse
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from feast import FeatureService, FeatureStore, FeatureView, Field
from feast.errors import (
    FeatureServiceNotFoundException,
    FeatureViewNotFoundException,
    FeastError,
    PushSourceNotFoundException,
)
from feast.rest_error_handler import rest_error_handling_decorator
from feast.types import Float32

from run import copy_repo, load_definitions


@rest_error_handling_decorator
def post(session, config, path: str, body: dict):
    return session.post(f"{config.online_store.path}{path}", json=body)


def expect(label: str, exception: type, call) -> list:
    """Run call; return [] when it raises exactly `exception`, else a line saying what happened."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the class is the point
        if type(error) is exception:
            print(f"{label}: {type(error).__name__}: {error}")
            return []
        return [f"{label}: raised {type(error).__module__}.{type(error).__name__}: {error}, want {exception.__name__}"]
    return [f"{label}: no exception, want {exception.__name__}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:6566", help="featgrid base URL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="featgrid-feast-errors-") as tmp:
        repo = copy_repo(args.url, Path(tmp))
        d = load_definitions(repo)
        # Known to the SDK's registry, unknown to featgrid.
        weekly = FeatureView(
            name="driver_weekly_stats",
            entities=[d.driver],
            ttl=timedelta(days=7),
            schema=[Field(name="weekly_rate", dtype=Float32)],
            online=True,
            source=d.driver_stats_push_source,
        )
        store = FeatureStore(repo_path=str(repo))
        store.apply([*d.ALL, weekly])
        now = pd.Timestamp(datetime.now(timezone.utc))
        frame = pd.DataFrame({"driver_id": [1], "weekly_rate": [0.5], "event_timestamp": [now], "created": [now]})
        rows = [{"driver_id": 1}]

        problems = []
        problems += expect("get_online_features(unknown view)", FeatureViewNotFoundException,
                           lambda: store.get_online_features(features=["driver_weekly_stats:weekly_rate"], entity_rows=rows))
        problems += expect("write_to_online_store(unknown view)", FeatureViewNotFoundException,
                           lambda: store.write_to_online_store("driver_weekly_stats", frame))
        unknown_service = FeatureService(name="driver_weekly_service", features=[weekly])
        problems += expect("get_online_features(unknown feature service)", FeatureServiceNotFoundException,
                           lambda: store.get_online_features(features=unknown_service, entity_rows=rows))
        problems += expect("POST /push (unknown push source)", PushSourceNotFoundException,
                           lambda: post(store.config, "/push", {"push_source_name": "driver_weekly_push", "df": {}}))
        # Errors Feast has no class for arrive as FeastError, code first.
        problems += expect("get_online_features(bad entity value)", FeastError,
                           lambda: store.get_online_features(features=["driver_hourly_stats:conv_rate"],
                                                             entity_rows=[{"driver_id": "not a number"}]))

    if problems:
        print("feast sdk errors: FAILED", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("feast sdk errors: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
