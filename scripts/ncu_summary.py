#!/usr/bin/env python3
"""Sums the kernel durations of an `ncu --csv --metrics gpu__time_duration.sum` log by
kernel name: total GPU time of the window, launches, and the share of each kernel family.
Usage: ncu_summary.py ncu.csv"""
import csv
import io
import sys
from collections import defaultdict

text = open(sys.argv[1], errors="replace").read()
start = text.find('"ID"')
if start < 0:
    sys.exit(f"{sys.argv[1]}: no ncu CSV table in the log")
rows = list(csv.DictReader(io.StringIO(text[start:])))
by_name = defaultdict(lambda: [0, 0.0])
ids = set()
for r in rows:
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    ns = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "ns")
    ns *= {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}.get(unit, 1)
    name = r["Kernel Name"].split("(")[0].split("<")[0][:60]
    by_name[name][0] += 1
    by_name[name][1] += ns
    ids.add(r["ID"])
total = sum(v[1] for v in by_name.values())
print(f"{len(ids)} launches, {total / 1e6:.3f} ms of kernel time")
for name, (n, ns) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:15]:
    print(f"  {ns / 1e6:8.3f} ms {100 * ns / max(total, 1):5.1f}%  {n:5d}x  {ns / n / 1e3:8.1f} us  {name}")
