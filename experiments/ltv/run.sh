#!/usr/bin/env bash
# experiments/ltv: "Label words as local task vectors" (docs/icl-task-vectors.md), E1-E7
# for one model and a list of tasks, with one summary.
#
#   experiments/ltv/run.sh [--config FILE] [--out DIR] MODEL TASK [TASK ...]
#
# Config: experiments/ltv/configs/toy.env for data/models/toy-llama, else default.env
# (or --config). Results: OUT/eN/ (CSV, HDF5, PNG of each experiment, its log) and
# OUT/summary.md (every table, the command lines, which experiments failed and why).
# An experiment that fails or is not built is reported in the summary and the script
# goes on; it exits 1 when any failed.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
config="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { sed -n '4,4p' "$0" >&2; exit 2; }
model="$1"; shift
tasks=("$@")
if [ -z "$config" ]; then
  case "$model" in
    *toy-llama*) config="$here/configs/toy.env" ;;
    *) config="$here/configs/default.env" ;;
  esac
fi
# shellcheck disable=SC1090
source "$config"
bin="${LAYERLAB:-$root/build/layerlab}"
[ -x "$bin" ] || { echo "ltv: $bin not found: run make first" >&2; exit 1; }
[ -n "$out" ] || out="ltv-$(basename "$model")-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
export LAYERLAB_ROOT="$root"
task_args=()
for t in "${tasks[@]}"; do task_args+=(--task "$t"); done
common=(--n "$N" --seed "$SEED" --batch "$BATCH" --threads "$THREADS")
summary="$out/summary.md"
{
  echo "# ltv run: $(basename "$model")"
  echo
  echo "model: \`$model\`; tasks: ${tasks[*]}; config: \`$config\`; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "config values: K=$K N=$N SEED=$SEED BATCH=$BATCH E4_MODES=\"$E4_MODES\" E4_WINDOW=${E4_WINDOW:-auto} E4_CONTROL=$E4_CONTROL SALIENCY=${SALIENCY:-0} HOOK=$HOOK COMPONENTS=$COMPONENTS EXTRA=\"$EXTRA\""
  echo
} > "$summary"
failed=()
t0=$SECONDS

# run NAME DIR ARGS...: one experiment, its table appended to the summary
run() {
  local name="$1" dir="$2"; shift 2
  mkdir -p "$dir"
  local cmd=("$bin" icl "$@" --out "$dir")
  echo "ltv: ${cmd[*]}" >&2
  local s=$SECONDS
  "${cmd[@]}" > "$dir/table.txt" 2> "$dir/log.txt"
  local rc=$?
  {
    echo "## $name"
    echo
    echo "\`${cmd[*]}\` ($((SECONDS - s)) s, exit $rc)"
    echo
    if [ $rc -eq 0 ]; then
      echo '```'; cat "$dir/table.txt"; echo '```'
      grep -h "warning" "$dir/log.txt" | sed 's/^/    /'
    else
      echo "**failed**:"; echo; echo '```'; tail -5 "$dir/log.txt"; echo '```'
    fi
    echo
  } >> "$summary"
  [ $rc -eq 0 ] || failed+=("$name")
}

# E1 and E4-E7 take the list (one table with a task column); E2 and E3 take one task each.
e13=(--n "$N" --seed "$SEED" --threads "$THREADS")
# shellcheck disable=SC2086
run "E1 ICL curves" "$out/e1" e1 "$model" "${task_args[@]}" "${e13[@]}" $EXTRA $EXTRA_E1
for t in "${tasks[@]}"; do
  tdir="$(echo "$t" | tr ':/' '__')"
  # shellcheck disable=SC2086
  run "E2 global task vector: $t" "$out/e2-$tdir" e2 "$model" --task "$t" "${e13[@]}" $EXTRA $EXTRA_E2
  # shellcheck disable=SC2086
  run "E3 local task vectors: $t" "$out/e3-$tdir" e3 "$model" --task "$t" --k "$K" "${e13[@]}" $EXTRA $EXTRA_E3
done
for mode in $E4_MODES; do
  e4=(--mode "$mode")
  [ -n "${E4_WINDOW:-}" ] && e4+=(--window "$E4_WINDOW")
  [ "${E4_CONTROL:-0}" = 1 ] && e4+=(--control)
  # shellcheck disable=SC2086
  run "E4 knockout ($mode)" "$out/e4-$mode" e4 "$model" "${task_args[@]}" --k "$K" "${common[@]}" "${e4[@]}" $EXTRA
done
# shellcheck disable=SC2086
e5=()
[ "${SALIENCY:-0}" = 1 ] && e5+=(--saliency)
# shellcheck disable=SC2086
run "E5 information flow" "$out/e5" e5 "$model" "${task_args[@]}" --k "$K" "${common[@]}" "${e5[@]}" $EXTRA
# shellcheck disable=SC2086
run "E6 convergence" "$out/e6" e6 "$model" "${task_args[@]}" --k "$K" "${common[@]}" --hook "$HOOK" $EXTRA
# shellcheck disable=SC2086
run "E7 abstraction (PCA / dPCA)" "$out/e7" e7 "$model" "${task_args[@]}" --k "$K" "${common[@]}" --hook "$HOOK" \
  --components "$COMPONENTS" $EXTRA

{
  echo "## status"
  echo
  echo "total $((SECONDS - t0)) s."
  if [ ${#failed[@]} -eq 0 ]; then echo "All experiments ran."; else echo "Failed or not built: ${failed[*]}."; fi
} >> "$summary"
echo "ltv: wrote $summary" >&2
[ ${#failed[@]} -eq 0 ]
