#!/usr/bin/env bash
# The README's quick start: install what is missing, build, prepare the default
# corpus (the King James Bible, from Debian's bible-kjv), train the Kansformers
# gpt-nano model on the CPU for a few minutes, then print a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc)"
bash scripts/prepare_corpus.sh
STEPS=${STEPS:-2000}
build/kanrun train models/kansformers.kdl --data data/kjv.txt --out runs/quickstart \
  --steps "$STEPS" --lr 3e-3 --min-lr 3e-4 --warmup 100 --eval-every 500 --save-every 500
echo
echo "--- a sample from runs/quickstart ---"
build/kanrun sample runs/quickstart --prompt "And God said" --tokens 300 --temperature 0.8 --top-k 40
