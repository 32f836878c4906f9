"""A Feast feature repo unlike featgrid's embedded quickstart, for tests/it/feast_repo.rs.

A string join key (user_id), a composite key (user_id, merchant_id), float64, int32, string,
bool, unix_timestamp and list features, two views fed by one push source, a feature service
selecting part of a view (one view under an alias), and an on-demand view (served with
--python; tests/it/feast_ondemand.rs covers those). The batch source is a parquet file written under data/ when missing: Feast wants it to
exist, featgrid never reads it.
"""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

PARQUET_PATH = Path(__file__).resolve().parent / "data" / "transactions.parquet"

if not PARQUET_PATH.exists():
    PARQUET_PATH.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    pd.DataFrame(
        {
            "user_id": ["u0"],
            "merchant_id": pd.Series([0], dtype="int64"),
            "score": [0.5],
            "visits": pd.Series([1], dtype="int32"),
            "tier": ["gold"],
            "active": [True],
            "last_seen": [now],
            "tags": [["a"]],
            "embedding": [[0.5, 0.25]],
            "spend": [1.5],
            "txn_count": pd.Series([1], dtype="int64"),
            "recent_amounts": [[1, 2]],
            "event_timestamp": [now],
            "created": [now],
        }
    ).to_parquet(PARQUET_PATH)

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

transactions = FileSource(
    name="transactions",
    path=str(PARQUET_PATH),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# One push source feeding two views.
transactions_push = PushSource(name="transactions_push", batch_source=transactions)

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[
        Field(name="score", dtype=Float64),
        Field(name="visits", dtype=Int32),
        Field(name="tier", dtype=String),
        Field(name="active", dtype=Bool),
        Field(name="last_seen", dtype=UnixTimestamp),
        Field(name="tags", dtype=Array(String)),
        Field(name="embedding", dtype=Array(Float32)),
    ],
    online=True,
    source=transactions_push,
)

user_merchant = FeatureView(
    name="user_merchant",
    entities=[user, merchant],
    ttl=timedelta(days=1),
    schema=[
        Field(name="spend", dtype=Float64),
        Field(name="txn_count", dtype=Int64),
        Field(name="recent_amounts", dtype=Array(Int64)),
    ],
    online=True,
    source=transactions_push,
)

# Part of user_stats, and user_merchant under an alias.
user_profile = FeatureService(
    name="user_profile",
    features=[user_stats[["score", "tier"]], user_merchant.with_name("um")[["spend"]]],
)

request = RequestSource(name="request", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(
    sources=[user_stats, request],
    schema=[Field(name="boosted_score", dtype=Float64)],
)
def boosted(inputs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"boosted_score": inputs["score"] + inputs["bonus"]})
