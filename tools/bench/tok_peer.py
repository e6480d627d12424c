#!/usr/bin/env python3
"""Hugging Face `tokenizers` peer for the layerlab tokenizer benchmark.

    tok_peer.py --tokenizer PATH --text FILE [--reps N]

PATH is a tokenizer.json, a directory holding one (or a tokenizer.model), or a
SentencePiece tokenizer.model (converted by transformers' LlamaTokenizerFast
with legacy=true, as tools/gen_tok_fixtures.py does; needs sentencepiece and
protobuf, i.e. the .venv-fixtures environment).

FILE holds one document per line; the trailing "\\n" is not part of the
document, and bytes that are not UTF-8 are replaced with U+FFFD (which is what
HF sees).  Every document is encoded on its own with
Tokenizer.encode(doc, add_special_tokens=False), single-threaded
(TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1).  The best of --reps
passes is reported as one JSON line:

  {"impl": "hf-tokenizers", "version": ..., "bytes": ..., "n_tokens": ...,
   "best_s": ..., "mb_per_s": ...}

bytes = UTF-8 bytes of all documents (newlines excluded); mb_per_s = bytes /
best_s / 1e6.  Reading and decoding the file is not timed.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def from_spm_model(path):
    import transformers
    from transformers import AutoTokenizer
    transformers.logging.set_verbosity_error()
    tmp = tempfile.mkdtemp(prefix="tok-peer-")
    try:
        shutil.copy(path, os.path.join(tmp, "tokenizer.model"))
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "LlamaTokenizer", "legacy": True, "bos_token": "<s>",
                       "eos_token": "</s>", "unk_token": "<unk>"}, f)
        fast = AutoTokenizer.from_pretrained(tmp, use_fast=True)
        return Tokenizer.from_str(fast.backend_tokenizer.to_str())
    finally:
        shutil.rmtree(tmp)


def load(path):
    if os.path.isdir(path):
        tj = os.path.join(path, "tokenizer.json")
        if os.path.exists(tj):
            return Tokenizer.from_file(tj)
        tm = os.path.join(path, "tokenizer.model")
        if os.path.exists(tm):
            return from_spm_model(tm)
        raise SystemExit("tok_peer: %s has neither tokenizer.json nor tokenizer.model" % path)
    if path.endswith(".model"):
        return from_spm_model(path)
    return Tokenizer.from_file(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    tok = load(args.tokenizer)
    with open(args.text, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    docs = [ln.decode("utf-8", errors="replace") for ln in lines]
    nbytes = sum(len(d.encode("utf-8")) for d in docs)

    best = None
    n_tokens = 0
    encode = tok.encode
    for _ in range(max(1, args.reps)):
        n = 0
        t0 = time.perf_counter()
        for d in docs:
            n += len(encode(d, add_special_tokens=False).ids)
        dt = time.perf_counter() - t0
        n_tokens = n
        if best is None or dt < best:
            best = dt
    print(json.dumps({"impl": "hf-tokenizers", "version": tokenizers.__version__, "tokenizer": args.tokenizer,
                      "docs": len(docs), "bytes": nbytes, "n_tokens": n_tokens, "reps": max(1, args.reps),
                      "best_s": round(best, 6), "mb_per_s": round(nbytes / best / 1e6, 3)}))


if __name__ == "__main__":
    sys.exit(main())
