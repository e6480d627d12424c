#!/usr/bin/env python3
"""The PyTorch peer of tools/bench/ll_bench_cpu.c: the same workloads with Hugging
Face transformers on the CPU, same thread count, same repetitions.

  prefill  --seqs x --len tokens as one padded-free batch (all sequences have the same
           length, so no attention mask), logits at the last position only
           (num_logits_to_keep=1 where this transformers knows it), no KV cache.
  decode   a --prompt token prompt into past_key_values (untimed), then --steps
           single-token greedy steps (argmax included), timed.
  recording  the same two while a forward hook on every decoder layer copies the
           last position of its output (= blocks.{l}.hook_resid_post) into a
           preallocated buffer.

Runs under torch.inference_mode with attn_implementation="sdpa" when this torch
has it (torch >= 2.1), else "eager". Prints a table and writes --json; with
--layerlab-logits FILE it also reports the largest difference between its prefill
logits and layerlab's. Used by tools/bench/run.sh.
"""

import argparse
import inspect
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()


def token_id(s, i, vocab):
    """Same formula as ll_token_id() in ll_bench_cpu.c."""
    return (s * 1000003 + i * 7919 + 12345) % (vocab - 3) + 3


def stats(v):
    return {
        "mean": statistics.fmean(v),
        "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        "min": min(v),
        "median": statistics.median(v),
        "all": list(v),
    }


def load(path):
    last = None
    for impl in ("sdpa", "eager"):
        try:
            m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation=impl)
            return m.eval(), impl
        except (ValueError, ImportError) as e:  # sdpa needs torch >= 2.1.1
            last = e
    raise last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--len", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--json")
    ap.add_argument("--layerlab-logits")
    a = ap.parse_args()

    threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    model, impl = load(a.model)
    cfg = model.config
    V, L, d = cfg.vocab_size, cfg.num_hidden_layers, cfg.hidden_size
    H = cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or d // H
    kvh = cfg.num_key_value_heads
    ff = cfg.intermediate_size
    n_params = sum(p.numel() for p in model.parameters())
    tied = bool(getattr(cfg, "tie_word_embeddings", False))

    keep = "num_logits_to_keep" in inspect.signature(model.forward).parameters
    kw_last = {"num_logits_to_keep": 1} if keep else {}

    pf_ids = torch.tensor([[token_id(s, i, V) for i in range(a.len)] for s in range(a.seqs)], dtype=torch.long)
    prompt_ids = torch.tensor([[token_id(0, i, V) for i in range(a.prompt)]], dtype=torch.long)

    # Recording: hook_resid_post of every layer at the last position, copied out.
    rec_buf = torch.empty(a.steps + 1, L, max(a.seqs, 1), d)
    rec_state = {"step": 0, "on": False}

    def make_hook(layer):
        def hook(mod, inp, out):
            if rec_state["on"]:
                h = out[0] if isinstance(out, tuple) else out
                b = h.shape[0]
                rec_buf[rec_state["step"], layer, :b].copy_(h[:, -1, :])
        return hook

    for l, layer in enumerate(model.model.layers):
        layer.register_forward_hook(make_hook(l))

    def run_prefill(record):
        rec_state["on"] = record
        rec_state["step"] = 0
        t0 = time.perf_counter()
        out = model(input_ids=pf_ids, use_cache=False, **kw_last)
        logits = out.logits[:, -1, :]
        t = time.perf_counter() - t0
        return t, logits

    def run_decode(record):
        rec_state["on"] = record
        rec_state["step"] = 0
        out = model(input_ids=prompt_ids, use_cache=True, **kw_last)
        past = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        gen = [int(nxt)]
        t0 = time.perf_counter()
        for i in range(a.steps):
            rec_state["step"] = i + 1
            out = model(input_ids=nxt, past_key_values=past, use_cache=True, **kw_last)
            past = out.past_key_values
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            gen.append(int(nxt))
        t = time.perf_counter() - t0
        return t, gen

    n = a.warmup + a.reps
    pf, pfr, dc, dcr = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    logits = None
    gen = None
    mismatch = False
    print("hf_peer: %s, torch %s, transformers %s, attn %s, %d threads, %d warm-up + %d reps"
          % (a.model, torch.__version__, transformers.__version__, impl, threads, a.warmup, a.reps), file=sys.stderr)
    with torch.inference_mode():
        for r in range(n):
            if r % 2 == 0:
                pf[r], logits = run_prefill(False)
                pfr[r], _ = run_prefill(True)
                dc[r], gen = run_decode(False)
                dcr[r], g2 = run_decode(True)
            else:
                pfr[r], _ = run_prefill(True)
                pf[r], logits = run_prefill(False)
                dcr[r], g2 = run_decode(True)
                dc[r], gen = run_decode(False)
            mismatch |= g2 != gen
            print("  %s %d: prefill %.3f s (rec %.3f s), decode %.3f s (rec %.3f s)"
                  % ("warm-up" if r < a.warmup else "rep", r + 1 if r < a.warmup else r - a.warmup + 1,
                     pf[r], pfr[r], dc[r], dcr[r]), file=sys.stderr)

    T = a.seqs * a.len
    layer_mm = d * H * hd + 2 * d * kvh * hd + H * hd * d + 3 * d * ff
    head_mm = V * d
    pf_mm_flops = 2.0 * layer_mm * L * T + 2.0 * head_mm * a.seqs
    pf_attn_flops = float(L * a.seqs * H * 4 * hd) * (a.len * (a.len + 1) / 2.0)
    pf_flops = pf_mm_flops + pf_attn_flops
    dec_weight_bytes = 4.0 * (layer_mm * L + head_mm + (2 * L + 1) * d + d)

    t = {k: stats(v[a.warmup:]) for k, v in
         (("prefill_s", pf), ("prefill_rec_s", pfr), ("decode_s", dc), ("decode_rec_s", dcr))}
    rate = lambda v, work: stats([work / x for x in v[a.warmup:]])  # noqa: E731
    res = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": impl,
        "num_logits_to_keep": keep,
        "model": a.model,
        "n_params": n_params,
        "tied": tied,
        "threads": threads,
        "warmup": a.warmup, "reps": a.reps, "seqs": a.seqs, "len": a.len, "prompt": a.prompt, "steps": a.steps,
        "prefill_flops": pf_flops,
        "prefill_attn_flops": pf_attn_flops,
        "decode_weight_bytes": dec_weight_bytes,
        **t,
        "prefill_tok_s": rate(pf, T),
        "prefill_rec_tok_s": rate(pfr, T),
        "decode_tok_s": rate(dc, a.steps),
        "decode_rec_tok_s": rate(dcr, a.steps),
    }
    for k in ("prefill_tok_s", "prefill_rec_tok_s", "decode_tok_s", "decode_rec_tok_s"):
        del res[k]["all"]
    res["decode_ms_per_token"] = 1e3 * t["decode_s"]["mean"] / a.steps
    res["decode_rec_ms_per_token"] = 1e3 * t["decode_rec_s"]["mean"] / a.steps
    res["prefill_gflop_s"] = pf_flops / t["prefill_s"]["mean"] * 1e-9
    res["prefill_rec_gflop_s"] = pf_flops / t["prefill_rec_s"]["mean"] * 1e-9
    res["decode_gb_s"] = dec_weight_bytes * a.steps / t["decode_s"]["mean"] * 1e-9
    res["decode_rec_gb_s"] = dec_weight_bytes * a.steps / t["decode_rec_s"]["mean"] * 1e-9
    res["prefill_rec_overhead_pct"] = 100.0 * (t["prefill_rec_s"]["mean"] / t["prefill_s"]["mean"] - 1)
    res["decode_rec_overhead_pct"] = 100.0 * (t["decode_rec_s"]["mean"] / t["decode_s"]["mean"] - 1)
    res["recording_changed_tokens"] = mismatch
    res["decode_tokens"] = gen

    if a.layerlab_logits and os.path.exists(a.layerlab_logits):
        ll = np.fromfile(a.layerlab_logits, dtype=np.float32)
        if ll.size == a.seqs * V:
            ref = logits.float().numpy().reshape(-1)
            res["prefill_logits_max_abs_diff"] = float(np.max(np.abs(ll - ref)))
            res["prefill_logits_max_abs"] = float(np.max(np.abs(ref)))

    print("PyTorch %s / transformers %s (%s attention), %.2fM parameters, %d threads, %d reps"
          % (torch.__version__, transformers.__version__, impl, n_params * 1e-6, threads, a.reps))
    print("%-28s %18s %18s %10s" % ("", "plain", "recording", "overhead"))
    r = res
    print("%-28s %10.1f +- %5.1f %10.1f +- %5.1f %9.1f%%" % (
        "prefill tok/s", r["prefill_tok_s"]["mean"], r["prefill_tok_s"]["std"], r["prefill_rec_tok_s"]["mean"],
        r["prefill_rec_tok_s"]["std"], r["prefill_rec_overhead_pct"]))
    print("%-28s %10.2f %21.2f" % ("prefill GFLOP/s", r["prefill_gflop_s"], r["prefill_rec_gflop_s"]))
    print("%-28s %10.1f +- %5.1f %10.1f +- %5.1f %9.1f%%" % (
        "decode tok/s", r["decode_tok_s"]["mean"], r["decode_tok_s"]["std"], r["decode_rec_tok_s"]["mean"],
        r["decode_rec_tok_s"]["std"], r["decode_rec_overhead_pct"]))
    print("%-28s %10.3f %21.3f" % ("decode ms/token", r["decode_ms_per_token"], r["decode_rec_ms_per_token"]))
    print("%-28s %10.2f %21.2f" % ("decode GB/s (fp32 weights)", r["decode_gb_s"], r["decode_rec_gb_s"]))
    print("recording overhead from the fastest repetitions: prefill %+.1f%%, decode %+.1f%%" % (
        100.0 * (t["prefill_rec_s"]["min"] / t["prefill_s"]["min"] - 1),
        100.0 * (t["decode_rec_s"]["min"] / t["decode_s"]["min"] - 1)))
    if "prefill_logits_max_abs_diff" in res:
        print("prefill logits vs layerlab: max |diff| %.3g (max |logit| %.3g)"
              % (res["prefill_logits_max_abs_diff"], res["prefill_logits_max_abs"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
