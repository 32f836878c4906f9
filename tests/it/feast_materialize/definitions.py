"""A Feast feature repo whose view reads a local Parquet FileSource, for
tests/it/materialize.rs: `feast materialize` and `feast materialize-incremental` in the remote
topology POST to featgrid, which reads data/stats.parquet itself.

The file's feature column `conv` is renamed `conv_rate` by the source's field_mapping. The
file is written by write_parquet.py before `feast apply`. The on-demand view `boosted` is
computed by Feast in the client when the online store is the featgrid_feast plugin
(plugin_check.py); featgrid itself does not serve it.
"""

from datetime import timedelta

import pandas as pd

from feast import Entity, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64, String

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

bonus = RequestSource(name="bonus", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(
    sources=[driver_stats, bonus],
    schema=[Field(name="boosted_trips", dtype=Float64)],
)
def boosted(inputs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"boosted_trips": inputs["trips"] + inputs["bonus"]})
