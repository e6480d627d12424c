#!/usr/bin/env python3
"""The Hugging Face baseline for tools/bench/icl_sweep.sh: the (layer x position)
activation-patching sweep as hook-based tools on top of transformers (nnsight, plain
register_forward_pre_hook code) run it -- one forward per variant, a forward pre-hook on
model.model.layers[l] replacing row p of the residual stream entering that block with its
clean value -- on the prompts `layerlab icl sweep-bench --json` wrote.

The model is loaded with transformers AutoModelForCausalLM, fp32, eager attention, one
thread, no KV cache. The clean residuals are recorded untimed (output_hidden_states:
hidden_states[l] enters block l); only the patched forwards are timed, as on the
layerlab and torch sides. Every variant's argmax token and the first variants' logits are
compared with layerlab's; exit status 1 when they disagree.

    icl_sweep_hf.py MODEL_DIR SWEEP.json [OUT.json]

OUT.json receives {"seconds", "variants", "agree", "max_rel_diff", "transformers", "torch"}
for the table in icl_sweep.sh.
"""
import inspect
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model_dir, js = sys.argv[1:3]
    out = sys.argv[3] if len(sys.argv) == 4 else None
    torch.set_num_threads(1)
    m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
    layers = m.model.layers
    # Only the last position's logits are needed (layerlab computes only those too);
    # this transformers can skip the others' lm_head.
    kw = {"use_cache": False}
    if "num_logits_to_keep" in inspect.signature(m.forward).parameters:
        kw["num_logits_to_keep"] = 1
    data = json.load(open(js))
    n_var, agree, t_total, max_head = 0, 0, 0.0, 0.0
    with torch.inference_mode():
        for p in data["prompts"]:
            clean = torch.tensor([p["clean"]])
            dummy = torch.tensor([p["dummy"]])
            hs = m(clean, output_hidden_states=True, use_cache=False).hidden_states
            pos = p["positions"]
            am, heads = [], []
            t0 = time.perf_counter()
            for l in range(len(layers)):
                for j in pos:
                    def pre(mod, args, l=l, j=j):
                        # the decoder layer gets hidden_states positionally ([1, T, d]) and
                        # the rest as keywords, which a plain (torch 1.13) pre-hook passes on
                        x = args[0].clone()
                        x[0, j] = hs[l][0, j]
                        return (x,) + tuple(args[1:])
                    h = layers[l].register_forward_pre_hook(pre)
                    lg = m(dummy, **kw).logits[0, -1]
                    h.remove()
                    am.append(int(lg.argmax()))
                    if len(heads) < len(p["logits_head"]):
                        heads.append(lg.numpy().copy())
            t_total += time.perf_counter() - t0
            n_var += len(am)
            agree += sum(int(a == b) for a, b in zip(am, p["argmax"]))
            for a, b in zip(heads, p["logits_head"]):
                b = np.array(b)
                max_head = max(max_head, float(np.abs(a - b).max() / max(1.0, np.abs(b).max())))
    print(f"HF hooks (transformers {transformers.__version__}, torch {torch.__version__}, eager, naive loop): "
          f"{n_var} variants in {t_total:.3f} s ({n_var / t_total:.1f} variants/s)")
    print(f"argmax agreement with layerlab: {agree}/{n_var}; first-variant logits max relative diff {max_head:.3g}")
    if out:
        with open(out, "w") as f:
            json.dump({"seconds": t_total, "variants": n_var, "agree": agree, "max_rel_diff": max_head,
                       "transformers": transformers.__version__, "torch": torch.__version__}, f)
    if agree != n_var or max_head > 1e-3:
        sys.exit("layerlab and the Hugging Face baseline disagree")


if __name__ == "__main__":
    main()
