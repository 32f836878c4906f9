"""A feature repo with on-demand feature views, served by featgrid (--python) and by
`feast serve` alike in tests/it/feast_ondemand.rs."""

from datetime import timedelta

import pandas as pd

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64, String
from feast.value_type import ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(
    name="driver_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
driver_stats_push = PushSource(name="driver_stats_push", batch_source=driver_stats_source)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(seconds=0),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="city", dtype=String),
    ],
    source=driver_stats_push,
    online=True,
)

request_values = RequestSource(
    name="request_values",
    schema=[Field(name="val_to_add", dtype=Int64), Field(name="val_to_add_2", dtype=Int64)],
)


# pandas mode, with a request source: Feast's quickstart transformation.
@on_demand_feature_view(
    sources=[driver_stats, request_values],
    schema=[
        Field(name="conv_rate_plus_val1", dtype=Float64),
        Field(name="conv_rate_plus_val2", dtype=Float64),
    ],
    mode="pandas",
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["conv_rate_plus_val1"] = inputs["conv_rate"] + inputs["val_to_add"]
    df["conv_rate_plus_val2"] = inputs["conv_rate"] + inputs["val_to_add_2"]
    return df


# python mode: one arithmetic feature (the benchmark's), and a string one.
@on_demand_feature_view(
    sources=[driver_stats],
    schema=[
        Field(name="conv_plus_acc", dtype=Float64),
        Field(name="trips_label", dtype=String),
    ],
    mode="python",
)
def driver_python(inputs: dict) -> dict:
    return {
        "conv_plus_acc": [
            None if c is None or a is None else c + a
            for c, a in zip(inputs["conv_rate"], inputs["acc_rate"])
        ],
        "trips_label": [
            None if t is None else f"{inputs['city'][i]}:{t}"
            for i, t in enumerate(inputs["avg_daily_trips"])
        ],
    }


# python mode, one row at a time.
@on_demand_feature_view(
    sources=[driver_stats],
    schema=[Field(name="trips_doubled", dtype=Int64)],
    mode="python",
    singleton=True,
)
def driver_singleton(inputs: dict) -> dict:
    trips = inputs["avg_daily_trips"]
    return {"trips_doubled": None if trips is None else trips * 2}


# A transformation that raises for driver 666 (and works for every other driver).
@on_demand_feature_view(
    sources=[driver_stats],
    schema=[Field(name="fragile", dtype=Float64)],
    mode="python",
)
def fragile(inputs: dict) -> dict:
    if 666 in (inputs.get("driver_id") or []):
        raise ValueError("driver 666 is not allowed here")
    return {"fragile": [None if c is None else c * 10 for c in inputs["conv_rate"]]}


# A transformation that hangs for driver 777 and kills its process for driver 888: the
# worker deadline and restart checks.
@on_demand_feature_view(
    sources=[driver_stats],
    schema=[Field(name="hazard", dtype=Float64)],
    mode="python",
)
def hazards(inputs: dict) -> dict:
    # Imports inside: Feast pickles the function by value, without its module's globals.
    import os
    import time

    ids = inputs.get("driver_id") or []
    if 777 in ids:
        time.sleep(60)
    if 888 in ids:
        os._exit(3)
    return {"hazard": [None if c is None else c + 1 for c in inputs["conv_rate"]]}


# Computed at write time and stored.
@on_demand_feature_view(
    entities=[driver],
    sources=[driver_stats],
    schema=[Field(name="conv_rate_doubled", dtype=Float64)],
    mode="python",
    write_to_online_store=True,
)
def stored_doubled(inputs: dict) -> dict:
    return {"conv_rate_doubled": [c * 2 for c in inputs["conv_rate"]]}


driver_service = FeatureService(
    name="driver_service",
    features=[driver_stats[["conv_rate"]], transformed_conv_rate, driver_python[["conv_plus_acc"]]],
)
