#!/usr/bin/env bash
# Batch-1 decode against the HF static-compile peer, interleaved: ROUNDS rounds of (ours,
# ours with --enforce-eager, peer), so a drift of the card (power capping, clocks) hits both
# sides of each ratio alike. Llama-2-7B f16 dummy, 128 in / 128 out. Results under $OUT.
set -u
OUT="${OUT:-$PWD/check-out}"; mkdir -p "$OUT"
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
A="--device cuda --model llama-2-7b --load-format dummy --dtype f16 --input-len 128 --output-len 128 --num-prompts 1 --max-num-seqs 1 --warmup 2"
for r in $(seq 1 "${ROUNDS:-3}"); do
  $G/bin/llm-bench $A --output "$OUT/ours_$r.json" >/dev/null 2>&1
  $G/bin/llm-bench $A --enforce-eager --output "$OUT/eager_$r.json" >/dev/null 2>&1
  python3 $G/torch_peers.py generate --model llama-2-7b --batch-sizes 1 --input-len 128 --output-len 128 --static-compile --json "$OUT/peer_$r.json" > "$OUT/peer_$r.txt" 2>&1
  python3 - "$OUT" "$r" <<'PY'
import json, sys
out, r = sys.argv[1], sys.argv[2]
ours = json.load(open(f"{out}/ours_{r}.json"))["output_throughput"]
eager = json.load(open(f"{out}/eager_{r}.json"))["output_throughput"]
peer = json.load(open(f"{out}/peer_{r}.json"))["rows"][0]
peer = peer["output_tokens_per_s"]
print(f"round {r}: ours {ours:.1f} tok/s (eager {eager:.1f}), peer {peer:.1f} -> {ours / peer:.2f}x (eager {eager / peer:.2f}x)")
PY
done
