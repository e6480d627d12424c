#!/usr/bin/env bash
# ICL patch-sweep benchmark: the (layer x position) activation-patching sweep of
# `layerlab icl sweep-bench` (every clean state patched alone into the dummy-demonstration
# prompt) in layerlab's four modes -- resume (default), batched + shared prefix, batched
# full prompts, naive loop -- and the same sweep in Python with PyTorch forward hooks
# (tools/bench/icl_sweep_torch.py), which also checks that the results agree.
#
#   bash tools/bench/icl_sweep.sh [MODEL] [TASK] [K] [N]
# defaults: data/models/toy-llama toy:color 8 4 (well under two minutes on one core).
# One thread everywhere (OMP_NUM_THREADS=1, --threads 1, torch.set_num_threads(1)).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MODEL=${1:-data/models/toy-llama}
TASK=${2:-toy:color}
K=${3:-8}
N=${4:-4}
[ -x build/layerlab ] || { echo "build/layerlab missing: run make first" >&2; exit 1; }
export OMP_NUM_THREADS=1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "== layerlab (C, $(nproc) cores shared; 1 thread)"
build/layerlab icl sweep-bench "$MODEL" --task "$TASK" --k "$K" --n "$N" --threads 1 --json "$OUT/sweep.json"
echo "== Python: PyTorch forward hooks, one forward per variant"
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
    /usr/bin/python3 tools/bench/icl_sweep_torch.py "$MODEL" "$OUT/sweep.json"
else
    echo "skipped: /usr/bin/python3 has no torch/numpy"
fi
