#!/usr/bin/env python3
"""Build a deterministic mixed text file for the tokenizer benchmark.

    make_tok_text.py --out FILE [--mb 4] [--shared ../shared]

One document per line (newlines inside a document become spaces, "\\r" too):
  ~60% English prose   ../shared/assets hellaswag (5 lines a document), boolq
                       (passage + question), mmlu-redux (question + choices)
  ~25% code            this repository's git-tracked *.c, *.h, *.py, *.sh files
                       (sorted, 40-line chunks; test/fixtures and
                       test/tokenizer data are skipped)
  ~15% multilingual    built-in sentences (French, German, Spanish, Russian,
                       Greek, Chinese, Japanese, Korean, Arabic, Hindi, Thai,
                       emoji) and the English->French/German/Spanish word lists
                       of ../shared/assets/icl-function-vectors
The next document always comes from the source furthest below its byte share;
a source that runs out starts again from its first document (at 4 MB the code
and the multilingual documents repeat about twice).  Stops once --mb megabytes
(10^6 bytes) are written.  Plain Python 3 standard library; the output depends
only on the inputs (same tree + same ../shared -> same bytes).
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MULTI = [
    "Le renard brun rapide saute par-dessus le chien paresseux. C'est l'\u00e9t\u00e9 \u00e0 Paris et le caf\u00e9 est tr\u00e8s bon.",
    "Der schnelle braune Fuchs springt \u00fcber den faulen Hund. Gr\u00fc\u00dfe aus K\u00f6ln und M\u00fcnchen!",
    "El r\u00e1pido zorro marr\u00f3n salta sobre el perro perezoso. \u00bfD\u00f3nde est\u00e1 la estaci\u00f3n?",
    "\u0411\u044b\u0441\u0442\u0440\u0430\u044f \u043a\u043e\u0440\u0438\u0447\u043d\u0435\u0432\u0430\u044f \u043b\u0438\u0441\u0430 "
    "\u043f\u0440\u044b\u0433\u0430\u0435\u0442 \u0447\u0435\u0440\u0435\u0437 \u043b\u0435\u043d\u0438\u0432\u0443\u044e "
    "\u0441\u043e\u0431\u0430\u043a\u0443. \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0397 \u03b3\u03c1\u03ae\u03b3\u03bf\u03c1\u03b7 \u03ba\u03b1\u03c6\u03ad \u03b1\u03bb\u03b5\u03c0\u03bf\u03cd "
    "\u03c0\u03b7\u03b4\u03ac\u03b5\u03b9. \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5.",
    "\u654f\u6377\u7684\u68d5\u8272\u72d0\u72f8\u8df3\u8fc7\u4e86\u61d2\u72d7\u3002\u4f60\u597d\uff0c\u4e16\u754c\uff01"
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3002\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",
    "\uc548\ub155\ud558\uc138\uc694. \ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645. \u0627\u0644\u0644\u063a\u0629 "
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629.",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e\u0964 \u0939\u093f\u0928\u094d\u0926\u0940 "
    "\u092d\u093e\u0937\u093e \u0938\u0941\u0902\u0926\u0930 \u0939\u0948\u0964",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01 \U0001f600 \U0001f44b\U0001f3fd "
    "\u2764\ufe0f \U0001f1fa\U0001f1f8 \U0001f468\u200d\U0001f469\u200d\U0001f467",
]

SKIP_DIRS = {".git", "build", "build-asan", "build-fuzz", "bench-out", "demo-out", "gpu-results",
             "__pycache__", "fixtures", "tokenizer", "shared"}


def one_line(s):
    return " ".join(s.replace("\r", " ").split("\n")).strip()


def prose_docs(shared):
    hs_docs, bq_docs, mm_docs = [], [], []
    docs = hs_docs
    hs = os.path.join(shared, "assets", "hellaswag", "hellaswag_val_full.txt")
    if os.path.exists(hs):
        with open(hs, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.strip().isdigit()]
        for i in range(0, len(lines), 5):
            docs.append(" ".join(lines[i:i + 5]))
    bq = os.path.join(shared, "assets", "boolq", "dev.jsonl")
    if os.path.exists(bq):
        with open(bq, encoding="utf-8") as f:
            for ln in f:
                r = json.loads(ln)
                bq_docs.append(r["passage"] + " " + r["question"] + "?")
    mm = os.path.join(shared, "assets", "mmlu-redux", "mmlu_redux_normalized.jsonl")
    if os.path.exists(mm):
        with open(mm, encoding="utf-8") as f:
            for ln in f:
                r = json.loads(ln)
                mm_docs.append(r["question"] + " " + " ".join("(%s) %s" % (chr(65 + k), c)
                                                            for k, c in enumerate(r.get("choices", []))))
    # interleave the three sources so that a prefix of the file is already mixed
    out = []
    for i in range(max(len(hs_docs), len(bq_docs), len(mm_docs))):
        for src in (hs_docs, bq_docs, mm_docs):
            if i < len(src):
                out.append(src[i])
    return out


def code_files(root):
    """git-tracked files when root is a git checkout (so that work in progress
    does not change the text), else a directory walk."""
    exts = (".c", ".h", ".py", ".sh")
    try:
        r = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        names = [n for n in r.stdout.decode("utf-8").split("\0") if n]
        return [os.path.join(root, n) for n in names
                if n.endswith(exts) and not set(n.split("/")[:-1]) & SKIP_DIRS]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(exts):
                files.append(os.path.join(dirpath, fn))
    return files


def code_docs(root):
    files = code_files(root)
    docs = []
    for p in sorted(files):
        with open(p, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for i in range(0, len(lines), 40):
            d = one_line("\n".join(lines[i:i + 40]))
            if d:
                docs.append(d)
    return docs


def multi_docs(shared):
    docs = list(MULTI)
    fv = os.path.join(shared, "assets", "icl-function-vectors", "abstractive")
    for name in ("english-french.json", "english-german.json", "english-spanish.json"):
        p = os.path.join(fv, name)
        if not os.path.exists(p):
            continue
        with open(p, encoding="utf-8") as f:
            pairs = json.load(f)
        for i in range(0, len(pairs), 16):
            docs.append(", ".join("%s = %s" % (r["input"], r["output"]) for r in pairs[i:i + 16]))
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--root", default=ROOT, help="where to take the code documents from")
    args = ap.parse_args()

    sources = {"prose": prose_docs(args.shared), "code": code_docs(args.root), "multi": multi_docs(args.shared)}
    for k, v in sources.items():
        sources[k] = [one_line(d) for d in v if one_line(d)]
        if not sources[k]:
            raise SystemExit("make_tok_text: no %s documents found" % k)
    # Byte shares: 60% prose, 25% code, 15% multilingual; the next document
    # always comes from the source furthest below its share.
    share = {"prose": 0.60, "code": 0.25, "multi": 0.15}
    pos = {k: 0 for k in sources}
    target = int(args.mb * 1_000_000)
    written = 0
    counts = {k: 0 for k in sources}
    nbytes = {k: 0 for k in sources}
    with open(args.out, "wb") as f:
        while written < target:
            k = min(sources, key=lambda s: nbytes[s] / share[s])
            d = sources[k][pos[k] % len(sources[k])].encode("utf-8")
            pos[k] += 1
            f.write(d + b"\n")
            written += len(d) + 1
            counts[k] += 1
            nbytes[k] += len(d)
    print("make_tok_text: wrote %s: %d bytes, %d documents (%s)" % (
        args.out, written, sum(counts.values()),
        ", ".join("%s %d docs %.1f%%" % (k, counts[k], 100.0 * nbytes[k] / written) for k in counts)))


if __name__ == "__main__":
    sys.exit(main())
