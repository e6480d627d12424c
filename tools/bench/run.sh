#!/usr/bin/env bash
# make bench: layerlab against PyTorch / Hugging Face transformers on the CPU.
#
#   bash tools/bench/run.sh        (normally through `make bench`)
#
# Environment: THREADS (default nproc), REPS (5), WARMUP (1), SEQS (8), LEN (256),
# PROMPT (256), STEPS (64), PASSIVE (1: also run the second pass below; 0: skip it).
#
# Pass "default" runs both programs as a user would, in the default environment.
# Pass "passive" runs both again with OMP_WAIT_POLICY=passive. PyTorch uses libgomp
# for its own loops and Debian's default (pthreads) OpenBLAS for matrix products, so
# idle libgomp workers spin on the cores the BLAS threads need; the second pass shows
# the peer without that interference. layerlab links the OpenMP flavour of OpenBLAS
# (one thread team for everything), so for it passive only adds wake-up latency.
#
# Everything goes to bench-out/ (git-ignored):
#   model-30m/                      the random Llama-shaped model (made once, cached)
#   layerlab[-passive].json/.tsv    layerlab's numbers (tools/bench/ll_bench_cpu.c)
#   pytorch[-passive].json          the peer's numbers (tools/bench/hf_peer.py)
#   summary.tsv, report.md          the comparison
# The Python side is the pinned fixtures virtualenv (.venv-fixtures, made by
# tools/fixtures-env.sh --setup-only). The bench program is compiled here against
# the already built library with the Makefile's own compiler flags and libraries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-$(nproc)}"
REPS="${REPS:-5}"
WARMUP="${WARMUP:-1}"
SEQS="${SEQS:-8}"
LEN="${LEN:-256}"
PROMPT="${PROMPT:-256}"
STEPS="${STEPS:-64}"
OUT=bench-out
MODEL="$OUT/model-30m"
mkdir -p "$OUT"

# 1. Python environment (the fixtures one).
bash tools/fixtures-env.sh --setup-only
PY="$ROOT/.venv-fixtures/bin/python"

# 2. The bench program, built like the CLI (tools/bench/build.sh).
. tools/bench/build.sh
ll_bench_build tools/bench/ll_bench_cpu.c

# 3. The model (cached).
"$PY" tools/bench/make_bench_model.py --out "$MODEL"


# 4. Both sides, one after the other, same settings; then again in the second pass.
ARGS=(--threads "$THREADS" --warmup "$WARMUP" --reps "$REPS" --seqs "$SEQS" --len "$LEN" --prompt "$PROMPT"
      --steps "$STEPS")
PASSES=(default)
[ "${PASSIVE:-1}" = 0 ] || PASSES+=(passive)
rm -f "$OUT"/layerlab*.json "$OUT"/pytorch*.json
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for pass in "${PASSES[@]}"; do
    sfx=""
    envs=()
    if [ "$pass" = passive ]; then
        sfx="-passive"
        envs=(OMP_WAIT_POLICY=passive)
    fi
    echo "== layerlab, pass $pass ($THREADS threads, $REPS reps)"
    env "${envs[@]}" "$BIN" "$MODEL" "${ARGS[@]}" --json "$OUT/layerlab$sfx.json" --tsv "$OUT/layerlab$sfx.tsv" \
        --logits "$OUT/layerlab-prefill-logits.f32" | tee "$OUT/layerlab$sfx.txt"
    echo "== PyTorch, pass $pass ($THREADS threads, $REPS reps)"
    env "${envs[@]}" "$PY" tools/bench/hf_peer.py "$MODEL" "${ARGS[@]}" --json "$OUT/pytorch$sfx.json" \
        --layerlab-logits "$OUT/layerlab-prefill-logits.f32" | tee "$OUT/pytorch$sfx.txt"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# 5. The comparison.
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
BLAS="$(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || echo '?')"
CCV="$(${CC_:-cc} --version | head -1)"
export CPU BLAS CCV LOAD_BEFORE LOAD_AFTER THREADS
"$PY" - "$OUT" "${PASSES[@]}" <<'EOF'
import json, os, sys

out, passes = sys.argv[1], sys.argv[2:]
stamp = json.load(open(os.path.join(out, "model-30m", "bench-stamp.json")))
cfg = json.load(open(os.path.join(out, "model-30m", "config.json")))


def ms(d):
    return "%.1f ± %.1f" % (d["mean"], d["std"])


def ratio(a, b):
    return "%.2fx" % (a / b) if b else "-"


def summary(j):
    """Medians resist the odd repetition slowed down by other work on the machine."""
    T = j["seqs"] * j["len"]
    med = lambda k: j[k]["median"]  # noqa: E731
    return {
        "pf": T / med("prefill_s"), "pfr": T / med("prefill_rec_s"),
        "dc": j["steps"] / med("decode_s"), "dcr": j["steps"] / med("decode_rec_s"),
        # overhead from the fastest repetitions: the extra work of recording is deterministic,
        # the noise from the machine only ever adds time
        "pf_ovh": 100.0 * (j["prefill_rec_s"]["min"] / j["prefill_s"]["min"] - 1),
        "dc_ovh": 100.0 * (j["decode_rec_s"]["min"] / j["decode_s"]["min"] - 1),
        "gflops": j["prefill_flops"] / med("prefill_s") * 1e-9,
        "gbs": j["decode_weight_bytes"] * j["steps"] / med("decode_s") * 1e-9,
        "ms": 1e3 * med("decode_s") / j["steps"],
    }


def table(ll, pt):
    L, P = summary(ll), summary(pt)
    r = []  # (quantity, layerlab, pytorch, ratio): median, then (mean ± std)
    r.append(("prefill tok/s", "%.1f (%s)" % (L["pf"], ms(ll["prefill_tok_s"])),
              "%.1f (%s)" % (P["pf"], ms(pt["prefill_tok_s"])), ratio(L["pf"], P["pf"])))
    r.append(("prefill tok/s, recording", "%.1f (%s)" % (L["pfr"], ms(ll["prefill_rec_tok_s"])),
              "%.1f (%s)" % (P["pfr"], ms(pt["prefill_rec_tok_s"])), ratio(L["pfr"], P["pfr"])))
    r.append(("prefill recording overhead", "%+.1f%% (%+.1f%%)" % (L["pf_ovh"], ll["prefill_rec_overhead_pct"]),
              "%+.1f%% (%+.1f%%)" % (P["pf_ovh"], pt["prefill_rec_overhead_pct"]), "goal < 5%"))
    r.append(("prefill GFLOP/s", "%.1f" % L["gflops"], "%.1f" % P["gflops"], ratio(L["gflops"], P["gflops"])))
    r.append(("decode tok/s", "%.1f (%s)" % (L["dc"], ms(ll["decode_tok_s"])),
              "%.1f (%s)" % (P["dc"], ms(pt["decode_tok_s"])), ratio(L["dc"], P["dc"])))
    r.append(("decode ms/token", "%.2f" % L["ms"], "%.2f" % P["ms"], ratio(P["ms"], L["ms"])))
    r.append(("decode tok/s, recording", "%.1f (%s)" % (L["dcr"], ms(ll["decode_rec_tok_s"])),
              "%.1f (%s)" % (P["dcr"], ms(pt["decode_rec_tok_s"])), ratio(L["dcr"], P["dcr"])))
    r.append(("decode recording overhead", "%+.1f%% (%+.1f%%)" % (L["dc_ovh"], ll["decode_rec_overhead_pct"]),
              "%+.1f%% (%+.1f%%)" % (P["dc_ovh"], pt["decode_rec_overhead_pct"]), "goal < 5%"))
    r.append(("decode GB/s (fp32 weights)", "%.2f" % L["gbs"], "%.2f" % P["gbs"], ratio(L["gbs"], P["gbs"])))
    # Fractions of what this machine can do, both measured by ll_bench_cpu in the same pass.
    pk_f, pk_b = ll.get("ceiling_sgemm_gflop_s", 0), ll.get("ceiling_stream_gb_s", 0)
    if pk_f and pk_b:
        r.append(("prefill, %% of measured sgemm %.0f GFLOP/s" % pk_f, "%.0f%%" % (100 * L["gflops"] / pk_f),
                  "%.0f%%" % (100 * P["gflops"] / pk_f), ""))
        r.append(("decode, %% of measured STREAM triad %.1f GB/s" % pk_b, "%.0f%%" % (100 * L["gbs"] / pk_b),
                  "%.0f%%" % (100 * P["gbs"] / pk_b), ""))
    goals = (L["pf"] >= P["pf"], L["dc"] >= P["dc"], max(L["pf_ovh"], L["dc_ovh"]) < 5.0)
    return r, goals


yes = lambda b: "yes" if b else "NO"  # noqa: E731
titles = {"default": "default environment", "passive": "both with OMP_WAIT_POLICY=passive"}
results = []
for p in passes:
    sfx = "" if p == "default" else "-" + p
    ll = json.load(open(os.path.join(out, "layerlab%s.json" % sfx)))
    pt = json.load(open(os.path.join(out, "pytorch%s.json" % sfx)))
    rows, goals = table(ll, pt)
    agree = sum(a == b for a, b in zip(ll["decode_tokens"], pt["decode_tokens"]))
    results.append((p, ll, pt, rows, goals, agree))
    w = [max(len(r[i]) for r in rows + [("", "layerlab", "PyTorch", "ratio")]) for i in range(3)]
    print()
    print("== pass %s (%s), %s threads: median over %d reps (mean ± std); ratio = layerlab / PyTorch"
          % (p, titles.get(p, p), os.environ["THREADS"], ll["reps"]))
    print("%-*s  %*s  %*s  %s" % (w[0], "", w[1], "layerlab", w[2], "PyTorch", "ratio"))
    for r in rows:
        print("%-*s  %*s  %*s  %s" % (w[0], r[0], w[1], r[1], w[2], r[2], r[3]))
    diff = pt.get("prefill_logits_max_abs_diff")
    print("greedy decode tokens agree: %d/%d; prefill logits max |diff| %s" %
          (agree, len(ll["decode_tokens"]), "%.3g" % diff if diff is not None else "n/a"))
    print("goals: layerlab >= PyTorch: prefill %s, decode %s; layerlab recording overhead < 5%%: %s"
          % tuple(yes(g) for g in goals))
print("load average before / after: %s / %s" % (os.environ["LOAD_BEFORE"], os.environ["LOAD_AFTER"]))

with open(os.path.join(out, "summary.tsv"), "w") as f:
    f.write("pass\tquantity\tlayerlab\tpytorch\tratio\n")
    for p, _, _, rows, _, _ in results:
        for r in rows:
            f.write(p + "\t" + "\t".join(r).replace("±", "+-") + "\n")

ll0, pt0 = results[0][1], results[0][2]
md = ["# layerlab CPU benchmark\n"]
md.append("Generated by `make bench` (tools/bench/run.sh). Each cell: the median over %d repetitions (after %d "
          "warm-up), then in parentheses mean ± sample standard deviation. Ratio = layerlab / PyTorch of the "
          "medians (> 1 favours layerlab). Recording overhead: fastest recording repetition vs fastest plain "
          "one (in parentheses: from the means); each repetition runs plain and recording back to back.\n" % (ll0["reps"], ll0["warmup"]))
md.append("## Setup\n")
md.append("- CPU: %s, %s threads for both (ll_set_threads / torch.set_num_threads)"
          % (os.environ["CPU"], os.environ["THREADS"]))
md.append("- load average before / after the run: %s / %s (other work on the machine skews the numbers)"
          % (os.environ["LOAD_BEFORE"], os.environ["LOAD_AFTER"]))
md.append("- layerlab: %s, OpenBLAS %s (OpenMP flavour, one libgomp team for BLAS and own loops)" % (os.environ["CCV"], os.environ["BLAS"]))
md.append("- PyTorch %s (OpenBLAS pthreads flavour, Debian's default libblas.so.3), transformers %s, attention `%s`, "
          "torch.inference_mode, num_logits_to_keep=%s"
          % (pt0["torch"], pt0["transformers"], pt0["attn_implementation"],
             "1" if pt0["num_logits_to_keep"] else "n/a"))
md.append("- model: random Llama, hidden %d, %d layers, %d heads / %d KV heads (head_dim %d), intermediate %d, "
          "vocab %d, %s LM head: %s parameters (fp32 safetensors)"
          % (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
             cfg["hidden_size"] // cfg["num_attention_heads"], cfg["intermediate_size"], cfg["vocab_size"],
             "tied" if cfg.get("tie_word_embeddings") else "untied", format(stamp["n_params"], ",")))
md.append("- prefill: %d sequences x %d tokens in one batch (layerlab: ragged batch; PyTorch: [%d, %d] tensor, "
          "no padding needed), logits at the last position only, no KV cache"
          % (ll0["seqs"], ll0["len"], ll0["seqs"], ll0["len"]))
md.append("- decode: %d-token prompt into the KV cache (untimed), then %d greedy single-token steps (argmax included)"
          % (ll0["prompt"], ll0["steps"]))
md.append("- recording: `blocks.{l}.hook_resid_post` of all %d layers at the last position, copied into a buffer "
          "(layerlab: ll_hooks_add_record + LL_POS_LAST; PyTorch: forward hooks on each decoder layer)"
          % cfg["num_hidden_layers"])
md.append("- GFLOP/s: executed fp32 work per prefill pass, %.2f GFLOP = 2 x (block matmul weights) x tokens "
          "+ 2 x (LM head) x sequences + attention (QK^T and PV over the causal triangle, %.2f GFLOP); "
          "GB/s: fp32 weight bytes read per decode token (%.1f MB) / time per token"
          % (ll0["prefill_flops"] * 1e-9, ll0["prefill_attn_flops"] * 1e-9, ll0["decode_weight_bytes"] * 1e-6))
md.append("- ceilings, measured by ll_bench_cpu in the same pass with the same threads: the best of three "
          "1536^3 sgemm calls through the same OpenBLAS (GFLOP/s), and a STREAM-style triad over 3 x 192 MiB "
          "(GB/s, two reads + one write per element); the rows '%% of measured ...' divide each side's rate by them")
md.append("- pass `default`: both as a user runs them. Pass `passive`: both with OMP_WAIT_POLICY=passive, "
          "so that idle OpenMP workers sleep instead of spinning on the cores OpenBLAS's own threads need")
for p, ll, pt, rows, goals, agree in results:
    md.append("\n## Pass `%s` (%s)\n" % (p, titles.get(p, p)))
    md.append("| | layerlab | PyTorch | ratio |")
    md.append("|---|---:|---:|---:|")
    for r in rows:
        md.append("| %s | %s | %s | %s |" % r)
    md.append("")
    diff = pt.get("prefill_logits_max_abs_diff")
    md.append("- greedy decode tokens agree: %d/%d; prefill last-position logits max |diff| %s (max |logit| %s)"
              % (agree, len(ll["decode_tokens"]), "%.3g" % diff if diff is not None else "n/a",
                 "%.3g" % pt["prefill_logits_max_abs"] if "prefill_logits_max_abs" in pt else "n/a"))
    md.append("- recording changed the generated tokens: layerlab %s, PyTorch %s"
              % (ll["recording_changed_tokens"], pt["recording_changed_tokens"]))
    md.append("- goals: layerlab at least as fast as PyTorch: prefill **%s**, decode **%s**; layerlab recording "
              "overhead under 5%%: **%s**" % tuple(yes(g) for g in goals))
md.append("\nRaw numbers: layerlab*.json, layerlab*.tsv, pytorch*.json, summary.tsv in this directory.")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("wrote %s/report.md" % out)
EOF
