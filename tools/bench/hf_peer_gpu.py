#!/usr/bin/env python3
"""The Hugging Face transformers peer of tools/bench/ll_bench_gpu.c, on the same GPU.

A LlamaForCausalLM of the same 7B shape (32 layers, d 4096, 32 heads, d_ff 11008,
vocab 32000), random bf16 weights made on the device, attn_implementation="sdpa",
torch.inference_mode. Same workloads and token ids as the C benchmark:

  prefill  --seqs x --len tokens (equal lengths: no mask), no KV cache, logits at the
           last position only (the base model, then lm_head on those rows).
  decode   a --prompt token prompt into past_key_values (untimed), then --steps single
           token steps at batch 1, timed.
  record   the same decode with a forward hook on every decoder layer copying the last
           position of its output (= blocks.{l}.hook_resid_post) to a pinned host
           buffer, non-blocking.

Timing: torch.cuda.synchronize() then a wall clock around each measured region;
median of --reps after one warm-up. Prints `key value` lines (prefixed hf_) and writes
them to --out.
"""

import argparse
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

transformers.logging.set_verbosity_error()


def token_id(s, i, vocab):
    """Same formula as ll_token_id() in ll_bench_gpu.c."""
    return (s * 1000003 + i * 7919 + 12345) % (vocab - 3) + 3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--len", type=int, default=2048)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = open(a.out, "w") if a.out else None

    def put(k, v):
        print(f"hf_{k:<25} {v:.6g}", flush=True)
        if out:
            out.write(f"hf_{k} {v:.6g}\n")

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=a.layers,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                      max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False)
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:  # newer transformers: set through the constructor or the default (sdpa)
        pass
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    print(f"hf transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}, attention {model.config._attn_implementation}", flush=True)
    V = cfg.vocab_size

    def timed(fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        ids = torch.tensor([[token_id(s, i, V) for i in range(a.len)] for s in range(a.seqs)], device="cuda")

        def prefill():
            h = model.model(input_ids=ids, use_cache=False).last_hidden_state
            return model.lm_head(h[:, -1, :]).float()

        ts = [timed(prefill) for _ in range(a.reps + 1)][1:]
        t = statistics.median(ts)
        put("prefill_tokens", a.seqs * a.len)
        put("prefill_s", t)
        put("prefill_tok_s", a.seqs * a.len / t)

        dec_ids = [token_id(0, i, V) for i in range(a.prompt + a.steps)]
        pinned = torch.empty((a.layers, cfg.hidden_size), dtype=torch.float32, pin_memory=True)
        hooks = []

        def add_hooks():
            for li, layer in enumerate(model.model.layers):
                def hook(mod, inp, outp, li=li):
                    o = outp[0] if isinstance(outp, tuple) else outp
                    pinned[li].copy_(o[0, -1, :].float(), non_blocking=True)
                hooks.append(layer.register_forward_hook(hook))

        def decode(record):
            if record:
                add_hooks()
            p = torch.tensor([dec_ids[: a.prompt]], device="cuda")
            o = model(input_ids=p, use_cache=True)
            past = o.past_key_values
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(a.steps):
                x = torch.tensor([[dec_ids[a.prompt + i]]], device="cuda")
                o = model(input_ids=x, past_key_values=past, use_cache=True)
                past = o.past_key_values
                o.logits[:, -1, :].float().cpu()  # the C bench copies the logits to the host too
            torch.cuda.synchronize()
            for h in hooks:
                h.remove()
            hooks.clear()
            return (time.perf_counter() - t0) / a.steps

        decode(False)
        td, tr = [], []
        for r in range(a.reps):
            if r % 2 == 0:
                td.append(decode(False))
                tr.append(decode(True))
            else:
                tr.append(decode(True))
                td.append(decode(False))
        d, rr = statistics.median(td), statistics.median(tr)
        put("decode_ms_per_token", d * 1e3)
        put("decode_tok_s", 1 / d)
        put("record_ms_per_token", rr * 1e3)
        put("record_overhead", rr / d - 1)
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
