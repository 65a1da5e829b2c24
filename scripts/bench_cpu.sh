#!/usr/bin/env bash
# Side-by-side CPU benchmark: kanrun bench and the PyTorch reference
# (../shared/bench/torch_train.py) on the same work, one JSON line each.
#   bash scripts/bench_cpu.sh [THREADS] [STEPS]
# Needs a CPU PyTorch for the reference (Debian: python3-torch; run by
# /usr/bin/python3 unless PYTHON is set).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
STEPS=${2:-20}
PY=${PYTHON:-/usr/bin/python3}
PEER=../shared/bench/torch_train.py
run() { # name, kanc model, torch layout, preset, block
  local name=$1 model=$2 layout=$3 preset=$4 block=$5
  echo "# $name: $preset, vocab 256, block $block, batch 16, $T threads"
  build/kanrun bench "models/$model" --preset "$preset" --set vocab_size=256 --set block_size="$block" \
    --batch 16 --steps "$STEPS" --threads "$T"
  "$PY" "$PEER" --layout "$layout" --preset "$preset" --vocab 256 --block "$block" --batch 16 \
    --steps "$STEPS" --threads "$T"
}
run kansformers-nano kansformers.kdl kansformers gpt-nano 64
run kansformers-micro kansformers.kdl kansformers gpt-micro 128
run mlp-nano mingpt.kdl mlp gpt-nano 64
run mlp-micro mingpt.kdl mlp gpt-micro 128
