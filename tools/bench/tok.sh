#!/usr/bin/env bash
# Tokenizer benchmark: layerlab against Hugging Face `tokenizers`, same text, same
# run, one thread each. Encodes a few MB of mixed text (prose, code, other scripts;
# tools/bench/make_tok_text.py) with the GPT-2 and Llama-2 tokenizers from
# ../shared/assets and the Llama-3- and Qwen2-shaped test tokenizers, and writes
# bench-out/tok.tsv and a section of bench-out/report-tok.md.
#   bash tools/bench/tok.sh      (part of `make bench`; REPS=3 MB=4 by default)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
REPS="${REPS:-3}"
MB="${MB:-4}"
OUT=bench-out
mkdir -p "$OUT"
bash tools/fixtures-env.sh --setup-only
PY="$ROOT/.venv-fixtures/bin/python"
. tools/bench/build.sh
ll_bench_build tools/bench/ll_bench_tok.c
TEXT="$OUT/tok-text-${MB}mb.txt"
[ -f "$TEXT" ] || "$PY" tools/bench/make_tok_text.py --out "$TEXT" --mb "$MB"

SHARED="${LAYERLAB_SHARED:-$ROOT/../shared}/assets"
CASES=()
[ -f "$SHARED/tiny-gpt2/tokenizer.json" ] && CASES+=("gpt2:$SHARED/tiny-gpt2/tokenizer.json")
[ -f "$SHARED/llama2-tokenizer/tokenizer.model" ] && CASES+=("llama2:$SHARED/llama2-tokenizer/tokenizer.model")
CASES+=("llama3-shaped:test/tokenizer/fixtures/llama3/tokenizer.json" "qwen2-shaped:test/tokenizer/fixtures/qwen2/tokenizer.json")

printf 'tokenizer\tlayerlab_MBps\thf_MBps\tratio\tlayerlab_tokens\thf_tokens\n' > "$OUT/tok.tsv"
for c in "${CASES[@]}"; do
    name="${c%%:*}"
    path="${c#*:}"
    echo "tok bench: $name" >&2
    OMP_NUM_THREADS=1 "$BIN" --tokenizer "$path" --text "$TEXT" --reps "$REPS" > "$OUT/tok-$name-layerlab.json"
    TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 "$PY" tools/bench/tok_peer.py --tokenizer "$path" --text "$TEXT" --reps "$REPS" > "$OUT/tok-$name-hf.json"
    "$PY" - "$name" "$OUT/tok-$name-layerlab.json" "$OUT/tok-$name-hf.json" >> "$OUT/tok.tsv" <<'PY'
import json, sys
a = json.load(open(sys.argv[2])); b = json.load(open(sys.argv[3]))
print("%s\t%.2f\t%.2f\t%.2f\t%d\t%d" % (sys.argv[1], a["mb_per_s"], b["mb_per_s"], a["mb_per_s"] / b["mb_per_s"], a["n_tokens"], b["n_tokens"]))
PY
done
{
    echo "## Tokenizer encode, one thread ($(du -m "$TEXT" | cut -f1) MB mixed text, $(wc -l < "$TEXT") documents, best of $REPS)"
    echo
    echo "| tokenizer | layerlab MB/s | HF tokenizers MB/s | ratio | tokens (layerlab / HF) |"
    echo "|---|---:|---:|---:|---:|"
    tail -n +2 "$OUT/tok.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %sx | %s / %s |\n", $1, $2, $3, $4, $5, $6}'
    echo
    echo "HF tokenizers $("$PY" -c 'import tokenizers; print(tokenizers.__version__)'), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
} > "$OUT/report-tok.md"
cat "$OUT/report-tok.md"
