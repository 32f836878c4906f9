#!/usr/bin/env python3
"""One oha run's figures from its JSON (`oha --output-format json`): p50, p99 and p99.9 in ms,
requests/s, and the answers that were not 2xx plus the errors, on one line separated by spaces.

    benches/scripts/oha_summary.py oha.json
"""
import json
import sys

r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(r.get("errorDistribution", {}).values())
print(f'{p["p50"]*1e3:.2f} {p["p99"]*1e3:.2f} {p["p99.9"]*1e3:.2f} {r["summary"]["requestsPerSec"]:.0f} {bad}')
