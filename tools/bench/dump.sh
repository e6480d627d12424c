#!/usr/bin/env bash
# make bench-dump: `layerlab dump` against a Hugging Face transformers + h5py script on the
# CPU (issue 5): hook_resid_post of every layer at every position of a file of prompts,
# written to HDF5, for the fixture-sized model (test/fixtures/llama_gqa) and the ~30M
# benchmark model (bench-out/model-30m, tools/bench/make_bench_model.py).
#
#   bash tools/bench/dump.sh        (normally through `make bench-dump` or `make bench`)
#
# Environment:
#   THREADS  threads for both sides (default nproc)
#   REPS     repetitions of each timed run; the tables give medians (default 3)
#   FIX_N    prompts for the fixture model (default 3000)
#   M30_N    prompts for the 30M model (default 200; the issue's "few thousand", e.g. 2000,
#            takes ~10x longer: 2-5 minutes per repetition per side on 2 shared cores)
#   MIN_LEN, MAX_LEN  prompt lengths, uniform (default 16..128)
#   BATCH    token budget per forward pass, both sides (default 2048 = layerlab's default)
#   POLICY   OMP_WAIT_POLICY for both sides in the timed runs (default passive; "default"
#            leaves it unset). On a machine whose cores are shared with other work, libgomp's
#            spinning workers (both layerlab and PyTorch use libgomp) lose most of their time
#            to the spin barrier; the DIAG runs below show how much.
#   DIAG_N   prompts for the diagnostic runs with the default (spinning) wait policy,
#            one repetition each side on the fixture model (default 300; 0 skips them)
#
# Also measured, so the report can say whether the writer is the bottleneck:
#   - the disk's own sequential write rate: dd of a file the size of the 30M dump into
#     bench-out/, with conv=fdatasync (the disk) and without (the page cache, which is
#     where a dump that fits in memory lands first)
#   - the writer's marginal rate: the fixture model dumping five d-wide points
#     (resid_pre, resid_mid, attn_out, mlp_out, resid_post) instead of one: the same
#     forward passes, 5x the bytes; extra MB / extra seconds is what the writer costs,
#     and its share is the extra time over the one-point run relative to that run
#   - a run storing only the last layer (--layers L-1: the same forward passes, 1/L of the
#     bytes; --layers 0 would not do, since dump stops the forward after the last layer asked)
#   - for information, a gzip and a bf16 variant of the layerlab run
# and the two outputs are compared: layerlab's /acts/hook_resid_post layer l against the
# peer's hidden_states[l+1] for l < L-1 (HF's last hidden state is after the final norm).
#
# Everything goes to bench-out/ (git-ignored): dump-*.jsonl (prompts), dump-*.h5 (outputs,
# deleted after the check unless KEEP=1), dump-runs.tsv (every run), dump.json, dump-report.md.
# The Python side is the pinned fixtures virtualenv (.venv-fixtures), which sees Debian's
# torch and h5py (python3-h5py; installed here when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-$(nproc)}"
REPS="${REPS:-3}"
FIX_N="${FIX_N:-3000}"
M30_N="${M30_N:-200}"
MIN_LEN="${MIN_LEN:-16}"
MAX_LEN="${MAX_LEN:-128}"
BATCH="${BATCH:-2048}"
POLICY="${POLICY:-passive}"
DIAG_N="${DIAG_N:-300}"
OUT=bench-out
LL="${LL:-${BUILD:-build}/layerlab}"
mkdir -p "$OUT"
[ -x "$LL" ] || make --no-print-directory all

# 1. Python: the fixtures virtualenv, plus h5py (Debian's, seen through --system-site-packages).
bash tools/fixtures-env.sh --setup-only
PY="$ROOT/.venv-fixtures/bin/python"
if ! "$PY" -c "import h5py" 2>/dev/null; then
    if ! dpkg-query -W -f='${Status}' python3-h5py 2>/dev/null | grep -q "install ok installed"; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "dump bench: installing python3-h5py" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-h5py >&2
    fi
    "$PY" -c "import h5py" 2>/dev/null || "$PY" -m pip install --disable-pip-version-check --no-input h5py==3.7.0
fi

# 2. The models and the prompts (deterministic; rebuilt each run, it is cheap).
FIX_MODEL=test/fixtures/llama_gqa
M30_MODEL="$OUT/model-30m"
"$PY" tools/bench/make_bench_model.py --out "$M30_MODEL"
vocab() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1] + "/config.json"))["vocab_size"])' "$1"; }
"$PY" tools/bench/make_dump_prompts.py --n "$FIX_N" --vocab "$(vocab $FIX_MODEL)" --min-len "$MIN_LEN" \
    --max-len "$MAX_LEN" --seed 1 --out "$OUT/dump-fixture.jsonl"
"$PY" tools/bench/make_dump_prompts.py --n "$M30_N" --vocab "$(vocab "$M30_MODEL")" --min-len "$MIN_LEN" \
    --max-len "$MAX_LEN" --seed 2 --out "$OUT/dump-30m.jsonl"
if [ "$DIAG_N" -gt 0 ]; then
    head -n "$DIAG_N" "$OUT/dump-fixture.jsonl" >"$OUT/dump-diag.jsonl"
fi

# 3. Runs. Each appends a line to dump-runs.tsv:
#    label  model  side  rep  seconds(own figure, model load excluded)  wall_seconds  rows  MB
RUNS="$OUT/dump-runs.tsv"
printf 'label\tmodel\tside\trep\tseconds\twall_seconds\trows\tmb\n' >"$RUNS"
penv=()
[ "$POLICY" = default ] || penv=(OMP_WAIT_POLICY="$POLICY")

# ll_run LABEL MODELNAME MODELDIR INPUT REP [policy-env...] -- [extra layerlab args...]
ll_run() {
    local label=$1 mname=$2 mdir=$3 input=$4 rep=$5
    shift 5
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local h5="$OUT/dump-ll-$mname.h5" log="$OUT/dump-ll.log" t0 t1 line
    rm -f "$h5"
    sync
    t0=$(date +%s.%N)
    env "${envs[@]}" "$LL" dump "$mdir" --input "$input" --out "$h5" --threads "$THREADS" --batch-tokens "$BATCH" \
        --quiet "$@" 2>"$log" || { cat "$log" >&2; echo "dump bench: layerlab dump failed ($label)" >&2; exit 1; }
    t1=$(date +%s.%N)
    line="$(grep '^dump: ' "$log" | tail -1)"
    # "dump: F: N sequences (...), R rows, X MB of activations in S s (Y MB/s)"
    "$PY" - "$label" "$mname" "$rep" "$t0" "$t1" "$line" >>"$RUNS" <<'EOF'
import re, sys
label, m, rep, t0, t1, line = sys.argv[1:]
g = re.search(r"(\d+) rows, ([\d.]+) MB of activations in ([\d.]+) s", line)
if not g:
    sys.exit("dump bench: cannot read layerlab's summary line: %r" % line)
print("%s\t%s\tlayerlab\t%s\t%s\t%.4f\t%s\t%s" % (label, m, rep, g.group(3), float(t1) - float(t0), g.group(1), g.group(2)))
EOF
    echo "  $label $mname rep $rep: $line" >&2
}

# peer_run LABEL MODELNAME MODELDIR INPUT REP [policy-env...]
peer_run() {
    local label=$1 mname=$2 mdir=$3 input=$4 rep=$5
    shift 5
    local h5="$OUT/dump-peer-$mname.h5" js="$OUT/dump-peer-run.json"
    rm -f "$h5"
    sync
    env "$@" "$PY" tools/bench/dump_peer.py "$mdir" --input "$input" --out "$h5" --threads "$THREADS" \
        --batch-tokens "$BATCH" --json "$js" >/dev/null
    "$PY" - "$label" "$mname" "$rep" "$js" >>"$RUNS" <<'EOF'
import json, sys
label, m, rep, js = sys.argv[1:]
j = json.load(open(js))
print("%s\t%s\tpeer\t%s\t%.4f\t%.4f\t%d\t%.3f" % (label, m, rep, j["seconds"], j["wall_seconds"], j["tokens"], j["mb"]))
EOF
    echo "  $label $mname rep $rep: peer $(cut -f5,7,8 <(tail -1 "$RUNS") | awk '{printf "%s s, %s rows, %s MB", $1, $2, $3}')" >&2
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
T_BENCH0=$(date +%s)
for spec in "fixture $FIX_MODEL $OUT/dump-fixture.jsonl" "30m $M30_MODEL $OUT/dump-30m.jsonl"; do
    read -r mname mdir input <<<"$spec"
    echo "== $mname: layerlab dump and the transformers+h5py peer, $THREADS threads, OMP_WAIT_POLICY=$POLICY, $REPS reps (alternating)" >&2
    for rep in $(seq 1 "$REPS"); do
        ll_run main "$mname" "$mdir" "$input" "$rep" "${penv[@]}" --
        peer_run main "$mname" "$mdir" "$input" "$rep" "${penv[@]}"
    done
    # 4. Agreement, on the last repetition's two files.
    "$PY" - "$OUT/dump-ll-$mname.h5" "$OUT/dump-peer-$mname.h5" "$OUT/dump-check-$mname.json" <<'EOF'
import json, sys
import h5py
import numpy as np
a, b, out = sys.argv[1:]
with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
    x, y = fa["acts/hook_resid_post"], fb["acts/hook_resid_post"]
    L, n, d = x.shape
    res = {"shape_layerlab": list(x.shape), "shape_peer": list(y.shape),
           "tokens_equal": bool(np.array_equal(fa["sequences/tokens"][:], fb["sequences/tokens"][:])),
           "offsets_equal": bool(np.array_equal(fa["sequences/offsets"][:], fb["sequences/offsets"][:]))}
    rng = np.random.default_rng(0)
    rows = np.unique(np.concatenate([np.arange(min(n, 256)), np.arange(max(0, n - 256), n),
                                     rng.choice(n, size=min(n, 512), replace=False)]))
    diffs = []
    for l in range(L - 1):
        xa, ya = x[l][rows], y[l][rows]   # y[l] is HF hidden_states[l + 1]
        diffs.append(float(np.max(np.abs(xa - ya))))
    res["rows_checked"] = int(rows.size)
    res["layers_checked"] = L - 1
    res["max_abs_diff_per_layer"] = diffs
    res["max_abs_diff"] = max(diffs) if diffs else 0.0
    res["ok"] = bool(list(x.shape) == list(y.shape) and res["tokens_equal"] and res["max_abs_diff"] < 1e-4)
json.dump(res, open(out, "w"), indent=1)
print("  check: layerlab hook_resid_post layers 0..%d vs HF hidden_states[1..%d] on %d rows: max |diff| %.3g, "
      "shapes %s / %s, tokens equal %s -> %s" % (L - 2, L - 1, res["rows_checked"], res["max_abs_diff"],
      res["shape_layerlab"], res["shape_peer"], res["tokens_equal"], "OK" if res["ok"] else "MISMATCH"),
      file=sys.stderr)
EOF
    [ "${KEEP:-0}" = 1 ] || rm -f "$OUT/dump-peer-$mname.h5"
done

# 5. The writer: five d-wide points vs one (same forward passes), --layers 0, gzip, bf16.
FIX_LAST=$(($("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1] + "/config.json"))["num_hidden_layers"])' "$FIX_MODEL") - 1))
echo "== the writer (fixture model): 5 points vs 1, --layers $FIX_LAST only, gzip, bf16" >&2
FIVE=hook_resid_pre,hook_resid_mid,hook_attn_out,hook_mlp_out,hook_resid_post
for rep in $(seq 1 "$REPS"); do
    ll_run points5 fixture "$FIX_MODEL" "$OUT/dump-fixture.jsonl" "$rep" "${penv[@]}" -- --points "$FIVE"
    ll_run lastlayer fixture "$FIX_MODEL" "$OUT/dump-fixture.jsonl" "$rep" "${penv[@]}" -- --layers "$FIX_LAST"
done
ll_run gzip fixture "$FIX_MODEL" "$OUT/dump-fixture.jsonl" 1 "${penv[@]}" -- --compress gzip
ll_run bf16 fixture "$FIX_MODEL" "$OUT/dump-fixture.jsonl" 1 "${penv[@]}" -- --dtype bf16
ll_run gzip 30m "$M30_MODEL" "$OUT/dump-30m.jsonl" 1 "${penv[@]}" -- --compress gzip
ll_run bf16 30m "$M30_MODEL" "$OUT/dump-30m.jsonl" 1 "${penv[@]}" -- --dtype bf16

# 6. Diagnostic: the default (spinning) OpenMP wait policy, one run each side.
if [ "$DIAG_N" -gt 0 ]; then
    echo "== diagnostic: default OMP_WAIT_POLICY, first $DIAG_N fixture prompts" >&2
    ll_run diag-spin fixture "$FIX_MODEL" "$OUT/dump-diag.jsonl" 1 -u OMP_WAIT_POLICY --
    peer_run diag-spin fixture "$FIX_MODEL" "$OUT/dump-diag.jsonl" 1 -u OMP_WAIT_POLICY
    ll_run diag-passive fixture "$FIX_MODEL" "$OUT/dump-diag.jsonl" 1 OMP_WAIT_POLICY=passive --
    peer_run diag-passive fixture "$FIX_MODEL" "$OUT/dump-diag.jsonl" 1 OMP_WAIT_POLICY=passive
    ll_run diag-spin-1thread fixture "$FIX_MODEL" "$OUT/dump-diag.jsonl" 1 -u OMP_WAIT_POLICY -- --threads 1
fi
[ "${KEEP:-0}" = 1 ] || rm -f "$OUT"/dump-ll-*.h5 "$OUT/dump-peer-fixture.h5"

# 7. The disk: dd of the size of the 30M dump, to the disk and to the page cache.
DD_MB="$("$PY" -c 'import sys,csv; r=[x for x in csv.DictReader(open(sys.argv[1]), delimiter="\t") if x["model"]=="30m" and x["label"]=="main"]; print(max(64, int(float(r[0]["mb"]) / 1.048576)))' "$RUNS")"
echo "== disk: dd ${DD_MB} MiB to $OUT/" >&2
dd_rate() {  # prints MB/s
    local t0 t1
    rm -f "$OUT/dump-dd.tmp"
    sync
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$OUT/dump-dd.tmp" bs=1M count="$DD_MB" "$@" status=none
    t1=$(date +%s.%N)
    rm -f "$OUT/dump-dd.tmp"
    "$PY" -c 'import sys; print("%.1f" % (int(sys.argv[1]) * 1.048576 / (float(sys.argv[3]) - float(sys.argv[2]))))' \
        "$DD_MB" "$t0" "$t1"
}
DD_SYNC=()
DD_CACHE=()
for rep in $(seq 1 "$REPS"); do
    DD_SYNC+=("$(dd_rate conv=fdatasync)")
    DD_CACHE+=("$(dd_rate)")
done
echo "  dd conv=fdatasync: ${DD_SYNC[*]} MB/s; page cache: ${DD_CACHE[*]} MB/s" >&2
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
T_BENCH=$(($(date +%s) - T_BENCH0))

# 8. The report.
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
FS="$(df -PT "$OUT" | awk 'NR==2 {print $2 " on " $1}')"
LLV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
export CPU FS LLV LOAD_BEFORE LOAD_AFTER THREADS REPS POLICY BATCH MIN_LEN MAX_LEN T_BENCH
DDS="${DD_SYNC[*]}"
DDC="${DD_CACHE[*]}"
export DD_MB DDS DDC
"$PY" - "$OUT" <<'EOF'
import csv, json, os, statistics, sys

out = sys.argv[1]
E = os.environ
runs = list(csv.DictReader(open(os.path.join(out, "dump-runs.tsv")), delimiter="\t"))
peer_meta = json.load(open(os.path.join(out, "dump-peer-run.json")))
med = statistics.median


def pick(label, model, side):
    r = [x for x in runs if x["label"] == label and x["model"] == model and x["side"] == side]
    if not r:
        return None
    s = [float(x["seconds"]) for x in r]
    w = [float(x["wall_seconds"]) for x in r]
    rows, mb = int(r[0]["rows"]), float(r[0]["mb"])
    return {"n": len(r), "seconds": med(s), "all_seconds": s, "wall_seconds": med(w), "rows": rows, "mb": mb,
            "tok_s": rows / med(s), "mb_s": mb / med(s), "wall_tok_s": rows / med(w)}


dd_sync = [float(x) for x in E["DDS"].split()]
dd_cache = [float(x) for x in E["DDC"].split()]
disk, cache = med(dd_sync), med(dd_cache)
models = {"fixture": ("test/fixtures/llama_gqa", "dump-fixture.jsonl"), "30m": ("bench-out/model-30m", "dump-30m.jsonl")}
res = {"threads": int(E["THREADS"]), "reps": int(E["REPS"]), "omp_wait_policy": E["POLICY"],
       "batch_tokens": int(E["BATCH"]), "disk_fdatasync_mb_s": disk, "disk_fdatasync_all": dd_sync,
       "page_cache_mb_s": cache, "page_cache_all": dd_cache, "cpu": E["CPU"], "fs": E["FS"],
       "load_before": E["LOAD_BEFORE"], "load_after": E["LOAD_AFTER"], "bench_seconds": int(E["T_BENCH"]),
       "layerlab_commit": E["LLV"], "peer": {k: peer_meta[k] for k in ("torch", "transformers", "h5py", "hdf5",
                                                                       "attn_implementation")},
       "models": {}}
for m, (path, pf) in models.items():
    cfg = json.load(open(os.path.join(path, "config.json")))
    n_prompts = sum(1 for _ in open(os.path.join(out, pf)))
    ll, pe = pick("main", m, "layerlab"), pick("main", m, "peer")
    chk = json.load(open(os.path.join(out, "dump-check-%s.json" % m)))
    res["models"][m] = {"path": path, "layers": cfg["num_hidden_layers"], "d_model": cfg["hidden_size"],
                        "prompts": n_prompts, "layerlab": ll, "peer": pe, "ratio": pe["seconds"] / ll["seconds"],
                        "check": chk, "gzip": pick("gzip", m, "layerlab"), "bf16": pick("bf16", m, "layerlab")}
one, five, l0 = pick("main", "fixture", "layerlab"), pick("points5", "fixture", "layerlab"), pick("lastlayer", "fixture", "layerlab")
extra_s, extra_mb = five["seconds"] - one["seconds"], five["mb"] - one["mb"]
res["writer"] = {"one_point": one, "five_points": five, "last_layer_only": l0, "extra_mb": extra_mb, "extra_seconds": extra_s,
                 "marginal_mb_s": (extra_mb / extra_s) if extra_s > 0 else None,
                 "marginal_last_mb_s": ((one["mb"] - l0["mb"]) / (one["seconds"] - l0["seconds"]))
                 if one["seconds"] > l0["seconds"] else None}
# the slower of the two estimates (the larger cost per MB); None when neither shows a cost
_r = [x for x in (res["writer"]["marginal_mb_s"], res["writer"]["marginal_last_mb_s"]) if x]
res["writer"]["writer_mb_s"] = min(_r) if _r else None
diag = {k: pick(k, "fixture", s) for k, s in (("diag-spin", "layerlab"), ("diag-passive", "layerlab"),
                                               ("diag-spin-1thread", "layerlab"))}
diag.update({k + "-peer": pick(k, "fixture", "peer") for k in ("diag-spin", "diag-passive")})
res["diag"] = diag
json.dump(res, open(os.path.join(out, "dump.json"), "w"), indent=1)

W = res["writer"]
mrate = W["writer_mb_s"]


def share(m):
    """The writer's share of a run, from the writer's marginal cost per MB measured above."""
    if not mrate:
        return 0.0
    r = res["models"][m]["layerlab"]
    return min(1.0, r["mb"] / mrate / r["seconds"])


rows = []
for m in ("fixture", "30m"):
    r = res["models"][m]
    ll, pe = r["layerlab"], r["peer"]
    rows.append(("%s (%d layers, d %d)" % (m, r["layers"], r["d_model"]), "%d" % r["prompts"], "%d" % ll["rows"],
                 "%.1f" % ll["mb"], "%.0f" % ll["tok_s"], "%.1f" % ll["mb_s"], "%.0f" % pe["tok_s"], "%.1f" % pe["mb_s"],
                 "%.2fx" % r["ratio"], "%.0f / %.0f" % (disk, cache), "%.0f%%" % (100 * share(m)),
                 "%.2g %s" % (r["check"]["max_abs_diff"], "ok" if r["check"]["ok"] else "MISMATCH")))
head = ("model", "prompts", "tokens", "MB", "layerlab tok/s", "layerlab MB/s", "peer tok/s", "peer MB/s",
        "ratio", "disk / page cache MB/s", "writer share", "max abs diff")
w = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
print()
print("== activation dump, %s threads, OMP_WAIT_POLICY=%s, median of %s reps; ratio = peer seconds / layerlab seconds"
      % (E["THREADS"], E["POLICY"], E["REPS"]))
for x in [head] + rows:
    print("  ".join("%*s" % (w[i], x[i]) for i in range(len(x))))
print("writer: 5 points %.1f MB in %.2f s vs 1 point %.1f MB in %.2f s: marginal %s; last layer only: %.1f MB in %.2f s"
      % (five["mb"], five["seconds"], one["mb"], one["seconds"],
         ("%.0f MB/s" % mrate) if mrate else "none measurable (the extra bytes cost no time)", l0["mb"], l0["seconds"]))

md = ["# layerlab activation-dump benchmark\n"]
md.append("Generated by `make bench-dump` (tools/bench/dump.sh) in %d s. `layerlab dump` against a Python script "
          "doing the same with Hugging Face transformers (`output_hidden_states=True`) and h5py "
          "(tools/bench/dump_peer.py), in the same run, alternating repetitions. Both write `hook_resid_post` of every "
          "layer at every position as float32 [layers][rows][d] chunked ~1 MiB. Figures: median of %s repetitions; "
          "seconds from reading the prompts to the closed file, model load excluded on both sides (wall time "
          "with the load is in dump.json).\n" % (res["bench_seconds"], E["REPS"]))
md.append("## Setup\n")
md.append("- CPU: %s, %s threads for both (`--threads` / `torch.set_num_threads`), OMP_WAIT_POLICY=%s for both "
          "(see the diagnostic below); load average before / after: %s / %s"
          % (E["CPU"], E["THREADS"], E["POLICY"], E["LOAD_BEFORE"], E["LOAD_AFTER"]))
md.append("- prompts: token ids (no tokenizer on either side), lengths uniform %s..%s, tools/bench/make_dump_prompts.py; "
          "token budget %s per forward pass on both sides (layerlab `--batch-tokens`; the peer right-pads consecutive "
          "prompts into [B, T] with an attention mask while B x T <= budget)" % (E["MIN_LEN"], E["MAX_LEN"], E["BATCH"]))
md.append("- peer: torch %s, transformers %s (attention `%s`), h5py %s (HDF5 %s)"
          % (peer_meta["torch"], peer_meta["transformers"], peer_meta["attn_implementation"], peer_meta["h5py"], peer_meta["hdf5"]))
md.append("- layerlab commit %s; output filesystem %s" % (E["LLV"], E["FS"]))
md.append("\n## Results\n")
md.append("| " + " | ".join(head) + " |")
md.append("|" + "---|" * len(head))
for x in rows:
    md.append("| " + " | ".join(x) + " |")
md.append("")
md.append("- ratio: peer seconds / layerlab seconds (> 1: layerlab faster). Goal: > 1.")
md.append("- disk: `dd` of %s MiB into bench-out/ with conv=fdatasync (the device) / without (the page cache, where both "
          "writers' data lands first: neither syncs), median of %s" % (int(E.get("DD_MB", "0") or 0) or "the 30M dump's size",
                                                                     E["REPS"]))
md.append("- writer share: the time the writer adds to a run, estimated from its marginal cost: the fixture model "
          "dumping five d-wide points (%.1f MB) instead of one (%.1f MB) took %.2f s instead of %.2f s, so writing "
          "costs %s; from the last-layer-only run: %s; the slower estimate gives the share = run MB / that rate / run seconds (0 when neither shows a cost). Storing only the last of the %d layers (same forward passes, 1/%d of the bytes): %.2f s."
          % (five["mb"], one["mb"], five["seconds"], one["seconds"],
             ("%.0f MB/s marginal" % W["marginal_mb_s"]) if W["marginal_mb_s"] else "no measurable time",
             ("%.0f MB/s marginal" % W["marginal_last_mb_s"]) if W["marginal_last_mb_s"] else "no measurable time",
             res["models"]["fixture"]["layers"], res["models"]["fixture"]["layers"], l0["seconds"]))
md.append("- max abs diff: layerlab's `hook_resid_post` of blocks 0..L-2 against HF `hidden_states[1..L-1]`, on %d "
          "rows (first 256, last 256, 512 random) of the last repetition's files; HF's last hidden state is after "
          "the final norm (layerlab's `ln_final.hook_normalized`), so it is not compared. Goal: < 1e-4."
          % res["models"]["fixture"]["check"]["rows_checked"])
md.append("\n## layerlab variants (1 run each)\n")
md.append("| model | variant | MB | seconds | tok/s | MB/s (of the variant's bytes) |")
md.append("|---|---|---:|---:|---:|---:|")
for m in ("fixture", "30m"):
    for v in ("gzip", "bf16"):
        x = res["models"][m][v]
        md.append("| %s | %s | %.1f | %.2f | %.0f | %.1f |" % (m, "--compress gzip" if v == "gzip" else "--dtype bf16",
                                                          x["mb"], x["seconds"], x["tok_s"], x["mb_s"]))
md.append("| fixture | --points (5 points) | %.1f | %.2f | %.0f | %.1f |" % (five["mb"], five["seconds"], five["tok_s"], five["mb_s"]))
md.append("| fixture | --layers %d (last only) | %.1f | %.2f | %.0f | %.1f |" % (res["models"]["fixture"]["layers"] - 1, l0["mb"], l0["seconds"], l0["tok_s"], l0["mb_s"]))
md.append("\n(MB for gzip is the uncompressed size layerlab reports.)")
if diag["diag-spin"]:
    md.append("\n## Diagnostic: OpenMP wait policy (fixture model, %d tokens, 1 run each)\n" % diag["diag-spin"]["rows"])
    md.append("| run | layerlab s | layerlab tok/s | peer s | peer tok/s |")
    md.append("|---|---:|---:|---:|---:|")
    for k, name in (("diag-spin", "default policy (spin), %s threads" % E["THREADS"]),
                    ("diag-passive", "OMP_WAIT_POLICY=passive, %s threads" % E["THREADS"])):
        a, b = diag[k], diag[k + "-peer"]
        md.append("| %s | %.2f | %.0f | %.2f | %.0f |" % (name, a["seconds"], a["tok_s"], b["seconds"], b["tok_s"]))
    a = diag["diag-spin-1thread"]
    md.append("| default policy, layerlab --threads 1 | %.2f | %.0f | | |" % (a["seconds"], a["tok_s"]))
md.append("\nRaw figures: dump-runs.tsv (every run), dump.json, dump-check-*.json in this directory.")
open(os.path.join(out, "dump-report.md"), "w").write("\n".join(md) + "\n")
print("wrote %s/dump-report.md and %s/dump.json" % (out, out))
EOF
