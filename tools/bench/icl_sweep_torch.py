#!/usr/bin/python3
"""The Python baseline for tools/bench/icl_sweep.sh: the (layer x position) activation-
patching sweep as hook-based Python tools run it (one forward per variant, a forward
pre-hook on block l replacing row p of the residual stream with its clean value), in
PyTorch, on the same prompts `layerlab icl sweep-bench --json` wrote.

The model is tools/icl_patch_ref.py's plain-torch Llama (checked there against
transformers); here it is first checked against the toy model's own transformers
reference (hf_reference.safetensors), then the sweep's argmax tokens and first logits are
compared with layerlab's.

    icl_sweep_torch.py MODEL_DIR SWEEP.json [OUT.json]

OUT.json receives {"seconds", "variants", "agree", "max_rel_diff"} for icl_sweep.sh's table.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from icl_patch_ref import Llama, read_st  # noqa: E402


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model_dir, js = sys.argv[1:3]
    out = sys.argv[3] if len(sys.argv) == 4 else None
    torch.set_num_threads(1)
    m = Llama(model_dir).eval()
    ref = os.path.join(model_dir, "hf_reference.safetensors")
    with torch.no_grad():
        if os.path.exists(ref):
            r = read_st(ref)
            so, tok = r["seq_offsets"], r["tokens"]
            err = max(float(np.abs(m(list(tok[so[s]:so[s + 1]])).numpy() - r["logits"][so[s]:so[s + 1]]).max())
                      for s in range(len(so) - 1))
            print(f"torch port vs transformers reference: max |logit diff| {err:.3g}")
            if err > 1e-3:
                sys.exit("torch port disagrees with the model's transformers reference")
        data = json.load(open(js))
        L = m.cfg["num_hidden_layers"]
        n_var, agree, t_total, max_head = 0, 0, 0.0, 0.0
        for p in data["prompts"]:
            clean_in = []
            m(p["clean"], clean_in)  # residual entering every block
            pos = p["positions"]
            t0 = time.perf_counter()
            am = []
            heads = []
            for l in range(L):
                for j in pos:
                    def pre(mod, args, l=l, j=j):
                        x, cos, sin = args
                        x = x.clone()
                        x[j] = clean_in[l][j]
                        return (x, cos, sin)
                    h = m.blocks[l].register_forward_pre_hook(pre)
                    lg = m(p["dummy"])[-1]
                    h.remove()
                    am.append(int(lg.argmax()))
                    if len(heads) < len(p["logits_head"]):
                        heads.append(lg.numpy())
            t_total += time.perf_counter() - t0
            n_var += len(am)
            agree += sum(int(a == b) for a, b in zip(am, p["argmax"]))
            for a, b in zip(heads, p["logits_head"]):
                max_head = max(max_head, float(np.abs(a - np.array(b)).max() / max(1.0, np.abs(b).max())))
    secs = data["seconds"]
    print(f"python hooks (torch, naive loop): {n_var} variants in {t_total:.3f} s ({n_var / t_total:.1f} variants/s)")
    print(f"argmax agreement with layerlab: {agree}/{n_var}; first-variant logits max relative diff {max_head:.3g}")
    for k, v in secs.items():
        print(f"layerlab {k:14s} {v:8.3f} s   python/layerlab = {t_total / v:6.2f}x")
    if out:
        with open(out, "w") as f:
            json.dump({"seconds": t_total, "variants": n_var, "agree": agree, "max_rel_diff": max_head}, f)
    if agree != n_var or max_head > 1e-3:
        sys.exit("layerlab and the torch baseline disagree")


if __name__ == "__main__":
    main()
