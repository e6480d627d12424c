#!/usr/bin/env bash
# make demo: everything layerlab does, end to end, on one model, with a report.
#
#   tools/demo.sh                       the built-in model, data/models/toy-llama
#   MODEL=path tools/demo.sh            any checkpoint layerlab loads (HF dir, .gguf, llama2.c
#                                       .bin, or a folder holding a .bin + tok*.bin / a .gguf)
#
# Stages: model card, task prompts, generation, activation dump, tuned lens, per-layer lenses
# (logit / tuned / SPADE), L-SPADE, SPADE-EXIT sweep, ICL E1-E3 and E6, then
# tools/demo_report.py writes $OUT/report.md from the commands' CSV / HDF5 outputs.
# Data: the toy model gets its own multiple-choice questions (--toy-mcq) and its own ICL
# tasks (gen:length over its words, toy:color); any other model gets cloze items cut from
# its own greedy stories (--cloze) or DATA=FILE (an MCQA file, e.g. from ../shared/assets)
# and generated ICL tasks. A step that cannot apply to the model is skipped, and the report
# says why; any other failure stops the demo with the command's log.
# Environment: DEMO_OUT (default demo-out), THREADS (default 1 for the toy model, all cores
# otherwise), DEVICE (cpu|cuda; default layerlab's choice), DATA, N_EVAL, N_TRAIN, N_ICL,
# TUNED_STEPS, LAYERLAB (default build/layerlab), LAYERLAB_SHARED (default ../shared).
set -euo pipefail
trap 'echo "demo: stopped: line $LINENO of tools/demo.sh failed: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
bin=${LAYERLAB:-build/layerlab}
shared=${LAYERLAB_SHARED:-../shared}
out=${DEMO_OUT:-demo-out}
model=${MODEL:-data/models/toy-llama}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
[ -x "$bin" ] || { echo "demo: $bin is not built (run make)" >&2; exit 1; }
[ -e "$model" ] || { echo "demo: no model at '$model' (MODEL=path: an HF directory, .gguf or llama2.c .bin)" >&2; exit 1; }

# A folder without config.json: the llama2.c checkpoint (+ its tokenizer) or GGUF inside it.
tok=${TOKENIZER:-}
if [ -d "$model" ] && [ ! -e "$model/config.json" ]; then
  cand=
  for f in "$model"/*.bin "$model"/*.gguf; do
    case $(basename "$f") in tok*.bin) continue ;; esac
    if [ -f "$f" ]; then cand=$f; break; fi
  done
  [ -n "$cand" ] || { echo "demo: $model has no config.json, llama2.c .bin or .gguf" >&2; exit 1; }
  model=$cand
fi
if [ -z "$tok" ] && [ "${model%.bin}" != "$model" ]; then
  tok=$(ls "$(dirname "$model")"/tok*.bin 2>/dev/null | head -1 || true)
fi
# The built-in model (or a copy of it: its card names it) gets its own tasks.
toy=0
case "$(cd "$(dirname "$model")" && pwd)/$(basename "$model")" in
  */data/models/toy-llama|*/data/models/toy-llama/) toy=1 ;;
esac
if [ -d "$model" ] && head -1 "$model/README.md" 2>/dev/null | grep -q '^# toy-llama'; then toy=1; fi

if [ $toy = 1 ]; then threads=${THREADS:-1}; else threads=${THREADS:-0}; fi
common=()
[ "$threads" != 0 ] && common+=(--threads "$threads")
[ -n "$tok" ] && common+=(--tokenizer "$tok")
[ -n "${DEVICE:-}" ] && common+=(--device "$DEVICE")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$([ "$threads" != 0 ] && echo "$threads" || nproc)}

# Data sets and sizes (see the header).
if [ $toy = 1 ]; then
  task_kind="toy-mcq"
  n_eval=${N_EVAL:-1000}; n_train=${N_TRAIN:-2000}; n_icl=${N_ICL:-400}
  cat_task=gen:length; map_task=toy:color; icl_words=(--words toy)
  target=logits
elif [ -n "${DATA:-}" ]; then
  task_kind=data
  n_eval=${N_EVAL:-200}; n_train=${N_TRAIN:-400}; n_icl=${N_ICL:-50}
  cat_task=gen:length; map_task=; icl_words=()
  target=logits
else
  task_kind=cloze
  n_eval=${N_EVAL:-100}; n_train=${N_TRAIN:-500}; n_icl=${N_ICL:-50}
  cat_task=gen:length; map_task=; icl_words=()
  target=hidden       # cloze options differ per item: the option-logits target cannot apply
fi
# A second ICL task for a real model: the function-vector antonyms when ../shared has them.
if [ $toy = 0 ] && [ -d "$shared/assets/icl-function-vectors" ]; then map_task=antonym; fi
tuned_steps=${TUNED_STEPS:-250}

# Start clean, but only ever delete a previous demo's folder.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -e "$out/status.tsv" ]; then
  echo "demo: $out exists and is not a demo output folder (no status.tsv): choose DEMO_OUT" >&2; exit 1
fi
rm -rf "$out"
mkdir -p "$out"
status=$out/status.tsv          # stage, state (ok|skipped|failed), seconds, note
: > "$status"
N=12
i=0
t_all=$(date +%s.%N)
say() { printf '%s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# stage NAME FILE CMD...: run CMD with stdout to $out/FILE.txt and stderr to $out/FILE.log.
# Failure stops the demo, showing the end of the log.
stage() {
  local name=$1 file=$2; shift 2
  i=$((i + 1))
  printf '[%d/%d] %s ... ' "$i" "$N" "$name" >&2
  local t0; t0=$(date +%s.%N)
  "$@" > "$out/$file.txt" 2> "$out/$file.log" &
  local pid=$!
  trap 'kill $pid 2>/dev/null; say; say "demo: interrupted"; exit 130' INT TERM
  if [ -t 2 ]; then     # on a terminal: elapsed seconds and the command's latest stderr line
    local head; head=$(printf '[%d/%d] %s ... ' "$i" "$N" "$name")
    while kill -0 "$pid" 2>/dev/null; do
      sleep 0.25
      kill -0 "$pid" 2>/dev/null || break
      printf '\r\033[K%s%s s  %s' "$head" "$(elapsed "$t0" | cut -d. -f1)" \
        "$(tail -c 300 "$out/$file.log" | tr '\r' '\n' | grep -v '^$' | tail -1 | cut -c1-60)" >&2
    done
    printf '\r\033[K%s' "$head" >&2
  fi
  if wait "$pid"; then
    trap - INT TERM
    local s; s=$(elapsed "$t0")
    say "done (${s} s)"
    printf '%s\tok\t%s\t%s\n' "$name" "$s" "$file" >> "$status"
  else
    local rc=$?
    trap - INT TERM
    say "FAILED (exit $rc)"
    say "demo: stage '$name' failed: $*"
    say "---- end of $out/$file.log ----"
    tail -15 "$out/$file.log" >&2
    printf '%s\tfailed\t%s\t%s\n' "$name" "$(elapsed "$t0")" "$file" >> "$status"
    exit 1
  fi
}
# skip NAME WHY: a stage that cannot apply to this model, said on the terminal and in the report.
skip() {
  i=$((i + 1))
  say "[$i/$N] $1 ... skipped: $2"
  printf '%s\tskipped\t0\t%s\n' "$1" "$2" >> "$status"
}
# probe FILE CMD...: a run whose failure means "this step cannot apply" (prints the reason).
probe() {
  local file=$1; shift
  if "$@" > "$out/$file.txt" 2> "$out/$file.log"; then return 0; fi
  grep -h 'error' "$out/$file.log" | head -1 | sed 's/^layerlab: error: //'
  return 1
}

say "== layerlab demo on $model$([ -n "$tok" ] && echo " (tokenizer $tok)") -> $out/"
say "   threads ${threads/#0/all}, data: $task_kind; logs and tables in $out/<stage>.{txt,log}"

# 1. The model card: what layerlab loaded.
stage "model card (layerlab info)" info "$bin" info "$model" "${common[@]}"

# 2. Task prompts: evaluation items first, training items after them (no overlap).
n_all=$((n_eval + n_train))
case $task_kind in
  toy-mcq) src=(--toy-mcq "$n_all") ;;
  cloze) src=(--cloze "$n_all") ;;
  data) src=(--data "$DATA" --limit "$n_all") ;;
esac
i=$((i + 1))
printf '[%d/%d] task prompts (%s) ... ' "$i" "$N" "$task_kind" >&2
t0=$(date +%s.%N)
spade_ok=1
if why=$(probe prompts "$bin" lens "$model" "${src[@]}" --method logit --dump-prompts "$out/prompts.jsonl" "${common[@]}"); then
  total=$(wc -l < "$out/prompts.jsonl")
  if [ "$total" -lt "$n_all" ]; then         # cloze: as many items as the stories hold; keep 1/3 for evaluation
    n_eval=$((total / 3)); n_train=$((total - n_eval))
  fi
  head -n "$n_eval" "$out/prompts.jsonl" > "$out/eval.jsonl"
  tail -n +"$((n_eval + 1))" "$out/prompts.jsonl" > "$out/train.jsonl"
  if [ "$n_eval" -lt 10 ] || [ "$n_train" -lt 20 ]; then
    spade_ok=0; why="only $total items from $task_kind (need 30)"
  fi
else
  spade_ok=0
fi
if [ $spade_ok = 1 ]; then
  s=$(elapsed "$t0"); say "done (${s} s): $n_eval evaluation + $n_train training items"
  printf '%s\tok\t%s\t%s eval %s train %s\n' "task prompts ($task_kind)" "$s" "$task_kind" "$n_eval" "$n_train" >> "$status"
else
  say "skipped: $why"
  printf '%s\tskipped\t0\t%s\n' "task prompts ($task_kind)" "$task_kind: $why" >> "$status"
fi

# 3. A generation sample: the first evaluation question (toy / data), else a story opening.
prompt="Once upon a time"
if [ $spade_ok = 1 ] && [ $task_kind != cloze ]; then
  p=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline()).get("prompt_text",""))' "$out/eval.jsonl")
  [ -n "$p" ] && prompt=$p
fi
printf '%s' "$prompt" > "$out/generate.prompt"
if grep -q '^tokenizer  *none' "$out/info.txt"; then
  skip "generation sample" "no tokenizer with this checkpoint (TOKENIZER=file)"
else
  gen_n=40; [ $task_kind != cloze ] && gen_n=12
  # The toy model also gets a fact-table episode built from the evaluation questions' answers
  # ("entity -> value" lines of one table, the query's value left out), written with its
  # expected answer to generate-map.{prompt,expected}.
  if [ $toy = 1 ] && [ $spade_ok = 1 ]; then
    "$py" - "$out" <<'PY' || true
import json, re, sys
out = sys.argv[1]
by = {}
for line in open(f"{out}/eval.jsonl"):
    it = json.loads(line)
    t = it.get("prompt_text", "")
    q = re.search(r"what is the (\w+) of (\S+)\?", t)
    opts = re.findall(r"^[A-D]\. (.+)$", t, re.M)
    if q and len(opts) > it["gold"]:
        by.setdefault(q.group(1), {}).setdefault(q.group(2), opts[it["gold"]])
for table, facts in by.items():
    if len(facts) >= 5:
        items = list(facts.items())[:5]
        open(f"{out}/generate-map.prompt", "w").write(
            "".join(f"{e} -> {v}\n" for e, v in items[:4]) + f"{items[4][0]} ->")
        open(f"{out}/generate-map.expected", "w").write(f"{items[4][1]} ({table} table)")
        break
PY
  fi
  gen_all() {
    "$bin" generate "$model" --prompt "$prompt" --max-new-tokens "$gen_n" --temperature 0 "${common[@]}" || return 1
    if [ -s "$out/generate-map.prompt" ]; then
      "$bin" generate "$model" --prompt "$(cat "$out/generate-map.prompt")" --max-new-tokens 4 --temperature 0 \
        "${common[@]}" > "$out/generate-map.txt" || return 1
    fi
  }
  stage "generation sample" generate gen_all
fi

# 4. An activation dump of evaluation prompts (every layer's resid_post, every position).
if [ $spade_ok = 1 ]; then
  head -n 16 "$out/eval.jsonl" > "$out/dump-input.jsonl"
else
  printf '%s\n' "Once upon a time" "The little dog ran to the park" > "$out/dump-input.jsonl"
fi
stage "activation dump (resid_post, all layers)" dump "$bin" dump "$model" --input "$out/dump-input.jsonl" \
  --out "$out/acts.h5" --points hook_resid_post --quiet --force "${common[@]}"

if [ $spade_ok = 1 ]; then
  data=(--data "$out/eval.jsonl" --format tokens)
  train=(--data "$out/train.jsonl" --format tokens)
  # 5. Tuned lens on the training items (every position), 10% of them held out.
  stage "tuned-lens training" tuned "$bin" tuned-lens train "$model" "${train[@]}" --steps "$tuned_steps" \
    --out "$out/tuned.safetensors" "${common[@]}"
  # 6. Per-layer accuracy of the three read-outs on the evaluation items.
  stage "per-layer lenses (logit / tuned / SPADE)" lens "$bin" lens "$model" "${data[@]}" --method logit,tuned,spade \
    --tuned "$out/tuned.safetensors" --out-csv "$out/lens.csv" --out-h5 "$out/lens.h5" --plot "$out/lens.png" "${common[@]}"
  # 7. L-SPADE maps on the training items.
  stage "L-SPADE training (target $target)" lspade "$bin" lspade train "$model" "${train[@]}" --target "$target" \
    --out "$out/lspade.safetensors" --force "${common[@]}"
  # 8. SPADE-EXIT: tau sweep, operating points, measured runs.
  stage "SPADE-EXIT sweep" exit "$bin" exit "$model" --lspade "$out/lspade.safetensors" "${data[@]}" --sweep \
    --tuned-lens "$out/tuned.safetensors" --out "$out/exit" "${common[@]}"
else
  for s in "tuned-lens training" "per-layer lenses (logit / tuned / SPADE)" "L-SPADE training" "SPADE-EXIT sweep"; do
    skip "$s" "no decision-task prompts for this model (see task prompts)"
  done
fi

# 9-11. In-context learning: E1 on each task, E2 / E3 on each task, E6 on all of them.
# Demonstrations must fit the context: estimate a demonstration's tokens from a typical one
# (+1 for the newline), with 50% margin for longer inputs, and keep the k that fit; the
# check run below tries the largest k on a few prompts.
ctx=$(awk '$1 == "context" { print $2 }' "$out/info.txt")
per=$(( $("$bin" tokenize "$model" "brisket -> forest" --no-special "${common[@]}" 2>/dev/null | wc -w) + 1 ))
kmax=$(( (${ctx:-512} - 2 * per - 8) * 2 / (3 * per) ))
e1_k=$(for k in 0 1 2 4 8 16; do if [ $k -le $kmax ]; then echo $k; fi; done | paste -sd, -)
ek=$(( kmax < 8 ? kmax : 8 )); e2k=$(( kmax < 5 ? kmax : 5 ))
icl_tasks=()
[ "$kmax" -ge 2 ] || { cat_task=; map_task=; say "   (ICL: a context of ${ctx} tokens holds fewer than 2 demonstrations)"; }
for t in $cat_task $map_task; do
  d=icl-$(echo "$t" | tr ':/' '__')
  extra=()
  case $t in toy:*) extra=(--full-vocab) ;; esac     # toy tables: the answer among the whole vocabulary
  if why=$(probe "$d-check" "$bin" icl e1 "$model" --task "$t" "${icl_words[@]}" --k "0,$ek" --n 8 --out "$out/$d-check" "${common[@]}" "${extra[@]}"); then
    icl_tasks+=("$t")
  else
    say "   (ICL task $t cannot run on this model: $why)"
    printf '%s\tskipped\t0\t%s\n' "ICL task $t" "$why" >> "$status"
  fi
  rm -rf "$out/$d-check" "$out/$d-check.txt" "$out/$d-check.log"
done
if [ ${#icl_tasks[@]} -eq 0 ]; then
  skip "ICL E1 (accuracy vs demonstrations)" "no ICL task applies to this model"
  skip "ICL E2 / E3 (task vectors)" "no ICL task applies to this model"
  skip "ICL E6 (convergence)" "no ICL task applies to this model"
else
  e1_all() {
    for t in "${icl_tasks[@]}"; do
      local d; d=$out/icl-$(echo "$t" | tr ':/' '__'); local x=(); case $t in toy:*) x=(--full-vocab) ;; esac
      "$bin" icl e1 "$model" --task "$t" "${icl_words[@]}" --k "$e1_k" --n "$n_icl" --out "$d/e1" "${common[@]}" "${x[@]}" || return 1
    done
  }
  e23_all() {
    for t in "${icl_tasks[@]}"; do
      local d; d=$out/icl-$(echo "$t" | tr ':/' '__'); local x=(); case $t in toy:*) x=(--full-vocab) ;; esac
      "$bin" icl e2 "$model" --task "$t" "${icl_words[@]}" --k "$e2k" --n "$((n_icl / 2))" --n-dev "$((n_icl / 4))" --out "$d/e2" "${common[@]}" "${x[@]}" || return 1
      "$bin" icl e3 "$model" --task "$t" "${icl_words[@]}" --k "$ek" --n "$((n_icl / 2))" --n-dev "$((n_icl / 4))" --out "$d/e3" "${common[@]}" "${x[@]}" || return 1
    done
  }
  e6_args=()
  for t in "${icl_tasks[@]}"; do e6_args+=(--task "$t"); done
  stage "ICL E1 (accuracy vs demonstrations: ${icl_tasks[*]})" icl-e1 e1_all
  stage "ICL E2 / E3 (global and local task vectors)" icl-e23 e23_all
  stage "ICL E6 (convergence of label-position vectors)" icl-e6 "$bin" icl e6 "$model" "${e6_args[@]}" "${icl_words[@]}" \
    --k "$ek" --n 32 --out "$out/icl-e6" "${common[@]}"
fi

# 12. The report, from the files above.
total_s=$(elapsed "$t_all")
stage "report" report "$py" tools/demo_report.py --out "$out" --model "$model" --tokenizer "$tok" \
  --task-kind "$task_kind" --threads "$threads" --seconds "$total_s" --tasks "${icl_tasks[*]:-}"
say "== demo finished in $(elapsed "$t_all") s"
say "   report: $out/report.md"
pngs=$(cd "$out" && find . -name '*.png' | sed 's|^\./||' | sort | tr '\n' ' ')
say "   plots:  ${pngs:-(none: python3-matplotlib missing?)} (under $out/)"
