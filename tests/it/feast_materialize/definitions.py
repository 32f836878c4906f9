"""A Feast feature repo whose view reads a local Parquet FileSource, for
tests/it/materialize.rs: `feast materialize` and `feast materialize-incremental` in the remote
topology POST to featgrid, which reads data/stats.parquet itself.

The file's feature column `conv` is renamed `conv_rate` by the source's field_mapping. The
file is written by write_parquet.py before `feast apply`.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

stats_source = FileSource(
    name="stats_file",
    path="data/stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    field_mapping={"conv": "conv_rate"},
)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="trips", dtype=Int64),
        Field(name="city", dtype=String),
    ],
    source=stats_source,
)
