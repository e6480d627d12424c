#!/usr/bin/env python3
"""Where does the toy model keep what in-context categorization needs? (data/README.md, part 4)

Runs held-out-style categorization episodes ("x -> label" items, pool label words, one of
the five rules) through a toy-llama Hugging Face directory with transformers and reports:

1. per head, the attention the query's arrow gives each demonstration's label token,
   split by whether the demonstration has the query's class, and the share on the last
   demonstration alone;
2. least-squares linear probes for the three word properties of an input (length >= 6,
   first letter a-m, contains e), read at the input, the arrow and the label position of
   each item, at every layer (held-out split; 50% is chance).

A model whose label positions do not hold their input's properties (probe near 50% at the
label slot) cannot match the query against the demonstrations on the rule's property.

usage: .venv-fixtures/bin/python tools/toy_probe.py data/models/toy-llama [--episodes N] [--k K]
"""
import argparse
import json
import random

import numpy as np
import torch
from transformers import AutoModelForCausalLM

LABELS = ["apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "rocket", "forest", "candle", "silver",
          "planet", "garden", "window", "pencil", "bridge", "castle", "dragon", "honey", "marble", "ocean", "pepper",
          "shadow", "violet"]
RULES = [lambda s: len(s) >= 6, lambda s: s[0] <= "m", lambda s: "e" in s,
         lambda s: int(s) % 2 == 0, lambda s: int(s) >= 50]
PROPS = ["length>=6", "first a-m", "contains e"]


def world(vocab):
    inv = {v: k for k, v in vocab.items()}
    # The toy vocabulary lists the numbers 0-99, then the synthetic words (lowercase), then
    # the entities (capitalized): ll_toy_world_new.
    words = [inv[i] for i in range(vocab["99"] + 1, len(inv)) if inv[i][0].islower()]
    if len(words) != 256:
        raise SystemExit(f"expected the toy vocabulary's 256 synthetic words after '99', found {len(words)}")
    return words, [str(i) for i in range(100)]


def episode(rng, vocab, words, nums, k, rule):
    dom = words if rule < 3 else nums
    cls = [[x for x in dom if not RULES[rule](x)], [x for x in dom if RULES[rule](x)]]
    labels = rng.sample(LABELS, 2)
    items = []
    for _ in range(k + 1):
        c = rng.randrange(2)
        items.append((rng.choice(cls[c]), c))
    ids, start = [vocab["<s>"]], []
    for i, (x, c) in enumerate(items):
        if i:
            ids.append(vocab["\n"])
        start.append(len(ids))
        ids += [vocab[x], vocab["->"]]
        if i < k:
            ids.append(vocab[labels[c]])
    return ids, start, items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--k", type=int, default=16, help="demonstrations per episode")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    try:
        vocab = json.load(open(f"{a.model}/tokenizer.json"))["model"]["vocab"]
    except (OSError, KeyError, ValueError) as e:
        raise SystemExit(f"{a.model}/tokenizer.json: expected a WordLevel toy tokenizer ({e})")
    words, nums = world(vocab)
    model = AutoModelForCausalLM.from_pretrained(a.model, attn_implementation="eager").eval()
    nl, nh = model.config.num_hidden_layers, model.config.num_attention_heads
    rng = random.Random(a.seed)
    att = np.zeros((nl, nh, 2))  # attention to a label: other class, same class
    last = np.zeros((nl, nh))
    cnt = np.zeros(2)
    feats, ys = {}, []
    for e in range(a.episodes):
        rule = rng.randrange(5)
        ids, start, items = episode(rng, vocab, words, nums, a.k, rule)
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
        qc = items[-1][1]
        for l in range(nl):
            A = out.attentions[l][0, :, -1].numpy()
            for j in range(a.k):
                att[l, :, int(items[j][1] == qc)] += A[:, start[j] + 2]
            last[l] += A[:, start[a.k - 1]:start[a.k - 1] + 3].sum(1)
        for j in range(a.k):
            cnt[int(items[j][1] == qc)] += 1
        if rule < 3:  # word properties, probed on the demonstrations
            for j in range(a.k):
                ys.append([RULES[p](items[j][0]) for p in range(3)])
                for l, h in enumerate(out.hidden_states):
                    for s in range(3):
                        feats.setdefault((l, s), []).append(h[0, start[j] + s].numpy())
    print(f"{a.model}: {a.episodes} episodes of {a.k} demonstrations\n")
    print("1. attention from the query's arrow to one demonstration's label (same class / other class; "
          "share on the whole last demonstration)")
    for l in range(nl):
        for h in range(nh):
            s, o = att[l, h, 1] / cnt[1], att[l, h, 0] / cnt[0]
            print(f"  layer {l} head {h}: {s:.3f} / {o:.3f} (x{s / max(o, 1e-9):.1f}); last {last[l, h] / a.episodes:.2f}")
    Y = np.array(ys, float)
    n_tr = int(len(Y) * 0.6)
    print("\n2. linear probes for the input's word properties (held-out accuracy; chance 50%)")
    print("  layer  slot   " + "  ".join(f"{p:>11}" for p in PROPS))
    for (l, s), xs in sorted(feats.items()):
        X = np.c_[np.array(xs), np.ones(len(xs))]
        acc = []
        for p in range(3):
            w = np.linalg.lstsq(X[:n_tr], Y[:n_tr, p] * 2 - 1, rcond=1e-3)[0]
            acc.append(((X[n_tr:] @ w > 0) == (Y[n_tr:, p] > 0.5)).mean())
        print(f"  {l:5d}  {['input', 'arrow', 'label'][s]:5}  " + "  ".join(f"{v:11.1%}" for v in acc))


if __name__ == "__main__":
    main()
