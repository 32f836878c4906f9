"""Writes rows given as JSON on stdin to a Parquet file the way pandas does (timestamps as
timestamp[ns, UTC]): `write_parquet.py OUT.parquet < rows.json`, rows as
[{"driver_id": 1, "event_timestamp": "2026-...Z", "created": "...", "conv": 0.5, ...}, ...].
With `--rows N` instead, writes N generated rows (N / 10 keys) for benchmarks."""

import json
import sys

import pandas as pd


def main():
    out = sys.argv[1]
    if len(sys.argv) > 3 and sys.argv[2] == "--rows":
        import numpy as np

        n = int(sys.argv[3])
        now = pd.Timestamp.now(tz="UTC").floor("s")
        df = pd.DataFrame(
            {
                "driver_id": np.arange(n, dtype="int64") % max(n // 10, 1),
                "event_timestamp": now - pd.to_timedelta(np.arange(n, dtype="int64") % 3600, unit="s"),
                "conv": np.random.default_rng(7).random(n, dtype="float32"),
                "trips": np.arange(n, dtype="int64"),
                "city": pd.Series(np.array(["Paris", "Lyon", "Nice"])[np.arange(n) % 3]),
            }
        )
        df["created"] = df["event_timestamp"]
    else:
        df = pd.DataFrame(json.load(sys.stdin))
        for column in ("event_timestamp", "created"):
            df[column] = pd.to_datetime(df[column], utc=True)
        df["conv"] = df["conv"].astype("float32")
        df["trips"] = df["trips"].astype("int64")
    df.to_parquet(out, index=False)


if __name__ == "__main__":
    main()
