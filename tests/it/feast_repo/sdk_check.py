"""The Feast 0.67 SDK against a featgrid serving this feature repo (`--feast-repo`):
tests/it/feast_sdk.rs runs it after `feast apply`.

    sdk_check.py --repo DIR --url URL --phase first    # after definitions.py was applied
    sdk_check.py --repo DIR --url URL --phase second   # after more_definitions.py was added

Each phase writes over HTTP and through the SDK, reads back through the SDK's remote online
store, checks values and Python types, and ends with "feast repo check: OK (<phase>)"; on
a mismatch it says what differs and exits 1.
"""

import argparse
import math
import sys
from datetime import datetime, timezone

import pandas as pd
import requests

from feast import FeatureStore
from feast.data_source import PushMode

LAST_SEEN = "2025-01-02T03:04:05Z"
LAST_SEEN_DT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# (user_id, merchant_id) -> feature -> value; u1 is pushed over HTTP, u2 through the SDK.
EXPECTED = {
    ("u1", 7): {"score": 0.75, "visits": 3, "tier": "gold", "active": True, "last_seen": LAST_SEEN,
                "tags": ["a", "b"], "embedding": [0.5, 0.25], "spend": 12.5, "txn_count": 4,
                "recent_amounts": [10, 20]},
    ("u2", 8): {"score": 0.5, "visits": 7, "tier": "silver", "active": False, "last_seen": LAST_SEEN,
                "tags": ["x"], "embedding": [1.5], "spend": 3.25, "txn_count": 1, "recent_amounts": [5]},
    ("nobody", 9): None,
}
USER_STATS = ["score", "visits", "tier", "active", "last_seen", "tags", "embedding"]
USER_MERCHANT = ["spend", "txn_count", "recent_amounts"]
# merchant_id -> (rating, sales); 7 through the SDK, 8 over HTTP.
MERCHANTS = {7: (4.5, 12), 8: (3.0, 2), 10: None}

problems = []


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def same(got, want) -> bool:
    """Equal, and of the Python type the value was written as (bool is not int)."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(want, bool):
        return isinstance(got, bool) and got == want
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-6)
    if isinstance(want, int):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    return type(got) is type(want) and got == want


def check(label: str, got: dict, rows: list, columns: dict) -> None:
    """columns: answer column -> (feature, key into the expected row)."""
    for column, feature in columns.items():
        values = got.get(column)
        if values is None or len(values) != len(rows):
            problems.append(f"{label}: column {column!r} is {values!r}")
            continue
        for row, want_row in zip(values, rows):
            want = None if want_row is None else want_row[feature]
            if not (row is None if want is None else same(row, want)):
                problems.append(f"{label}: {column} is {row!r} ({type(row).__name__}), want {want!r}")


def http(url: str, path: str, body: dict) -> None:
    answer = requests.post(f"{url}{path}", json=body, timeout=30)
    if answer.status_code != 200:
        problems.append(f"POST {path}: {answer.status_code} {answer.text}")


def first(store: FeatureStore, url: str) -> None:
    u1 = EXPECTED[("u1", 7)]
    df = {"user_id": ["u1"], "merchant_id": [7], "event_timestamp": [now_iso()]}
    df.update({name: [value] for name, value in u1.items()})
    http(url, "/push", {"push_source_name": "transactions_push", "df": df, "to": "online"})

    u2 = EXPECTED[("u2", 8)]
    now = pd.Timestamp(datetime.now(timezone.utc))
    frame = pd.DataFrame({
        "user_id": ["u2"],
        "merchant_id": pd.Series([8], dtype="int64"),
        "score": [u2["score"]],
        "visits": pd.Series([u2["visits"]], dtype="int32"),
        "tier": [u2["tier"]],
        "active": [u2["active"]],
        "last_seen": [LAST_SEEN_DT],
        "tags": [u2["tags"]],
        "embedding": [u2["embedding"]],
        "spend": [u2["spend"]],
        "txn_count": pd.Series([u2["txn_count"]], dtype="int64"),
        "recent_amounts": [u2["recent_amounts"]],
        "event_timestamp": [now],
        "created": [now],
    })
    store.push("transactions_push", frame, to=PushMode.ONLINE)

    keys = list(EXPECTED)
    rows = [EXPECTED[k] for k in keys]
    entity_rows = [{"user_id": u, "merchant_id": m} for u, m in keys]
    features = [f"user_stats:{f}" for f in USER_STATS] + [f"user_merchant:{f}" for f in USER_MERCHANT]
    got = store.get_online_features(features=features, entity_rows=entity_rows).to_dict()
    check("features", got, rows, {f: f for f in USER_STATS + USER_MERCHANT})
    if got.get("user_id") != [u for u, _ in keys]:
        problems.append(f"features: user_id is {got.get('user_id')!r}")

    # Part of user_stats, and user_merchant under the alias "um".
    service = store.get_feature_service("user_profile")
    got = store.get_online_features(features=service, entity_rows=entity_rows, full_feature_names=True).to_dict()
    check("service", got, rows, {"user_stats__score": "score", "user_stats__tier": "tier", "um__spend": "spend"})
    extra = set(got) - {"user_id", "merchant_id", "user_stats__score", "user_stats__tier", "um__spend"}
    if extra:
        problems.append(f"service: unexpected columns {sorted(extra)}")


def second(store: FeatureStore, url: str) -> None:
    rating, sales = MERCHANTS[7]
    now = pd.Timestamp(datetime.now(timezone.utc))
    store.write_to_online_store("merchant_stats", pd.DataFrame({
        "merchant_id": pd.Series([7], dtype="int64"),
        "rating": [rating],
        "sales": pd.Series([sales], dtype="int64"),
        "event_timestamp": [now],
        "created": [now],
    }))
    rating, sales = MERCHANTS[8]
    http(url, "/write-to-online-store", {"feature_view_name": "merchant_stats", "df": {
        "merchant_id": [8], "rating": [rating], "sales": [sales], "event_timestamp": [now_iso()]}})
    keys = list(MERCHANTS)
    rows = [None if MERCHANTS[k] is None else dict(zip(["rating", "sales"], MERCHANTS[k])) for k in keys]
    got = store.get_online_features(
        features=["merchant_stats:rating", "merchant_stats:sales"],
        entity_rows=[{"merchant_id": m} for m in keys],
    ).to_dict()
    check("merchant_stats", got, rows, {"rating": "rating", "sales": "sales"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--phase", choices=["first", "second"], required=True)
    args = parser.parse_args()
    store = FeatureStore(repo_path=args.repo)
    {"first": first, "second": second}[args.phase](store, args.url.rstrip("/"))
    if problems:
        print("feast repo check: FAILED", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"feast repo check: OK ({args.phase})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
