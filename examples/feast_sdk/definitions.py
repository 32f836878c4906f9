"""Feast's quickstart driver definitions, as featgrid embeds them.

`feast apply` (run from this folder) or run.py registers these objects.  The batch
source is a tiny parquet file written next to this file, under data/, when missing:
Feast wants the file to exist, featgrid never reads it.
"""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float32, Int64

PARQUET_PATH = Path(__file__).resolve().parent / "data" / "driver_stats.parquet"


def write_sample_parquet(path: Path = PARQUET_PATH) -> None:
    """Write a one-row parquet file with the batch source's columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    pd.DataFrame(
        {
            "driver_id": pd.Series([1000], dtype="int64"),
            "conv_rate": pd.Series([0.1], dtype="float32"),
            "acc_rate": pd.Series([0.2], dtype="float32"),
            "avg_daily_trips": pd.Series([3], dtype="int64"),
            "event_timestamp": [now],
            "created": [now],
        }
    ).to_parquet(path)


if not PARQUET_PATH.exists():
    write_sample_parquet()

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path=str(PARQUET_PATH),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# Pushing to this source updates every feature view whose source it is.
driver_stats_push_source = PushSource(
    name="driver_stats_push_source",
    batch_source=driver_stats_source,
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    # The push source wraps the batch source, so the view has both: Feast's
    # push("driver_stats_push_source") only finds views whose source is the push source.
    source=driver_stats_push_source,
)

driver_activity = FeatureService(name="driver_activity", features=[driver_hourly_stats])

ALL = [driver, driver_stats_source, driver_stats_push_source, driver_hourly_stats, driver_activity]
