#!/usr/bin/env python3
"""Create the benchmark model: a randomly initialised Llama-shaped Hugging Face
model of about 30M parameters, saved as float32 safetensors.

Shape (the defaults): hidden 512, 8 layers, 8 heads of 64, 4 KV heads (GQA),
intermediate 1408 (SwiGLU), vocabulary 6144, untied LM head.

    per block   q 512x512 + k 512x256 + v 512x256 + o 512x512      =   786,432
                gate/up/down 3 x 512x1408                           = 2,162,688
                two RMSNorm weights                                 =     1,024
    8 blocks                                                        = 23,601,152
    embedding 6144x512 + LM head 6144x512 + final norm 512          =  6,291,968
    total                                                           = 29,893,120

The vocabulary is chosen to land near 30M with an untied head; it also keeps the
LM head at ~10% of the weights, about the share it has in real Llama models
(vocabulary 32000 with this body would make it ~30%).

The directory is cached: it is rebuilt only when missing or made with other
settings (recorded in bench-stamp.json). Usage:
    make_bench_model.py [--out bench-out/model-30m] [--vocab 6144] [--layers 8] ...
"""

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()

STAMP = "bench-stamp.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out/model-30m")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=6144)
    ap.add_argument("--max-pos", type=int, default=2048)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    want = {
        "hidden": args.hidden, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
        "intermediate": args.intermediate, "vocab": args.vocab, "max_pos": args.max_pos, "tied": args.tied,
        "seed": args.seed, "transformers": transformers.__version__, "format": 1,
    }
    stamp = os.path.join(args.out, STAMP)
    if os.path.exists(stamp) and os.path.exists(os.path.join(args.out, "model.safetensors")):
        with open(stamp) as f:
            have = json.load(f)
        if have.get("settings") == want:
            print("bench model: cached %s (%s parameters)" % (args.out, format(have["n_params"], ",")))
            return 0

    cfg = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_pos,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=args.tied,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float32",
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():
        # Norm weights are ones at init; jitter them so a mix-up of the two norms would show.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    n_params = sum(p.numel() for p in model.parameters())  # shared tensors counted once

    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    with open(os.path.join(tmp, STAMP), "w") as f:
        json.dump({"settings": want, "n_params": n_params}, f, indent=1)
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)
    print("bench model: wrote %s (%s parameters)" % (args.out, format(n_params, ",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
