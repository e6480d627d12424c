#!/usr/bin/env python3
"""Prompts for the activation-dump benchmark (tools/bench/dump.sh): a deterministic
JSONL file of N records {"tokens": [...]} with lengths drawn uniformly from
[--min-len, --max-len] and ids uniform in [--low, --vocab). Token ids rather than text,
so that tokenization is measured on neither side; layerlab dump and
tools/bench/dump_peer.py read the same file.

    make_dump_prompts.py --n 3000 --vocab 512 --min-len 16 --max-len 128 --seed 1 --out FILE

Prints one JSON line: {"prompts": N, "tokens": T, "min_len": ..., "max_len": ...}.
Standard library only (random.Random is deterministic across Python 3 versions for
randrange with a fixed seed)."""

import argparse
import json
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="number of prompts")
    ap.add_argument("--vocab", type=int, required=True, help="vocabulary size of the model")
    ap.add_argument("--min-len", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--low", type=int, default=3, help="smallest id used (skips BOS/EOS/pad-like ids)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.n < 1 or a.min_len < 1 or a.max_len < a.min_len or a.vocab <= a.low:
        ap.error("need n >= 1, 1 <= min-len <= max-len, vocab > low")

    rng = random.Random(a.seed)
    total = 0
    with open(a.out, "w") as f:
        for _ in range(a.n):
            n = rng.randint(a.min_len, a.max_len)
            ids = [rng.randrange(a.low, a.vocab) for _ in range(n)]
            total += n
            f.write(json.dumps({"tokens": ids}, separators=(",", ":")) + "\n")
    print(json.dumps({"prompts": a.n, "tokens": total, "min_len": a.min_len, "max_len": a.max_len,
                      "vocab": a.vocab, "seed": a.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
