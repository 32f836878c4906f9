"""Reads back through the Feast SDK with the featgrid_feast online store: the view's rows (from
featgrid, through FeatgridOnlineStore.online_read) and the on-demand view `boosted`, which
Feast computes in the client. `plugin_check.py --repo DIR` prints `plugin check: OK`."""

import argparse

from feast import FeatureStore


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    args = parser.parse_args()
    store = FeatureStore(repo_path=args.repo)
    got = store.get_online_features(
        features=["driver_stats:conv_rate", "driver_stats:trips", "driver_stats:city", "boosted:boosted_trips"],
        entity_rows=[{"driver_id": 1, "bonus": 10.0}, {"driver_id": 99, "bonus": 1.0}],
    ).to_dict()
    assert got["driver_id"] == [1, 99], got
    assert got["trips"] == [2, None], got
    assert abs(got["conv_rate"][0] - 0.5) < 1e-6 and got["conv_rate"][1] is None, got
    assert got["city"] == ["Lyon", None], got
    assert got["boosted_trips"][0] == 12.0, got
    print("plugin check: OK")


if __name__ == "__main__":
    main()
