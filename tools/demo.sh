#!/usr/bin/env bash
# make demo, until the built-in model organism exists (see README): show what layerlab
# does today on a real model found under ../shared/assets (or $MODEL), and say what ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/layerlab
shared=${LAYERLAB_SHARED:-../shared}
model=${MODEL:-}
tokens=${TOKENS:-}
if [ -z "$model" ]; then
  for cand in "$shared/assets/stories260K/stories260K.bin" \
              "$shared/assets/stories260K/tinyllamas-stories-260k-f32.gguf" \
              data/models/toy-llama "$shared/assets/tiny-gpt2" test/fixtures/llama_gqa; do
    if [ -e "$cand" ]; then model=$cand; break; fi
  done
fi
case "$model" in
  *stories260K*) tokens=${tokens:-1,403,407,261,378} ;;   # BOS + "Once upon a time" in tok512
  *) tokens=${tokens:-1,2,3,4,5} ;;
esac
echo "== layerlab demo: checkpoint loading, the CPU forward pass, tokenizers and generation"
echo "== model: $model"
[ -e "$model" ] || { echo "layerlab demo: no model found (looked under $shared/assets and test/fixtures)" >&2; exit 1; }
echo
echo "\$ layerlab info $model"
"$bin" info "$model"
echo
echo "\$ layerlab run $model --tokens $tokens"
"$bin" run "$model" --tokens "$tokens"
echo
# Text in and out: the tokenizer next to the weights (or tok512.bin for the llama2.c file).
tokopt=()
case "$model" in
  *stories260K.bin) tokopt=(--tokenizer "$(dirname "$model")/tok512.bin") ;;
esac
if "$bin" info "$model" "${tokopt[@]}" | grep -q "^tokenizer  *none"; then
  echo "(no tokenizer next to $model: skipping tokenize and generate)"
else
  prompt=${PROMPT:-Once upon a time}
  echo "\$ layerlab tokenize $model${tokopt[*]:+ ${tokopt[*]}} \"$prompt\" --pieces"
  "$bin" tokenize "$model" "${tokopt[@]}" "$prompt" --pieces
  echo
  echo "\$ layerlab generate $model${tokopt[*]:+ ${tokopt[*]}} --prompt \"$prompt\" --max-new-tokens 100 --temperature 0"
  "$bin" generate "$model" "${tokopt[@]}" --prompt "$prompt" --max-new-tokens 100 --temperature 0
  echo
  # An activation dump of a few prompts, read back with h5py (docs/hdf5-layout.md).
  mkdir -p demo-out
  printf '%s\n' "Once upon a time" "The little dog ran to the park" "Lily saw a big red ball" > demo-out/prompts.txt
  echo "\$ layerlab dump $model${tokopt[*]:+ ${tokopt[*]}} --input demo-out/prompts.txt --out demo-out/acts.h5 --force"
  "$bin" dump "$model" "${tokopt[@]}" --input demo-out/prompts.txt --out demo-out/acts.h5 --force
  if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
    /usr/bin/python3 - <<'PY'
import h5py, numpy as np
f = h5py.File("demo-out/acts.h5", "r")
a = f["acts/hook_resid_post"]
print("h5py: complete=%s, %d sequences, acts/hook_resid_post %s (layer, row, d)" % (bool(f.attrs["complete"]), len(f["sequences/ids"]), a.shape))
off = f["sequences/row_offsets"][...]
for l in range(a.shape[0]):
    x = a[l]
    print("  layer %d: mean |resid| %.3f" % (l, float(np.abs(x).mean())))
PY
  fi
  echo
fi
case "$model" in
  *stories260K*)
    echo "What ran: one fp32 forward pass of the stories260K Llama (5 layers, dim 64) over"
    echo "BOS + \"Once upon a time\" (ids $tokens). The 'next' column is the greedy next token:"
    echo "432 at the last position is the first token of the documented continuation."
    echo "Then the same prompt as text: its tokens with the byte span each came from, and 100"
    echo "greedy tokens, which reproduce the story documented for this model word for word." ;;
  *)
    echo "What ran: one fp32 forward pass over token ids $tokens; 'next' is the argmax next token." ;;
esac
echo "The SPADE, ICL and training parts of the demo arrive with their issues (see README)."
