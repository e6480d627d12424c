#!/usr/bin/env python3
"""Check the toy model (data/models/toy-llama) with Hugging Face transformers.

Loads the directory with transformers' own LlamaForCausalLM and PreTrainedTokenizerFast,
checks that layerlab's tokenizer (build/layerlab tokenize) gives the same ids for a set of
prompts in the toy task formats, and writes the reference hf_reference.safetensors next
to the model: the prompts' tokens, their offsets and transformers' logits at every
position. test/test_toy_model.c compares layerlab's logits with it without Python.

Run with the pinned environment: .venv-fixtures/bin/python tools/toy_hf_parity.py [DIR]
(bash tools/fixtures-env.sh --setup-only creates it).
"""

import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def prompts(tok):
    vocab = tok.get_vocab()
    ents = sorted(w for w in vocab if w[:1].isupper() and len(w) > 4 and w not in ("Question", "Answer"))
    words = sorted(w for w in vocab if w.isalpha() and w.islower() and len(w) >= 3)[:40]
    cat_num = "\n".join(f"{n} -> {'apple' if n % 2 == 0 else 'river'}" for n in (12, 7, 30, 41, 8, 99, 64, 3))
    cat_word = "\n".join(f"{w} -> {'stone' if len(w) >= 6 else 'cloud'}" for w in words[:16])
    return [
        cat_num + "\n17 ->",
        cat_word + f"\n{words[20]} ->",
        f"{ents[0]} -> red\n{ents[1]} ->",
        f"{ents[2]} -> hammer\n{ents[3]} -> saw\n{ents[4]} ->",
        f"Question: what is the animal of {ents[5]}?\nA. cat\nB. dog\nC. wolf\nD. frog\nAnswer:",
        "5 ->",
    ]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "data/models/toy-llama")
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
    ids, offs, logits = [], [0], []
    for p in prompts(tok):
        hf = tok(p)["input_ids"]
        ll = subprocess.run([os.path.join(root, "build/layerlab"), "tokenize", d, p], check=True,
                            capture_output=True, text=True).stdout.split()
        ll = [int(x) for x in ll]
        if hf != ll:
            sys.exit(f"tokenizers disagree on {p!r}:\n  transformers {hf}\n  layerlab     {ll}")
        with torch.no_grad():
            out = model(torch.tensor([hf])).logits[0].float().numpy()
        ids += hf
        offs.append(len(ids))
        logits.append(out)
    lg = np.concatenate(logits).astype(np.float32)
    path = os.path.join(d, "hf_reference.safetensors")
    save_file({"tokens": np.array(ids, dtype=np.int32), "seq_offsets": np.array(offs, dtype=np.int64),
               "logits": lg}, path)
    print(f"{len(offs) - 1} prompts, {len(ids)} tokens: tokenizers agree; transformers logits written to {path}")


if __name__ == "__main__":
    main()
