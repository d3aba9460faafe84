#!/usr/bin/env bash
# One GPU call after a host-side engine change: the engine's device tests, then llm-bench of
# this build (new) against a previous one (old: .gpu/llm-bench-old.xz) in the same call,
# alternating, on issue 5's 1,000-request workload (greedy) and a sampled one, plus the HF
# peer at batch 256 for the ratio. Every step has its own timeout, so a short device budget
# still brings back what ran. Results under $OUT.
set -u
OUT="${OUT:-$PWD/check-out}"; mkdir -p "$OUT"
G=$PWD/.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
[ -x "$G/old/llm-bench" ] || { mkdir -p "$G/old" && xz -dc "$G/llm-bench-old.xz" > "$G/old/llm-bench" && chmod +x "$G/old/llm-bench"; }
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv,noheader
for t in ${TESTS-engine_api engine_batching}; do
  # One test at a time: the CUDA tests crash when run on parallel threads (c4).
  LLM_ENGINE_TEST_DEVICE=cuda timeout 120 "$G/bin/$t" --nocapture --test-threads=1 > "$OUT/test_$t.txt" 2>&1
  echo "$t: rc=$? $(grep 'test result' "$OUT/test_$t.txt" | tail -1)"
done
tp() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); h=j.get('host_ms_per_step') or {}; print(f\"{sys.argv[2]}: {j['output_throughput']:.1f} output tok/s; host ms/step: \" + ', '.join(f'{k[:-3]} {v:.3f}' for k, v in h.items()))" "$@" 2>/dev/null || echo "$2: no result"; }
A="--device cuda --model llama-2-7b --load-format dummy --dtype f16 --input-len 128 --output-len 128 --max-num-seqs 256"
run() { # tag binary extra-args...
  local tag=$1 bin=$2; shift 2
  timeout 150 "$bin" $A "$@" --output "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1
  tp "$OUT/$tag.json" "$tag"
}
run greedy1000_new "$G/bin/llm-bench" --num-prompts 1000
run greedy1000_old "$G/old/llm-bench" --num-prompts 1000
timeout 150 python3 "$G/torch_peers.py" generate --model llama-2-7b --batch-sizes 256 --input-len 128 --output-len 128 --json "$OUT/peer_bs256.json" 2>&1 | grep 'tok/s'
run topp256_new "$G/bin/llm-bench" --num-prompts 256 --temperature 0.8 --top-p 0.9 --seed 1
run topp256_old "$G/old/llm-bench" --num-prompts 256 --temperature 0.8 --top-p 0.9 --seed 1
run greedy1000_new2 "$G/bin/llm-bench" --num-prompts 1000
run greedy1000_old2 "$G/old/llm-bench" --num-prompts 1000
run fp8_1000_new "$G/bin/llm-bench" --num-prompts 1000 --kv-cache-dtype fp8
run temp256_new "$G/bin/llm-bench" --num-prompts 256 --temperature 0.8 --seed 1
run temp256_old "$G/old/llm-bench" --num-prompts 256 --temperature 0.8 --seed 1
