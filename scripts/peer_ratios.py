#!/usr/bin/env python3
"""Ours / torch ratios from one acceptance run's JSON files (tflops, peer_gemm, bandwidth, peer_copy)."""
import json, statistics, sys

out = sys.argv[1]
load = lambda f: json.load(open(f"{out}/{f}"))
import os
ours = [x for f in ("tflops.json", "tflops_fp8.json") if os.path.exists(f"{out}/{f}") for x in load(f)["results"]]
peer = load("peer_gemm.json")["rows"]
for d in ["fp32", "tf32", "fp16", "bf16", "fp8"]:
    r = [(x["shape"]["m"], x["tflops"], y["tflops"]) for x in ours for y in peer
         if x["dtype"] == d == y["dtype"] and x["shape"]["m"] == y["n"]]
    if r:
        ratios = [a / b for _, a, b in r]
        rows = ", ".join(f"n={n}: {a:.1f} vs {b:.1f}" for n, a, b in r)
        print(f"gemm {d:5} ours/torch median {statistics.median(ratios):.3f}  ({rows})")
copy = load("peer_copy.json")["rows"][0]["gbps_read_plus_write"]
for x in load("bandwidth.json")["results"]:
    if x["test"] in ("copy", "copy_kernel"):
        print(f"bandwidth {x['test']}: {x['gb_s']:.0f} GB/s vs torch copy {copy:.0f} GB/s = {x['gb_s'] / copy:.3f}")
