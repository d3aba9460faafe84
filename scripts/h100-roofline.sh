#!/usr/bin/env bash
# One GPU call: llm-bench --roofline for issue 5's llama-2-7b workloads (batch 1 and 1,000
# requests), after a quick pass of the fused-kernel and golden tests. Results under $OUT.
# Needs .gpu/bins.tar.xz from scripts/pack-gpu-bins.sh.
set -u
OUT="${OUT:-$PWD/roofline-out}"; mkdir -p "$OUT"
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
for t in engine_cuda_fused engine_golden models_golden; do
  LLM_ENGINE_TEST_DEVICE=cuda timeout 150 $G/bin/$t --test-threads=1 > "$OUT/test_$t.txt" 2>&1
  echo "$t: rc=$? $(grep 'test result' "$OUT/test_$t.txt" | tail -1)"
done
A="--device cuda --model ${MODEL:-llama-2-7b} --load-format dummy --dtype f16 --input-len 128 --output-len 128"
$G/bin/llm-bench $A --num-prompts 1 --max-num-seqs 1 --warmup 2 --roofline --output "$OUT/bs1_roofline.json" 2>&1 | grep -E "Throughput|TPOT|Roofline|prefill:|decode:"
timeout 300 $G/bin/llm-bench $A --num-prompts 1000 --max-num-seqs 256 --roofline --output "$OUT/n1000_roofline.json" 2>&1 | grep -E "Throughput|TPOT|Roofline|prefill:|decode:"
