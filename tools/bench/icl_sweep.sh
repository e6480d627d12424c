#!/usr/bin/env bash
# ICL patch-sweep benchmark (issue 7): the (layer x position) activation-patching sweep of
# `layerlab icl sweep-bench` (every clean state patched alone into the dummy-demonstration
# prompt) in layerlab's four modes -- resume (default), batched + shared prefix, batched
# full prompts, naive loop -- against, in the same run, two Python baselines that run one
# forward per variant with a forward pre-hook replacing the patched residual row:
#   - Hugging Face transformers (AutoModelForCausalLM, eager attention, fp32; hooks on
#     model.model.layers[l], as nnsight does): tools/bench/icl_sweep_hf.py, run when a
#     Python with transformers is found (PY, else .venv-fixtures made by
#     `bash tools/fixtures-env.sh --setup-only`), else reported as skipped;
#   - a plain-PyTorch Llama (tools/icl_patch_ref.py): tools/bench/icl_sweep_torch.py, with
#     /usr/bin/python3 (torch + numpy).
# Both check that their argmax tokens and first logits agree with layerlab's; the script
# fails when a baseline disagrees. Last, a table of the times and the ratios of layerlab's
# default mode to the naive loop and to the two hook baselines.
#
#   bash tools/bench/icl_sweep.sh [MODEL] [TASK] [K] [N]      (or `make bench-icl`)
# defaults: data/models/toy-llama toy:color 8 4 (well under two minutes on one core).
# One thread everywhere (OMP_NUM_THREADS=1, --threads 1, torch.set_num_threads(1)).
# Environment: PY  a Python with transformers (default: .venv-fixtures/bin/python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MODEL=${1:-data/models/toy-llama}
TASK=${2:-toy:color}
K=${3:-8}
N=${4:-4}
LL="${LL:-${BUILD:-build}/layerlab}"
[ -x "$LL" ] || { echo "$LL missing: run make first" >&2; exit 1; }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fail=0

echo "== layerlab (C, 1 thread; $(nproc --all) cores, shared with whatever else runs)"
"$LL" icl sweep-bench "$MODEL" --task "$TASK" --k "$K" --n "$N" --threads 1 --json "$OUT/sweep.json"

echo "== Python: Hugging Face transformers, forward pre-hooks on model.model.layers[l], one forward per variant"
PY="${PY:-$ROOT/.venv-fixtures/bin/python}"
if [ -x "$PY" ] && "$PY" -c 'import torch, numpy, transformers' 2>/dev/null; then
    "$PY" tools/bench/icl_sweep_hf.py "$MODEL" "$OUT/sweep.json" "$OUT/hf.json" || fail=1
else
    echo "skipped: no Python with transformers ($PY; make one with: bash tools/fixtures-env.sh --setup-only, or set PY)"
fi

echo "== Python: plain-PyTorch Llama (tools/icl_patch_ref.py), forward pre-hooks, one forward per variant"
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
    /usr/bin/python3 tools/bench/icl_sweep_torch.py "$MODEL" "$OUT/sweep.json" "$OUT/torch.json" || fail=1
else
    echo "skipped: /usr/bin/python3 has no torch/numpy"
fi

echo "== summary ($MODEL, $TASK, k=$K, $N prompts; seconds of the sweep only, clean runs untimed)"
python3 - "$OUT" <<'PY'
import json, os, sys
d = sys.argv[1]
ll = json.load(open(os.path.join(d, "sweep.json")))
nv = sum(len(p["argmax"]) for p in ll["prompts"])
rows = [("layerlab resume (default)", ll["seconds"]["resume"], ""),
        ("layerlab batched + prefix cache", ll["seconds"]["batched_cache"], ""),
        ("layerlab batched, no cache", ll["seconds"]["batched"], ""),
        ("layerlab naive loop", ll["seconds"]["naive"], "")]
for name, f in (("HF transformers hooks", "hf.json"), ("plain-torch hooks", "torch.json")):
    p = os.path.join(d, f)
    if os.path.exists(p):
        r = json.load(open(p))
        rows.append((name, r["seconds"], "argmax %d/%d, logits %.2g" % (r["agree"], r["variants"], r["max_rel_diff"])))
    else:
        rows.append((name, None, "skipped"))
base = rows[0][1]
print("| engine | seconds | variants/s | time / layerlab default | agreement with layerlab |")
print("|---|---|---|---|---|")
for name, t, note in rows:
    if t is None:
        print("| %s | - | - | - | %s |" % (name, note))
    else:
        print("| %s | %.3f | %.0f | %.2fx | %s |" % (name, t, nv / max(t, 1e-9), t / max(base, 1e-9), note))
print("%d (layer, position) variants; ratios > 1 mean layerlab's default mode is that many times faster." % nv)
PY
exit "$fail"
