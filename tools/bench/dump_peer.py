#!/usr/bin/env python3
"""The Python peer of `layerlab dump` for tools/bench/dump.sh: what a researcher writes to
dump the residual stream of every layer at every position for a file of prompts with
Hugging Face transformers (output_hidden_states=True) and h5py, in one process.

    dump_peer.py MODEL --input PROMPTS.jsonl --out FILE.h5 [--threads N] [--batch-tokens 2048]
                 [--json RESULT.json]

- The model: AutoModelForCausalLM, float32, attn_implementation="eager",
  torch.set_num_threads(--threads), eval(), torch.inference_mode().
- The input: the same JSONL as layerlab reads ({"tokens": [...]} per line, token ids,
  so no tokenizer runs on either side).
- Batching: consecutive prompts in input order, right-padded into one [B, T] tensor with
  an attention_mask, as many as fit B * T <= --batch-tokens (the same token budget per
  forward pass as layerlab's --batch-tokens, padding included; a prompt longer than the
  budget goes alone). Right padding keeps the default position ids of the real tokens
  right and the causal mask keeps pads out of them, so real rows equal unpadded ones.
- What is written: hidden_states[1..L] (L = num_hidden_layers) at the real positions,
  float32, to /acts/hook_resid_post [L][rows][d], resizable along rows, chunked
  [1][rows_per_chunk][d] at about 1 MiB per chunk like layerlab; plus /sequences/tokens
  and /sequences/offsets. hidden_states[l+1] for l < L-1 is layerlab's
  blocks.l.hook_resid_post; HF's last entry is after the final norm (layerlab's
  ln_final.hook_normalized), not the last block's resid_post, but it has the same size,
  so the bytes written are the same as layerlab's L layers.
- Timing: "seconds" runs from opening the input to the closed output file (model load
  and imports excluded, as layerlab's own figure excludes its model load);
  "wall_seconds" adds the model load. Prints one JSON line (and writes --json).
"""

import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()


def batches(prompts, budget):
    """Consecutive prompts while (count) x (longest) stays within the token budget."""
    cur, longest = [], 0
    for p in prompts:
        m = max(longest, len(p))
        if cur and m * (len(cur) + 1) > budget:
            yield cur
            cur, m = [], len(p)
        cur.append(p)
        longest = m
    if cur:
        yield cur


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--json")
    a = ap.parse_args()

    threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    L, d = model.config.num_hidden_layers, model.config.hidden_size
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    t_loaded = time.perf_counter()

    t0 = time.perf_counter()
    with open(a.input) as f:
        prompts = [json.loads(line)["tokens"] for line in f if line.strip()]
    rows_per_chunk = max(1, (1 << 20) // (4 * d))
    n_rows = 0
    n_batches = 0
    with h5py.File(a.out, "w") as h5, torch.inference_mode():
        acts = h5.create_dataset("acts/hook_resid_post", shape=(L, 0, d), maxshape=(L, None, d), dtype="f4",
                                 chunks=(1, rows_per_chunk, d))
        toks = h5.create_dataset("sequences/tokens", shape=(0,), maxshape=(None,), dtype="i4", chunks=(65536,))
        offs = h5.create_dataset("sequences/offsets", shape=(1,), maxshape=(None,), dtype="i8", chunks=(16384,))
        offs[0] = 0
        for batch in batches(prompts, a.batch_tokens):
            T = max(len(p) for p in batch)
            ids = torch.full((len(batch), T), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for i, p in enumerate(batch):
                ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
                mask[i, : len(p)] = 1
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
            hs = out.hidden_states  # L + 1 tensors [B, T, d]
            keep = mask.bool()
            # [L][rows][d]: the real positions of every sequence, in order.
            block = torch.stack([h[keep] for h in hs[1:]]).numpy()
            r = block.shape[1]
            acts.resize(n_rows + r, axis=1)
            acts[:, n_rows:n_rows + r, :] = block
            flat = np.concatenate([np.asarray(p, dtype=np.int32) for p in batch])
            t_old = toks.shape[0]
            toks.resize(t_old + flat.size, axis=0)
            toks[t_old:] = flat
            o_old = offs.shape[0]
            offs.resize(o_old + len(batch), axis=0)
            offs[o_old:] = t_old + np.cumsum([len(p) for p in batch])
            n_rows += r
            n_batches += 1
    t1 = time.perf_counter()

    secs = t1 - t0
    mb = L * n_rows * d * 4 / 1e6
    res = {
        "impl": "transformers+h5py", "torch": torch.__version__, "transformers": transformers.__version__,
        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "attn_implementation": "eager",
        "threads": threads, "batch_tokens": a.batch_tokens, "batches": n_batches,
        "prompts": len(prompts), "tokens": n_rows, "layers": L, "d_model": d, "mb": mb,
        "seconds": secs, "tok_s": n_rows / secs, "mb_s": mb / secs,
        "load_seconds": t_loaded - T_START, "wall_seconds": t1 - T_START,
    }
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
