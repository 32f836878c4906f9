"""Feast's `feast init` template against featgrid and against Feast's own SQLite store.

Runs the same writes on two copies of the template repo (one whose online store is featgrid,
one on Feast's default SQLite store) and the same reads, and checks that the answers are
equal: the template's push to `driver_stats_push_source` (Map, Json and Struct values), a
`write_to_online_store` to `driver_hourly_stats` (what `feast materialize` ends in) read with
the workflow's own feature list, on-demand features and request data included, and through
the feature services v1, v2 and v3 (on-demand views computed by featgrid's Python workers),
and two pushes of labels to the label view (the second one older: the online store keeps the
last write).

Usage: compare.py FEATGRID_REPO SQLITE_REPO; prints `template check: OK` on success.
"""

import json
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd

from feast import FeatureStore
from feast.data_source import PushMode

# One fixed time for both stores, relative to now (the views' ttl is one day).
NOW = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None) - timedelta(minutes=5)
DRIVERS = [{"driver_id": 1001}, {"driver_id": 1002}]
FRESH = [
    "driver_hourly_stats_fresh:conv_rate",
    "driver_hourly_stats_fresh:acc_rate",
    "driver_hourly_stats_fresh:avg_daily_trips",
    "driver_hourly_stats_fresh:driver_metadata",
    "driver_hourly_stats_fresh:driver_config",
    "driver_hourly_stats_fresh:driver_profile",
]
# test_workflow.py's first read, and its entity rows with request data.
WORKFLOW_READ = [
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:driver_metadata",
    "driver_hourly_stats:driver_config",
    "driver_hourly_stats:driver_profile",
    "transformed_conv_rate:conv_rate_plus_val1",
    "transformed_conv_rate:conv_rate_plus_val2",
]
WORKFLOW_ROWS = [
    {"driver_id": 1001, "val_to_add": 1000, "val_to_add_2": 2000},
    {"driver_id": 1002, "val_to_add": 1001, "val_to_add_2": 2002},
]
LABELS = [
    "driver_quality_labels:is_reliable",
    "driver_quality_labels:quality_score",
    "driver_quality_labels:reviewer_notes",
    "driver_quality_labels:labeler",
]


def run(repo):
    store = FeatureStore(repo_path=repo)
    answers = {}
    # The template's stream push, as test_workflow.py builds it.
    event_df = pd.DataFrame.from_dict(
        {
            "driver_id": [1001],
            "event_timestamp": [NOW],
            "created": [NOW],
            "conv_rate": [1.0],
            "acc_rate": [1.0],
            "avg_daily_trips": [1000],
            "driver_metadata": [{"vehicle_type": "truck", "rating": "5.0"}],
            "driver_config": [
                json.dumps({"max_distance_km": 500, "preferred_zones": ["north"]})
            ],
            "driver_profile": [{"name": "driver_1001_updated", "age": "30"}],
        }
    )
    store.push("driver_stats_push_source", event_df, to=PushMode.ONLINE)
    answers["push then read fresh"] = store.get_online_features(
        features=FRESH, entity_rows=DRIVERS
    ).to_dict()

    rows = pd.DataFrame.from_dict(
        {
            "driver_id": [1001, 1002],
            "event_timestamp": [NOW, NOW - timedelta(minutes=1)],
            "created": [NOW, NOW],
            "conv_rate": [0.5, 0.25],
            "acc_rate": [0.75, 0.125],
            "avg_daily_trips": [10, 20],
            "driver_metadata": [
                {"vehicle_type": "car", "rating": "4.5"},
                {"vehicle_type": "van", "rating": "3.0"},
            ],
            "driver_config": [
                json.dumps({"max_distance_km": 50, "preferred_zones": ["south", "east"]}),
                json.dumps({"max_distance_km": 75, "preferred_zones": []}),
            ],
            "driver_profile": [
                {"name": "driver_1001", "age": "41"},
                {"name": "driver_1002", "age": "29"},
            ],
        }
    )
    store.write_to_online_store("driver_hourly_stats", rows)
    answers["workflow read"] = store.get_online_features(
        features=WORKFLOW_READ, entity_rows=WORKFLOW_ROWS
    ).to_dict()
    for service in ["driver_activity_v1", "driver_activity_v2", "driver_activity_v3"]:
        answers[f"service {service}"] = store.get_online_features(
            features=store.get_feature_service(service), entity_rows=WORKFLOW_ROWS
        ).to_dict()

    for when, score, who in [(NOW, 0.9, "ann"), (NOW - timedelta(hours=1), 0.2, "bob")]:
        labels = pd.DataFrame.from_dict(
            {
                "driver_id": [1001],
                "event_timestamp": [when],
                "is_reliable": [1 if score > 0.5 else 0],
                "quality_score": [score],
                "reviewer_notes": [f"by {who}"],
                "labeler": [who],
            }
        )
        store.push("driver_quality_labels_push", labels, to=PushMode.ONLINE)
    answers["labels: last write"] = store.get_online_features(
        features=LABELS, entity_rows=DRIVERS
    ).to_dict()
    return answers


def json_as_text(answers):
    """Feast's feature server answers a Json feature as its text, and its remote client
    (`python_values_to_proto_values` without a type) keeps that string; Feast's local SQLite
    store gives it parsed. featgrid answers what Feast's server answers: the text, exactly as
    `json.dumps` wrote it; here it is parsed back to compare with the SQLite answers."""
    for answer in answers.values():
        if "driver_config" in answer:
            texts = answer["driver_config"]
            assert all(t is None or isinstance(t, str) for t in texts), texts
            answer["driver_config"] = [None if t is None else json.loads(t) for t in texts]
    return answers


def main():
    featgrid, sqlite = json_as_text(run(sys.argv[1])), run(sys.argv[2])
    failed = False
    for step in sqlite:
        if featgrid[step] != sqlite[step]:
            failed = True
            print(f"MISMATCH at {step}:\n featgrid {featgrid[step]}\n sqlite   {sqlite[step]}")
        else:
            print(f"{step}: {json.dumps(featgrid[step], sort_keys=True, default=str)}")
    labels = featgrid["labels: last write"]
    if labels["labeler"][0] != "bob":
        failed = True
        print(f"the label view did not keep the last write: {labels}")
    if failed:
        sys.exit(1)
    print("template check: OK")


if __name__ == "__main__":
    main()
