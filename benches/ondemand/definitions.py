"""The on-demand benchmark's repo (benches/scripts/odfv_bench.sh): one view of three features,
and a python-mode on-demand view computing one arithmetic feature from them."""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64
from feast.value_type import ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(
    name="driver_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
push = PushSource(name="driver_stats_push", batch_source=source)
driver_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(seconds=0),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    source=push,
)


@on_demand_feature_view(
    sources=[driver_stats],
    schema=[Field(name="score", dtype=Float64)],
    mode="python",
)
def driver_score(inputs: dict) -> dict:
    return {
        "score": [
            c * a + t
            for c, a, t in zip(inputs["conv_rate"], inputs["acc_rate"], inputs["avg_daily_trips"])
        ]
    }
