#!/usr/bin/env python3
"""Reference attention x gradient saliency (test/test_icl_analysis.c, saliency test).

Wang et al. 2023: I_l(r, j) = | sum_h A_h(r, j) * dL/dA_h(r, j) |, with L the cross-entropy
of a target token predicted at the last position. Computed with Hugging Face transformers'
eager Llama on test/fixtures/llama_gqa by torch autograd on the attention probabilities
the model returns (they are the tensors its attention multiplies with the values), and
written to test/fixtures/knockout/saliency.safetensors.

Run with the pinned environment:  .venv-fixtures/bin/python tools/saliency_ref.py
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

FIXTURE = "test/fixtures/llama_gqa"
OUT = "test/fixtures/knockout/saliency.safetensors"
SEED = 7
N = 11
TARGET = 77


def main():
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(FIXTURE, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    rng = np.random.default_rng(SEED)
    toks = rng.integers(3, model.config.vocab_size, size=N).astype(np.int32)
    out = model(torch.tensor([toks.tolist()]), output_attentions=True, use_cache=False)
    atts = out.attentions
    for a in atts:
        a.retain_grad()
    logp = torch.log_softmax(out.logits[0, -1], dim=-1)
    loss = -logp[TARGET]
    loss.backward()
    sal = torch.stack([(a[0] * a.grad[0]).sum(0).abs() for a in atts]).detach().numpy().astype(np.float32)
    save_file({"tokens": toks, "target": np.array([TARGET], dtype=np.int32), "saliency": sal,
               "loss": np.array([loss.item()], dtype=np.float64)}, OUT,
              metadata={"generator": "tools/saliency_ref.py", "fixture": FIXTURE})
    print(f"loss {loss.item():.6f}; saliency [L][n][n] = {sal.shape}, max {sal.max():.4g}; wrote {OUT}")


if __name__ == "__main__":
    main()
