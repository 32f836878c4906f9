"""Feast SDK auth check: a feature repo with `auth: {type: kubernetes}` sends the JWT in
LOCAL_K8S_TOKEN (the SDK's fallback when no service-account token file exists) to featgrid,
which verifies it against `auth_jwt_keys` and maps its `roles` claim to scopes.

    LOCAL_K8S_TOKEN=<jwt> python examples/feast_sdk/auth.py --url URL --read ok --write FeastPermissionError

Each of --read (get_online_features) and --write (write_to_online_store, then push) is
`ok` or the name of the exception the SDK must raise; a RuntimeError expectation may add the
text the message must hold (`RuntimeError:401`). Ends with "feast sdk auth: OK".
"""

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from feast import FeatureStore
from feast.data_source import PushMode

from run import ENTITY_ROWS, FEATURES, copy_repo, driver_frame, load_definitions


def outcome(call) -> str:
    try:
        call()
        return "ok"
    except Exception as error:  # noqa: BLE001 - the class and text are the point
        return f"{type(error).__name__}: {error}"


def matches(got: str, want: str) -> bool:
    if want == "ok":
        return got == "ok"
    name, _, text = want.partition(":")
    return got.startswith(f"{name}:") and text in got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:6566", help="featgrid base URL")
    parser.add_argument("--read", default="ok", help="expected outcome of reads")
    parser.add_argument("--write", default="ok", help="expected outcome of writes and pushes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="featgrid-feast-auth-") as tmp:
        repo = copy_repo(args.url, Path(tmp))
        config = yaml.safe_load((repo / "feature_store.yaml").read_text())
        config["auth"] = {"type": "kubernetes"}
        (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
        definitions = load_definitions(repo)
        store = FeatureStore(repo_path=str(repo))
        store.apply(definitions.ALL)
        got = {
            "write": outcome(lambda: store.write_to_online_store(
                "driver_hourly_stats", driver_frame(1001, 0.5, 0.9, 12))),
            "push": outcome(lambda: store.push(
                "driver_stats_push_source", driver_frame(1002, 0.25, 0.75, 7), to=PushMode.ONLINE)),
            "read": outcome(lambda: store.get_online_features(
                features=FEATURES, entity_rows=ENTITY_ROWS).to_dict()),
        }

    want = {"write": args.write, "push": args.write, "read": args.read}
    problems = [f"{op}: got {got[op]!r}, want {want[op]!r}" for op in got if not matches(got[op], want[op])]
    for op, result in got.items():
        print(f"{op}: {result}")
    if problems:
        print("feast sdk auth: FAILED", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("feast sdk auth: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
