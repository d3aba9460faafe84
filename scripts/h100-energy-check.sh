#!/usr/bin/env bash
# Energy per token on the GPU test machine: the 1,000-request workload with two builds
# alternating in one call (OLD=path to another llm-bench, e.g. the previous session's; AB_ENV="X=1"
# adds this build with those variables), and
# at longer prompts (INPUT_LENS, default 640; empty for none) to split decode energy into a part that
# grows with the K/V bytes read and a part that does not. Needs .gpu/bin from
# scripts/pack-gpu-bins.sh. Results (one archive) under $OUT.
set -u
OUT="${OUT:-$PWD/energy-out}"; mkdir -p "$OUT"
G=.gpu
[ -d "$G/bin" ] || { mkdir -p "$G/bin" && tar xJf "$G/bins.tar.xz" -C "$G/bin"; } || exit 1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader
A="--device cuda --model llama-2-7b --load-format dummy --dtype f16 --output-len 128 --num-prompts 1000 --max-num-seqs 256"
line() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); e=j['energy']; p=e['phases']; c=e.get('clocks_by_phase') or {}
f=lambda k: (c.get(k) or {}).get('median_sm_clock_mhz')
print(f\"{sys.argv[2]}: {j['output_throughput']:.1f} tok/s, {e['energy_j']:.0f} J, prefill {p['prefill_j']:.0f} J / {p['prefill_s']:.2f} s ({f('prefill')} MHz), decode {p['decode_j']:.0f} J / {p['decode_s']:.2f} s / {p['decode_tokens']} tokens = {1e3*p['decode_j']/max(p['decode_tokens'],1):.2f} mJ per token ({f('decode')} MHz)\")" "$@"; }
for round in 1 2; do
  for b in new ${OLD:+old} ${AB_ENV:+env}; do
    bin=$G/bin/llm-bench; envs=(); [ "$b" = old ] && bin=$OLD; [ "$b" = env ] && envs=($AB_ENV)
    env "${envs[@]}" timeout 150 "$bin" $A --input-len 128 --output "$OUT/ab_${b}_$round.json" > "$OUT/ab_${b}_$round.txt" 2>&1
    line "$OUT/ab_${b}_$round.json" "input 128, $b ${envs[*]}, round $round"
  done
done
for n in ${INPUT_LENS-640}; do
  timeout 200 $G/bin/llm-bench $A --input-len "$n" --output "$OUT/in$n.json" > "$OUT/in$n.txt" 2>&1
  line "$OUT/in$n.json" "input $n, new build"
done
(cd "$OUT" && tar czf ../energy-out.tgz . && find . -mindepth 1 -delete && mv ../energy-out.tgz all.tgz)
