#!/usr/bin/env bash
# The README's quick start: install what is missing, build, prepare the default
# corpus (the King James Bible, from Debian's bible-kjv), train the Kansformers
# gpt-nano model on the CPU for a few minutes, then print a sample.
# Safe to run again: a run already in runs/quickstart is continued (up to
# STEPS steps in all), never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc)"
bash scripts/prepare_corpus.sh
STEPS=${STEPS:-2000}
RUN=runs/quickstart
if [ -f "$RUN/model.safetensors" ]; then
  echo "quickstart: $RUN holds a run already: continuing it up to step $STEPS (remove $RUN to start over)"
  build/kanrun train --resume "$RUN" --steps "$STEPS"
else
  force=()
  if [ -s "$RUN/metrics.jsonl" ]; then # stopped before its first checkpoint: nothing to continue
    echo "quickstart: $RUN holds a run without a checkpoint: starting over (it is moved aside to $RUN.old-*)"
    force=(--force)
  fi
  build/kanrun train models/kansformers.kdl --data data/kjv.txt --out "$RUN" ${force[@]+"${force[@]}"} \
    --steps "$STEPS" --lr 3e-3 --min-lr 3e-4 --warmup 100 --eval-every 500 --save-every 500
fi
echo
echo "--- a sample from $RUN ---"
build/kanrun sample "$RUN" --prompt "And God said" --tokens 300 --temperature 0.8 --top-k 40
