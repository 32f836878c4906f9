"""A Feast online store backed by a featgrid server (see online_store.py)."""

from featgrid_feast.online_store import FeatgridOnlineStore, FeatgridOnlineStoreConfig

__all__ = ["FeatgridOnlineStore", "FeatgridOnlineStoreConfig"]
