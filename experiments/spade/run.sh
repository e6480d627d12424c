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
for cfg in "$@"; do
  f=experiments/spade/configs/$cfg.conf
  [ -f "$f" ] || { echo "run.sh: no config $f" >&2; exit 2; }
  NAME= TRAIN_SRC= EVAL_SRC= TUNED_SRC= TARGET=logits
  # shellcheck disable=SC1090
  source "$f"
  d=$OUT/$NAME
  mkdir -p "$d"
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
