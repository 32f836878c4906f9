"""featgrid as a Feast online store.

With ``online_store: {type: featgrid_feast.FeatgridOnlineStore, path: http://...}`` Feast keeps
its client-side roles: ``feast materialize`` reads any offline store Feast supports and hands
the rows to ``online_write_batch``, which posts them to featgrid's ``/write-to-online-store``
in large batches (``write_batch_rows`` rows per request, columnar JSON); reads go through
``online_read`` (``/get-online-features``, one request per view and up to ``read_batch_rows``
entities); on-demand feature views are computed by Feast in the client from what
``online_read`` returns.

featgrid must serve the same registry (``featgrid serve --feast-repo <repo>``). ``update``
checks that it does (a warning, never a failure: ``feast apply`` stays usable while featgrid
is down); ``teardown`` leaves featgrid's data alone.
"""

import base64
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import requests
from pydantic import StrictStr

from feast import Entity, FeatureView, RepoConfig
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

logger = logging.getLogger(__name__)

# Statuses under which featgrid's answer carries the stored value.
_FOUND = {"PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE"}


class FeatgridOnlineStoreConfig(FeastConfigBaseModel):
    """The ``online_store`` section of ``feature_store.yaml``."""

    type: Literal["featgrid_feast.FeatgridOnlineStore"] = "featgrid_feast.FeatgridOnlineStore"
    path: StrictStr = "http://localhost:6566"
    """featgrid's URL."""
    token: Optional[StrictStr] = None
    """A bearer token, when featgrid asks for one (auth_tokens or JWTs)."""
    cert: StrictStr = ""
    """A CA certificate for featgrid's TLS certificate, when it is self-signed."""
    write_batch_rows: int = 50_000
    """Rows per POST /write-to-online-store (featgrid's max_rows_per_push is 100,000)."""
    read_batch_rows: int = 10_000
    """Entities per POST /get-online-features (featgrid's max_entities_per_request)."""
    timeout_seconds: float = 120.0


class FeatgridOnlineStore(OnlineStore):
    """Reads and writes a featgrid server over its Feast-compatible HTTP routes."""

    _session: Optional[requests.Session] = None

    def _post(self, config: RepoConfig, route: str, body: Dict[str, Any]) -> Any:
        store: FeatgridOnlineStoreConfig = config.online_store
        if self._session is None:
            self._session = requests.Session()
            if store.token:
                self._session.headers["Authorization"] = f"Bearer {store.token}"
        response = self._session.post(
            f"{store.path.rstrip('/')}{route}",
            json=body,
            timeout=store.timeout_seconds,
            verify=store.cert or True,
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"featgrid {route} failed ({response.status_code}): {response.text}"
            )
        return response.json() if response.content else None

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: List[Tuple[EntityKeyProto, Dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        size = max(1, config.online_store.write_batch_rows)
        event_column, created_column = _timestamp_columns(table)
        features = [f.name for f in table.features]
        for start in range(0, len(data), size):
            rows = data[start : start + size]
            df: Dict[str, List[Any]] = {k: [] for k in rows[0][0].join_keys}
            df.update({name: [] for name in features + [event_column, created_column]})
            for key, values, event_ts, created_ts in rows:
                for join_key, value in zip(key.join_keys, key.entity_values):
                    df[join_key].append(_to_json(value))
                for name in features:
                    value = values.get(name)
                    df[name].append(None if value is None else _to_json(value))
                df[event_column].append(_to_utc_text(event_ts))
                df[created_column].append(_to_utc_text(created_ts) if created_ts else None)
            self._post(
                config,
                "/write-to-online-store",
                {"feature_view_name": table.name, "df": df, "allow_registry_cache": False},
            )
            if progress:
                progress(len(rows))

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: List[EntityKeyProto],
        requested_features: Optional[List[str]] = None,
    ) -> List[Tuple[Optional[datetime], Optional[Dict[str, ValueProto]]]]:
        features = requested_features or [f.name for f in table.features]
        types = {f.name: f.dtype.to_value_type() for f in table.features}
        size = max(1, config.online_store.read_batch_rows)
        out: List[Tuple[Optional[datetime], Optional[Dict[str, ValueProto]]]] = []
        for start in range(0, len(entity_keys), size):
            keys = entity_keys[start : start + size]
            entities: Dict[str, List[Any]] = {}
            for key in keys:
                for join_key, value in zip(key.join_keys, key.entity_values):
                    entities.setdefault(join_key, []).append(_to_json(value))
            answer = self._post(
                config,
                "/get-online-features",
                {"features": [f"{table.name}:{f}" for f in features], "entities": entities},
            )
            names = answer["metadata"]["feature_names"]
            columns = {name: answer["results"][i] for i, name in enumerate(names)}
            for row in range(len(keys)):
                found = [f for f in features if columns[f]["statuses"][row] in _FOUND]
                if not found:
                    out.append((None, None))
                    continue
                event_ts = _parse_time(columns[found[0]]["event_timestamps"][row])
                values = {}
                for f in features:
                    column = columns[f]
                    if column["statuses"][row] in _FOUND:
                        values[f] = _from_json(column["values"][row], types.get(f))
                    else:
                        values[f] = ValueProto()
                out.append((event_ts, values))
        return out

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ):
        """featgrid reads the registry itself: only checks that it serves the kept views."""
        store: FeatgridOnlineStoreConfig = config.online_store
        headers = {"Authorization": f"Bearer {store.token}"} if store.token else {}
        try:
            response = requests.get(
                f"{store.path.rstrip('/')}/registry", headers=headers, timeout=10,
                verify=store.cert or True,
            )
            response.raise_for_status()
            served = {v["name"] for v in response.json().get("feature_views", [])}
        except Exception as e:  # featgrid down, or a token without the admin scope
            logger.warning("featgrid at %s could not be checked: %s", store.path, e)
            return
        missing = sorted(v.name for v in tables_to_keep if v.online and v.name not in served)
        if missing:
            logger.warning(
                "featgrid at %s does not serve %s yet: it reloads the registry every "
                "registry.cache_ttl_seconds (or on SIGHUP) when started with --feast-repo",
                store.path, missing,
            )

    def teardown(
        self,
        config: RepoConfig,
        tables: Sequence[FeatureView],
        entities: Sequence[Entity],
    ):
        """featgrid's data stays: views removed from the registry are no longer served."""


def _timestamp_columns(table: FeatureView) -> Tuple[str, str]:
    """The view's event and created timestamp columns, as featgrid names them."""
    source = table.batch_source
    event = getattr(source, "timestamp_field", "") or "event_timestamp"
    created = getattr(source, "created_timestamp_column", "") or "created"
    return event, created


def _to_utc_text(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.isoformat()


def _to_json(value: ValueProto) -> Any:
    """A Feast value as featgrid's JSON reads it (bytes as base64, timestamps in seconds)."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind == "bytes_val":
        return base64.b64encode(value.bytes_val).decode()
    if kind == "bytes_list_val":
        return [base64.b64encode(b).decode() for b in value.bytes_list_val.val]
    if kind.endswith("_list_val"):
        return list(getattr(value, kind).val)
    return getattr(value, kind)


def _parse_time(text: Any) -> Optional[datetime]:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return datetime.fromtimestamp(text, tz=timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _from_json(value: Any, value_type: Optional[ValueType]) -> ValueProto:
    """featgrid's JSON value as a Feast value of the view's declared type."""
    if value is None:
        return ValueProto()
    if value_type == ValueType.BYTES:
        value = base64.b64decode(value)
    elif value_type == ValueType.BYTES_LIST:
        value = [base64.b64decode(v) for v in value]
    elif value_type == ValueType.UNIX_TIMESTAMP:
        value = _parse_time(value)
    elif value_type == ValueType.UNIX_TIMESTAMP_LIST:
        value = [_parse_time(v) for v in value]
    if value_type is None:
        return python_values_to_proto_values([value])[0]
    return python_values_to_proto_values([value], value_type)[0]
