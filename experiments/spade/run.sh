#!/usr/bin/env bash
# Reproduce the SPADE / L-SPADE / SPADE-EXIT tables for one model:
#   experiments/spade/run.sh MODEL OUTDIR [CONFIG...]
# For each setting (configs/NAME.conf): fit L-SPADE maps on the training prompts, train a
# tuned lens when the setting has one, run `layerlab exit --sweep` on the evaluation
# prompts (per-layer curves, Iso-Compute, tau sweep, operating points, measured runs),
# then tables.py writes OUTDIR/tables.md (the paper's two tables: Iso-Compute accuracy of
# SPADE against the linear read-outs, and SPADE-EXIT speedups at the two operating points).
# Default settings: toy-mcq for data/models/toy-llama, stories-cloze for stories260K, and
# arc-easy, boolq, headqa otherwise (the paper's data sets; LLaMA-7B / Vicuna-7B there).
# Environment: LAYERLAB (default build/layerlab), SHARED (default ../shared/assets),
# THREADS (default 1), EXTRA (more options for every command, e.g. "--template vicuna"),
# DEVICE (cpu or cuda; default: layerlab's choice).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:?usage: experiments/spade/run.sh MODEL OUTDIR [CONFIG...]}
OUT=${2:?usage: experiments/spade/run.sh MODEL OUTDIR [CONFIG...]}
shift 2
LAYERLAB=${LAYERLAB:-build/layerlab}
SHARED=${SHARED:-../shared/assets}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}
[ -x "$LAYERLAB" ] || { echo "run.sh: $LAYERLAB not built (make)" >&2; exit 1; }
TOK=""
case "$MODEL" in
  *stories260K*.bin) TOK="--tokenizer $(dirname "$MODEL")/tok512.bin" ;;
esac
if [ $# -eq 0 ]; then
  case "$MODEL" in
    *toy-llama*) set -- toy-mcq ;;
    *stories260K*) set -- stories-cloze ;;
    *) set -- arc-easy boolq headqa ;;
  esac
fi
COMMON="--threads $THREADS $TOK $EXTRA ${DEVICE:+--device $DEVICE}"
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS
# Cloze settings: the training and evaluation items must not share a context (the same token
# sequence), or the L-SPADE result is in-sample. Both sets are written with `layerlab lens
# --dump-prompts` (the same items lspade / exit build; their --data-seed default is 1) and
# compared by tokens; an overlap stops the run.
check_disjoint() {
  local d=$1 a=$2 b=$3
  case "$a $b" in *--cloze*) ;; *) return 0 ;; esac
  case "$a" in *--data-seed*) ;; *) a="$a --data-seed 1" ;; esac
  case "$b" in *--data-seed*) ;; *) b="$b --data-seed 1" ;; esac
  # shellcheck disable=SC2086
  "$LAYERLAB" lens "$MODEL" $a --method logit --dump-prompts "$d/train-items.jsonl" $COMMON > /dev/null
  # shellcheck disable=SC2086
  "$LAYERLAB" lens "$MODEL" $b --method logit --dump-prompts "$d/eval-items.jsonl" $COMMON > /dev/null
  local rc=0
  /usr/bin/python3 - "$d/train-items.jsonl" "$d/eval-items.jsonl" <<'PY' || rc=$?
import json, sys
sets = [{tuple(json.loads(l)["tokens"]) for l in open(f)} for f in sys.argv[1:3]]
both = len(sets[0] & sets[1])
print(f"run.sh: {len(sets[0])} training and {len(sets[1])} evaluation contexts, {both} shared", file=sys.stderr)
sys.exit(1 if both else 0)
PY
  rm -f "$d/train-items.jsonl" "$d/eval-items.jsonl"
  return $rc
}
for cfg in "$@"; do
  f=experiments/spade/configs/$cfg.conf
  [ -f "$f" ] || { echo "run.sh: no config $f" >&2; exit 2; }
  NAME= TRAIN_SRC= EVAL_SRC= TUNED_SRC= TARGET=logits
  # shellcheck disable=SC1090
  source "$f"
  d=$OUT/$NAME
  mkdir -p "$d"
  check_disjoint "$d" "$TRAIN_SRC" "$EVAL_SRC" || { echo "run.sh: $NAME: training and evaluation items overlap" >&2; exit 3; }
  echo "== $NAME: L-SPADE ($TARGET) on $TRAIN_SRC" >&2
  # shellcheck disable=SC2086
  "$LAYERLAB" lspade train "$MODEL" $TRAIN_SRC --target "$TARGET" --out "$d/lspade.safetensors" --force $COMMON \
    | tee "$d/lspade.txt"
  TL=""
  if [ -n "$TUNED_SRC" ] && "$LAYERLAB" tuned-lens train --help >/dev/null 2>&1; then
    echo "== $NAME: tuned lens on $TUNED_SRC" >&2
    # shellcheck disable=SC2086
    if "$LAYERLAB" tuned-lens train "$MODEL" $TUNED_SRC --out "$d/tuned.safetensors" $COMMON > "$d/tuned.txt" 2>&1; then
      TL="--tuned-lens $d/tuned.safetensors"
    else
      echo "run.sh: tuned lens failed for $NAME (see $d/tuned.txt); continuing without it" >&2
    fi
  fi
  echo "== $NAME: SPADE-EXIT sweep on $EVAL_SRC" >&2
  # shellcheck disable=SC2086
  "$LAYERLAB" exit "$MODEL" --lspade "$d/lspade.safetensors" $EVAL_SRC --sweep $TL --out "$d/exit" $COMMON \
    | tee "$d/exit.txt"
done
/usr/bin/python3 experiments/spade/tables.py "$OUT" "$MODEL" > "$OUT/tables.md"
echo "tables: $OUT/tables.md" >&2
