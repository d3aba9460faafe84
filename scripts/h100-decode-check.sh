#!/usr/bin/env bash
# One GPU call after a decode-kernel change: the kernel tests with both decode variants, the
# engine tests, issue 5's workloads for the three presets next to the HF peer, and the ncu
# profile (scripts/h100-profile.sh; PROFILE=0 skips it). A/B switches: AB (batch 1),
# AB1000 (1,000 requests, llama-2-7b), each entry an environment assignment (X=1) or an
# llm-bench flag (--kv-cache-dtype=fp8); VARIANTS: the kernel-test variants to run (all seven by default, VARIANTS= none).
# Results under $OUT.
set -u
OUT="${OUT:-$PWD/check-out}"; mkdir -p "$OUT"
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
# Decode variants: default, 4 or 16 warps forced, and the same with the 16-byte-load kernels
# off (LLM_ENGINE_DECODE_VEC=0: paged_decode_* everywhere), and the scalar prefill kernel
# (LLM_ENGINE_PREFILL_TC=0).
# mma0 keeps tensor-core prefill on paged_prefill_tc_* (LLM_ENGINE_PREFILL_MMA=0).
# dtc1 turns on the tensor-core decode over fp8 caches (LLM_ENGINE_DECODE_TC=1, 4 warps).
for w in ${VARIANTS-default 4 16 vec0_4 vec0_16 tc0 mma0 dtc1}; do
  for t in engine_cuda_attention engine_cuda_fused engine_golden engine_batching models_golden; do
    [ "$w" != default ] && [ "$t" != engine_cuda_attention ] && continue
    envs=()
    [[ $w == [0-9]* || $w == vec0_* ]] && envs+=("LLM_ENGINE_DECODE_WARPS=${w#vec0_}")
    [ "$w" = tc0 ] && envs+=(LLM_ENGINE_PREFILL_TC=0)
    [ "$w" = mma0 ] && envs+=(LLM_ENGINE_PREFILL_MMA=0)
    [ "$w" = dtc1 ] && envs+=(LLM_ENGINE_DECODE_TC=1 LLM_ENGINE_DECODE_WARPS=4)
    [[ $w == vec0_* ]] && envs+=(LLM_ENGINE_DECODE_VEC=0)
    env "${envs[@]}" LLM_ENGINE_TEST_DEVICE=cuda \
      timeout 150 $G/bin/$t --nocapture --test-threads=1 > "$OUT/test_${t}_$w.txt" 2>&1
    echo "$t (decode warps $w): rc=$? $(grep 'test result' "$OUT/test_${t}_$w.txt" | tail -1)"
  done
done
# An A/B entry as `env` assignments (pre) or llm-bench flags (post), and a file-name tag.
split_ab() { pre=(); post=(); if [[ $1 == --* ]]; then post=("$1"); else pre=("$1"); fi; tag=${1//[^A-Za-z0-9_.]/_}; }
tp() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); h=j.get('host_ms_per_step') or {}; print(f\"{sys.argv[2]}: {j['output_throughput']:.1f} output tok/s, TPOT {j['mean_tpot_ms']:.2f} ms, ITL p50 {j['median_itl_ms']:.2f} ms, TTFT {j['mean_ttft_ms']:.1f} ms; host ms/step: \" + ', '.join(f'{k[:-3]} {v:.3f}' for k, v in h.items()) + (f\", graph steps {j.get('decode_graph_steps')}\" if 'decode_graph_steps' in j else ''))" "$@"; }
for m in llama-2-7b opt-1.3b gpt2; do
  A="--device cuda --model $m --load-format dummy --dtype f16 --input-len 128 --output-len 128"
  for i in 1 2 3; do
    $G/bin/llm-bench $A --num-prompts 1 --max-num-seqs 1 --warmup 2 --output "$OUT/bs1_${m}_$i.json" >/dev/null 2>&1
    tp "$OUT/bs1_${m}_$i.json" "$m bs1 #$i"
  done
  if [ "$m" = llama-2-7b ]; then  # A/B: cuBLAS, and our GEMV with two warps per column
    for ab in ${AB:-LLM_ENGINE_GEMV=0 LLM_ENGINE_GEMV_DEPTH=4}; do
      split_ab "$ab"
      env "${pre[@]}" $G/bin/llm-bench $A --num-prompts 1 --max-num-seqs 1 --warmup 2 "${post[@]}" --output "$OUT/bs1_${m}_$tag.json" >/dev/null 2>&1
      tp "$OUT/bs1_${m}_$tag.json" "$m bs1 $ab"
    done
  fi
  timeout 120 $G/bin/llm-bench $A --num-prompts 1000 --max-num-seqs 256 --output "$OUT/n1000_$m.json" > "$OUT/n1000_$m.txt" 2>&1
  tp "$OUT/n1000_$m.json" "$m 1000 requests"
  if [ "$m" = llama-2-7b ]; then  # A/B at 1,000 requests: AB1000="ENV=.. ENV=.."
    for ab in ${AB1000:-}; do
      split_ab "$ab"
      env "${pre[@]}" timeout 120 $G/bin/llm-bench $A --num-prompts 1000 --max-num-seqs 256 "${post[@]}" --output "$OUT/n1000_${m}_$tag.json" > "$OUT/n1000_${m}_$tag.txt" 2>&1
      tp "$OUT/n1000_${m}_$tag.json" "$m 1000 requests $ab"
    done
    timeout 120 $G/bin/llm-bench $A --num-prompts 1000 --max-num-seqs 256 --output "$OUT/n1000_${m}_again.json" > /dev/null 2>&1
    tp "$OUT/n1000_${m}_again.json" "$m 1000 requests (again)"
  fi
done
python3 $G/torch_peers.py generate --model llama-2-7b --batch-sizes 1 --input-len 128 --output-len 128 --static-compile --json "$OUT/peer_bs1.json" 2>&1 | grep 'tok/s'
python3 $G/torch_peers.py generate --model llama-2-7b --batch-sizes 256 --input-len 128 --output-len 128 --json "$OUT/peer_bs256.json" 2>&1 | grep 'tok/s'
[ "${PROFILE:-1}" = 0 ] || bash scripts/h100-profile.sh
# The device tool brings back a limited number of files: PACK=1 leaves one archive.
if [ "${PACK:-0}" = 1 ]; then
  (cd "$OUT" && tar czf ../check-out.tgz . && find . -mindepth 1 -delete && mv ../check-out.tgz all.tgz)
fi
