#!/usr/bin/env python3
"""Reference outputs for attention knockouts (test/test_knockout.c).

Runs the tiny random Llama fixture (test/fixtures/llama_gqa) with Hugging Face
transformers' eager attention, once plainly and once with attention knockouts, and
stores the logits and attention probabilities of both runs in
test/fixtures/knockout/expected.safetensors.

A knockout is applied independently of layerlab: each decoder layer's attention gets
its own additive 4-D mask (batch, heads, query, key) in which the causal mask and the
knocked-out (query, key) entries hold the dtype minimum, so the softmax gives them
exactly 0 and renormalises the rest. No row is fully blocked here (HF would then give
a uniform row; layerlab defines such a row as attending to nothing).

The knockout list below must match KO[] in test/test_knockout.c.
Run with the pinned environment:  .venv-fixtures/bin/python tools/knockout_ref.py
(tools/fixtures-env.sh makes .venv-fixtures).
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

FIXTURE = "test/fixtures/llama_gqa"
OUT = "test/fixtures/knockout/expected.safetensors"
SEED = 20261129
LENS = (14, 9)  # sequence 0 and 1 of the batch

# (layer_lo, layer_hi, seq, head (-1 all), query indices, key indices)
KO = [
    (0, 1, 0, -1, [9, 12, 13], [2, 3, 7]),
    (2, 2, 0, 3, [13], [0, 1, 2, 3, 4, 5]),
    (1, 2, 1, -1, [5, 6, 7, 8], [1, 4]),
    (0, 0, 1, 0, [6], [6]),
]


def masks_for(seq, n, n_layers, n_heads, knock):
    """Per layer an additive [1, H, n, n] mask: causal, plus the knockouts of `seq`."""
    neg = torch.finfo(torch.float32).min
    out = []
    for layer in range(n_layers):
        m = torch.zeros(1, n_heads, n, n)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        m[:, :, causal] = neg
        if knock:
            for lo, hi, s, h, qs, ks in KO:
                if s != seq or not (lo <= layer <= hi):
                    continue
                heads = range(n_heads) if h < 0 else [h]
                for hh in heads:
                    for q in qs:
                        for k in ks:
                            m[0, hh, q, k] = neg
        out.append(m)
    return out


def run(model, tokens, masks):
    """Forward with layer l's attention reading masks[l] instead of the model's own mask."""
    layers = model.model.layers
    saved = []
    for l, layer in enumerate(layers):
        attn = layer.self_attn
        orig = attn.forward
        saved.append((attn, orig))

        def fwd(*args, _orig=orig, _m=masks[l], **kw):
            kw["attention_mask"] = _m
            return _orig(*args, **kw)

        attn.forward = fwd
    try:
        with torch.no_grad():
            o = model(torch.tensor([tokens]), output_attentions=True, use_cache=False)
    finally:
        for attn, orig in saved:
            attn.forward = orig
    logits = o.logits[0].numpy().astype(np.float32)
    attn = torch.stack([a[0] for a in o.attentions]).numpy().astype(np.float32)  # [L][H][n][n]
    return logits, attn


def main():
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(FIXTURE, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    rng = np.random.default_rng(SEED)
    out = {}
    for s, n in enumerate(LENS):
        toks = rng.integers(3, cfg.vocab_size, size=n).tolist()
        out[f"tokens_{s}"] = np.array(toks, dtype=np.int32)
        for knock in (False, True):
            masks = masks_for(s, n, cfg.num_hidden_layers, cfg.num_attention_heads, knock)
            logits, attn = run(model, toks, masks)
            tag = "ko" if knock else "base"
            out[f"logits_{tag}_{s}"] = logits
            out[f"attn_{tag}_{s}"] = attn
        # the knockouts must matter, or the test proves nothing
        d = np.abs(out[f"logits_ko_{s}"] - out[f"logits_base_{s}"]).max()
        if d < 1e-3:
            sys.exit(f"knockouts of sequence {s} changed the logits by only {d}")
        print(f"sequence {s}: {n} tokens, knockouts change the logits by up to {d:.4f}")
    # the plain run must be transformers' own (no custom mask): check against it
    with torch.no_grad():
        plain = model(torch.tensor([out["tokens_0"].tolist()])).logits[0].numpy()
    if np.abs(plain - out["logits_base_0"]).max() > 1e-5:
        sys.exit("the causal-only custom mask does not reproduce transformers' own forward")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(out, OUT, metadata={"generator": "tools/knockout_ref.py", "fixture": FIXTURE})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
