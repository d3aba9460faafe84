#!/usr/bin/env bash
# Where the time of a decode step goes, on the GPU test machine (no nsys there; ncu times
# each kernel). Runs llama-2-7b (dummy, f16) at batch 1 and batch 256 under
# `ncu --metrics gpu__time_duration.sum` over a window of launches in the decode phase and
# prints the kernel time per decode step grouped by kernel, next to the step time measured
# without the profiler (scripts/ncu_summary.py). Needs .gpu/bin from scripts/pack-gpu-bins.sh.
# env: PROFILE_RUNS="bs1 bs256" (or "prefill"), MODEL, SKIP_BS1, SKIP_BS256, COUNT, PROFILE_TIMEOUT,
# PROFILE_ARGS (more llm-bench flags, e.g. --kv-cache-dtype=fp8)
set -uo pipefail
OUT="${OUT:-$PWD/profile-out}"; mkdir -p "$OUT"
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
A=(--device cuda --model "${MODEL:-llama-2-7b}" --load-format dummy --dtype f16 --input-len 128)
# shellcheck disable=SC2206
A+=(${PROFILE_ARGS:-})
prof() { # name, launches to skip, launches to time, llm-bench args...
  local name=$1 skip=$2 count=$3; shift 3
  timeout "${PROFILE_TIMEOUT:-200}" "$NCU" --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip "$skip" --launch-count "$count" --csv --log-file "$OUT/ncu_$name.csv" \
    $G/bin/llm-bench "${A[@]}" "$@" --output "$OUT/ncu_run_$name.json" >/dev/null 2>&1
  echo "ncu $name rc=$?"
  python3 scripts/ncu_summary.py "$OUT/ncu_$name.csv"
}
runs=" ${PROFILE_RUNS:-bs1 bs256} "
[[ $runs == *" bs1 "* ]] && prof bs1 "${SKIP_BS1:-3000}" "${COUNT:-700}" --num-prompts 1 --max-num-seqs 1 --output-len 64
# One prefill step of 64 x 128 tokens (8,192, the default max_num_batched_tokens) after the
# engine's profiling forward of the same size: every launch of the window is prefill.
[[ $runs == *" prefill "* ]] && prof prefill 0 "${COUNT_PREFILL:-1200}" --num-prompts 64 --max-num-seqs 256 --output-len 1 --warmup 0
[[ $runs == *" bs256 "* ]] && prof bs256 "${SKIP_BS256:-4000}" "${COUNT:-700}" --num-prompts 256 --max-num-seqs 256 --output-len 16 --warmup 0
