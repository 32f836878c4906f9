"""Copied into the repo for the second `feast apply`: a view the first apply did not have."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64

from definitions import merchant, transactions

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(days=1),
    schema=[Field(name="rating", dtype=Float64), Field(name="sales", dtype=Int64)],
    online=True,
    source=transactions,
)
