#!/usr/bin/env bash
# The acceptance run on the H100 test machine, in ONE call, so every ratio compares our binary
# with the peer (shared/peers/torch_peers.py) measured on the same card in the same run.
#
# Here (no GPU):   scripts/pack-gpu-bins.sh        # builds with --features cuda into .gpu/bins.tar.xz
# There:           bash scripts/h100-acceptance.sh [sections...]   (sections: specs gemm bw engine bench; default all)
#   extra sections: peers (issue 5's workloads beside torch_peers.py generate), suite (bench-all)
#   env: PEER_MODELS="llama-2-7b opt-1.3b gpt2" (peers), PEER_TORCH=0 (skip the HF peer), SUITE_ARGS, BENCH_TIMEOUT
# Results land in $OUT (the device tool brings them back) or ./h100-out.
set -uo pipefail
FINAL="${OUT:-$PWD/h100-out}"; OUT="$FINAL/r"; mkdir -p "$OUT"
trap 'tar czf "$FINAL/results.tgz" -C "$OUT" . && rm -rf "$OUT"' EXIT
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
# Test binaries read fixtures through the path they were compiled at.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
sections="${*:-specs gemm bw engine bench}"
log() { echo; echo "=== $* ==="; }
has() { case " $sections " in *" $1 "*) return 0;; esac; return 1; }

if has specs; then
  log "gpu-specs"; $G/bin/gpu-specs; $G/bin/gpu-specs --json --output "$OUT/gpu_specs.json" >/dev/null
  log "sampler: idle, then a bf16 GEMM loop on the GPU, then idle"
  $G/bin/sample_gpu --seconds 16 --interval-ms 200 --busy-cpu 0 > "$OUT/sampler.txt" 2>&1 &
  sp=$!
  python3 -c "import torch,time; a=torch.randn(8192,8192,device='cuda',dtype=torch.bfloat16); torch.cuda.synchronize(); time.sleep(2); t=time.time()
while time.time()-t<6: [a@a for _ in range(50)]; torch.cuda.synchronize()"
  wait $sp; tail -45 "$OUT/sampler.txt"
fi
if has gemm; then
  log "GEMM: ours then torch, sizes 4096 8192 16384 (fp16/bf16 with reduced-precision reductions, as torch)"
  $G/bin/tflops --device cuda:0 --sizes 4096,8192,16384 --dtypes fp32,tf32,fp16,bf16 --reduced-precision \
    --time-budget 3 --json --output "$OUT/tflops.json" 2>"$OUT/tflops.err" | tail -30; tail -n3 "$OUT/tflops.err"
  $G/bin/tflops --device cuda:0 --sizes 4096,8192,16384 --dtypes fp8 \
    --time-budget 3 --json --output "$OUT/tflops_fp8.json" 2>"$OUT/tflops_fp8.err" | tail -12; tail -n3 "$OUT/tflops_fp8.err"
  python3 $G/torch_peers.py gemm --sizes 4096 8192 16384 --dtypes fp32 tf32 fp16 bf16 fp8 --json "$OUT/peer_gemm.json"
fi
if has bw; then
  log "bandwidth: ours then torch copy (2 GiB)"
  $G/bin/bandwidth --device cuda:0 --size-mib 2048 --json --output "$OUT/bandwidth.json" 2>"$OUT/bandwidth.err" | tail -15
  python3 $G/torch_peers.py copy --gib 2 --json "$OUT/peer_copy.json"
  tail -n3 "$OUT/bandwidth.err"
fi
if has gemm && has bw; then
  python3 scripts/peer_ratios.py "$OUT"
fi
if has engine; then
  log "engine tests on the GPU (golden fixtures, batching, API)"
  for t in $G/bin/engine_* $G/bin/models_golden; do LLM_ENGINE_TEST_DEVICE=cuda "$t" --test-threads 1 2>&1 | tail -6; done
fi
if has bench; then
  log "llm-bench on the GPU (dummy weights, fp16, 128 in / 128 out)"
  for m in gpt2 opt-1.3b llama-2-7b; do
    timeout "${BENCH_TIMEOUT:-120}" $G/bin/llm-bench --device cuda --model $m --load-format dummy --dtype f16 \
      --num-prompts "${BENCH_PROMPTS:-256}" --input-len 128 --output-len 128 --output "$OUT/llm_bench_$m.json" 2>&1 | tail -14
  done
fi
if has peers; then
  log "issue 5 workloads: batch-1 decode and 1,000 requests, ours then HF transformers (same call)"
  for m in ${PEER_MODELS:-llama-2-7b opt-1.3b gpt2}; do
    $G/bin/llm-bench --device cuda --model $m --load-format dummy --dtype f16 --num-prompts 1 --max-num-seqs 1 \
      --input-len 128 --output-len 128 --warmup 2 --output "$OUT/bs1_$m.json" 2>&1 | tail -6
    timeout "${BENCH_TIMEOUT:-240}" $G/bin/llm-bench --device cuda --model $m --load-format dummy --dtype f16 \
      --num-prompts 1000 --max-num-seqs 256 --input-len 128 --output-len 128 --output "$OUT/n1000_$m.json" 2>&1 | tail -8
  done
  [ "${PEER_TORCH:-1}" = 1 ] && python3 $G/torch_peers.py generate --model llama-2-7b --batch-sizes 1 --input-len 128 --output-len 128 \
    --static-compile --json "$OUT/peer_bs1.json" 2>&1 | grep -v Warning | tail -3
  [ "${PEER_TORCH:-1}" = 1 ] && python3 $G/torch_peers.py generate --model llama-2-7b --batch-sizes 256 --input-len 128 --output-len 128 \
    --json "$OUT/peer_bs256.json" 2>&1 | tail -3
fi
if has suite; then
  log "bench-all on the GPU"
  timeout "${SUITE_TIMEOUT:-540}" $G/bin/bench-all ${SUITE_ARGS:---device cuda --models gpt2,opt-1.3b,llama-2-7b} --out-dir "$OUT/results" --force 2>&1 | tail -40
fi
