#!/usr/bin/env python3
"""Reference outputs of Hugging Face transformers for the real checkpoints in ../shared/assets.

The checkpoints themselves are never copied into the project; only what transformers
computes for them is committed (test/fixtures/shared/), so the C tests can compare a real,
independently saved Hugging Face directory without Python in CI.

Run inside the fixture environment:  bash tools/fixtures-env.sh --setup-only &&
.venv-fixtures/bin/python tools/gen_shared_refs.py
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("LAYERLAB_SHARED", os.path.join(ROOT, "..", "shared"))
OUT = os.path.join(ROOT, "test", "fixtures", "shared")

# "Hello, my dog is cute" in the GPT-2 vocabulary, plus a second sequence.
SEQS = [[15496, 11, 616, 3290, 318, 13779], [464, 2068, 7586, 21831]]


def tiny_gpt2():
    path = os.path.join(SHARED, "assets", "tiny-gpt2")
    if not os.path.isdir(path):
        sys.exit(f"gen_shared_refs: {path} not found")
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    toks, offs, hs, last = [], [0], [], []
    with torch.no_grad():
        for s in SEQS:
            ids = torch.tensor([s])
            out = model(ids, output_hidden_states=True)
            hs.append(torch.stack(out.hidden_states, 0)[:, 0].numpy())  # [L+1, T, d]
            last.append(out.logits[0, -1].numpy())                      # [V]
            toks += s
            offs.append(len(toks))
    tensors = {
        "tokens": np.array(toks, dtype=np.int32),
        "seq_offsets": np.array(offs, dtype=np.int64),
        "hidden_states": np.concatenate(hs, axis=1).astype(np.float32),
        "last_logits": np.stack(last, 0).astype(np.float32),
    }
    os.makedirs(OUT, exist_ok=True)
    import transformers
    meta = {"format": "layerlab-fixture", "version": "1", "transformers": transformers.__version__,
            "torch": torch.__version__, "model": "../shared/assets/tiny-gpt2", "generator": "tools/gen_shared_refs.py"}
    dst = os.path.join(OUT, "tiny-gpt2.safetensors")
    save_file(tensors, dst, metadata=meta)
    print(f"{dst}: hidden_states {tensors['hidden_states'].shape}, last_logits {tensors['last_logits'].shape}")


if __name__ == "__main__":
    tiny_gpt2()
