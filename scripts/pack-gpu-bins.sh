#!/usr/bin/env bash
# Builds every GPU binary with --features cuda (CUDA 13.0 toolchain from PyPI when none is
# installed) and packs them, xz-compressed (they share candle's kernels), into .gpu/bins.tar.xz
# with the peer script, for the H100 acceptance run (scripts/h100-acceptance.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch -q
# shellcheck source=/dev/null
source scripts/cuda-toolchain.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-cuda}"
cargo build --release --features cuda -p gpubench --bins
cargo build --release -p metrics --example sample_gpu
tests=$(cargo test --release --features cuda -p llm-engine --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import sys,json
for l in sys.stdin:
  m=json.loads(l)
  if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"] and m["target"]["name"].startswith(("engine_","models_golden")): print(m["executable"])')
mkdir -p .gpu/stage && rm -f .gpu/stage/*
R="$CARGO_TARGET_DIR/release"
bins=$(sed -n 's/^name = "\(.*\)"$/\1/p' bins/Cargo.toml | grep -v '^gpubench$')
for b in $bins; do cp "$R/$b" .gpu/stage/; done
cp "$R/examples/sample_gpu" .gpu/stage/
for t in $tests; do n=$(basename "$t"); cp "$t" ".gpu/stage/${n%-*}"; done
strip .gpu/stage/* 2>/dev/null || true
tar cf - -C .gpu/stage . | xz -T1 --lzma2=preset=1,dict=128MiB > .gpu/bins.tar.xz
cp ../shared/peers/torch_peers.py .gpu/ 2>/dev/null || true
ls -la .gpu/stage .gpu/bins.tar.xz
