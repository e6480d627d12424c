#!/usr/bin/env bash
# SPADE-EXIT benchmark on the CPU (NOT part of make test; about a minute on one thread):
# for each model, fit L-SPADE maps, then run the real early-exit loop at a few thresholds
# and report, from `layerlab exit`'s runs CSV,
#   - the per-layer L-SPADE check against one layer's forward: measured time fraction
#     (check_time_frac) and multiply-add fraction (check_mac_frac); target < 2%;
#   - measured wall-clock speedup against the token-layer speedup of the same run.
# usage: tools/bench/spade_exit.sh [OUTDIR]   (LAYERLAB, SHARED, THREADS as in experiments/spade/run.sh)
# The GPU ridge comparison with torch.linalg.solve is tools/bench/ridge_gpu.py (GPU machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench-spade-exit}
LAYERLAB=${LAYERLAB:-build/layerlab}
SHARED=${SHARED:-../shared/assets}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
run() { # name model train-src eval-src target extra...
  local name=$1 model=$2 train=$3 eval=$4 target=$5; shift 5
  # shellcheck disable=SC2086
  "$LAYERLAB" lspade train "$model" $train --target "$target" --out "$OUT/$name.safetensors" --force --quiet \
    --threads "$THREADS" "$@" > /dev/null
  for tau in 0 0.3 0.6 0.9; do
    # shellcheck disable=SC2086
    "$LAYERLAB" exit "$model" --lspade "$OUT/$name.safetensors" $eval --tau $tau --out "$OUT/$name-$tau" --no-plot \
      --quiet --threads "$THREADS" "$@" > /dev/null
    tail -n +2 "$OUT/$name-$tau.runs.csv" | awk -F, -v n="$name" '{printf "%-14s tau %-4s acc %.3f  token-layer %.3fx  wall %.3fx  check/layer: time %.4f MACs %.4f\n", n, $1, $2, $3, $7, $9, $10}'
  done
}
echo "model          tau      accuracy  token-layer speedup  wall-clock speedup  L-SPADE check per layer (time, MACs)"
run toy-logits data/models/toy-llama "--toy-mcq 512 --data-seed 1" "--toy-mcq 400 --data-seed 2" logits
run toy-hidden data/models/toy-llama "--toy-mcq 512 --data-seed 1" "--toy-mcq 400 --data-seed 2" hidden
if [ -f "$SHARED/stories260K/stories260K.bin" ]; then
  run stories-hidden "$SHARED/stories260K/stories260K.bin" "--cloze 400 --data-seed 1" "--cloze 300 --data-seed 2" hidden \
    --tokenizer "$SHARED/stories260K/tok512.bin"
fi
