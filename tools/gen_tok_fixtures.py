#!/usr/bin/env python3
"""Generate the tokenizer reference data in test/tokenizer/.

  test/tokenizer/corpus.jsonl            the test strings (raw bytes as hex)
  test/tokenizer/fixtures/<name>/        tokenizer-only Hugging Face fixtures
                                         (llama3, qwen2, wordlevel, gpt2_added)
  test/tokenizer/expected/<name>.jsonl   expected ids from Hugging Face
                                         tokenizers/transformers, and from
                                         Debian's spm_encode (spm-*.jsonl)

Run it through the pinned environment:

    bash tools/fixtures-env.sh --tok            # everything
    bash tools/fixtures-env.sh --tok --no-spm   # skip the spm_encode files

Everything is deterministic: the corpus is built from literals and fixed
snippets of ../shared/assets datasets, the fixtures are trained with the HF
trainers on a built-in text, and every output is written in a fixed order.
As a side product the Llama-2 tokenizer.model converted by transformers is
saved (not in the repo) to /tmp/llama2-hf/ (override with --llama2-out).

Usage: gen_tok_fixtures.py [--out test/tokenizer] [--shared ../shared]
                           [--only NAME ...] [--no-spm] [--llama2-out DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import tokenizers  # noqa: E402
from tokenizers import (  # noqa: E402
    AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers)
import transformers  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

GENERATOR = "tools/gen_tok_fixtures.py"
MAX_FIXTURE_FILE = 200_000

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# ======================================================================================
# Corpus
# ======================================================================================

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "It was the best of times, it was the worst of times.",
    "A language model reads a sequence of tokens and predicts the next one.",
    "She sells sea shells by the sea shore; the shells she sells are surely seashells.",
    "\"Where are you going?\" asked the teacher. \"To the library,\" said the student.",
    "Mr. Smith (the new manager) arrived at 9 a.m. -- early, as usual.",
    "e.g., i.e., etc., vs. and so on...",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "camelCaseIdentifier and snake_case_identifier and kebab-case-identifier",
    "Semicolons; colons: commas, periods. Question marks? Exclamation points!",
    "The year 1984 was not like \"1984\".",
    "Tokenization is the first step; detokenization is the last.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
]

CODE = [
    "int main(void) {\n    printf(\"hello\\n\");\n    return 0;\n}\n",
    "#include <stdio.h>\n#include <stdlib.h>\n",
    "static inline float ll_silu(float x) { return x / (1.0f + expf(-x)); }",
    "for (size_t i = 0; i < n; ++i) {\n\tacc += a[i] * b[i];\n}",
    "if (x != NULL && *x == '\\0') return -1; // empty",
    "/* block comment */\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Foo:\n    def __init__(self):\n        self.x = 1  # comment\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n",
    "print(f\"{name!r:>10} = {value:.3f}\")",
    "lambda x: x ** 2 if x >= 0 else -x",
    "{\"name\": \"layerlab\", \"version\": 1, \"tags\": [\"a\", \"b\"], \"ok\": true, \"n\": null}",
    "{\n  \"vocab_size\": 32000,\n  \"hidden_size\": 4096\n}",
    "[[1, 2], [3, 4]]",
    "x=1;y=2;z=x+y",
    "\tindented with a tab\n\t\tand two tabs",
    "    four spaces\n        eight spaces\n",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "git commit -m \"fix: handle empty input\" && make test",
    "a->b->c; a.b.c; a::b::c; a=>b; a<=b; a>=b; a!=b; a==b",
    "<div class=\"x\"><p>Hi</p></div>",
    "$ echo $HOME | grep -v root > /dev/null 2>&1",
]

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345", "123456789", "1234567890123456789012345",
    "3.14159", "-0.5", "+1e-10", "6.02214076e23", "1,000,000", "1.000.000,50", "0x1F", "0b1010",
    "2024-06-11", "11/06/2024", "12:34:56", "2024-06-11T12:34:56Z", "v1.2.3",
    "+1 (555) 123-4567", "555-0100", "+44 20 7946 0958", "$1,234.56", "50%", "3/4", "1st 2nd 3rd 4th",
    "99 bottles", "a1b2c3", "x86_64", "0000000000", "3.0.0-rc1", "1e100",
    "\u0661\u0662\u0663", "\u0967\u0968\u0969", "\uff11\uff12\uff13", "\u00bd \u00b2 \u2153",
]

WHITESPACE = [
    " ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\r\n\r\n",
    " leading space", "  two leading spaces", "trailing space ", "trailing spaces   ",
    "  both sides  ", "a  b   c    d", "a\tb\tc", "a \t b", "line1\nline2", "line1\r\nline2",
    "line1\n\nline2", "line1 \n line2", "end with newline\n", "\nstart with newline",
    " \n ", "\t\n\t", "word \n\n  word", "x\x0by\x0cz", "nbsp\u00a0here", "ideographic\u3000space",
    "thin\u2009space", "line\u2028separator", "next\u0085line", "zero\u200bwidth", "\ufeffbom at start",
    "spaces before newline   \nnext", "   \n   \n   ",
]

CONTRACTIONS = [
    "it's", "don't", "you're", "we've", "I'm", "we'll", "he'd", "IT'S", "DON'T", "YOU'RE",
    "I'M", "WE'LL", "HE'D", "We'Ve", "John's book", "JOHN'S BOOK", "it\u2019s", "don\u2019t",
    "can't won't shouldn't", "'s", "''", "rock 'n' roll", "'quoted'", "the '90s", "o'clock",
    "y'all'd've", "'S", "'sup", "ma'am", "I'd've",
]

ACCENTS = [
    "caf\u00e9", "cafe\u0301", "na\u00efve", "nai\u0308ve", "r\u00e9sum\u00e9", "re\u0301sume\u0301",
    "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "\u212bngstr\u00f6m", "Stra\u00dfe", "STRASSE",
    "\u00e0 \u00e1 \u00e2 \u00e3 \u00e4 \u00e5 \u00e6 \u00e7", "\u00c0\u00c9\u00ce\u00d5\u00dc",
    "pi\u00f1ata", "pin\u0303ata", "se\u00f1or Mu\u00f1oz", "\u0152uvre", "fa\u00e7ade",
    "Z\u00fcrich", "Zu\u0308rich", "\u00fc\u0308", "e\u0301\u0301\u0301", "\u1e9b\u0323",
    "\ufb01 ligature", "\u01c4 \u01c5 \u01c6", "\u0130stanbul", "\u00a9 \u00ae \u2122 \u00b0 \u00b5",
    "\u00bfQu\u00e9 tal?", "\u00a1Hola!", "\u00d8resund", "\u0141\u00f3d\u017a",
]

CJK = [
    "\u4f60\u597d", "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
    "\u6771\u4eac\u90fd", "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a",
    "\uc548\ub155\ud558\uc138\uc694", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u4e2d\u6587English\u6df7\u5408mixed", "\u6f22\u5b57\u3068\u304b\u306a\u3068\u30ab\u30ca",
    "\uff21\uff22\uff23\uff41\uff42\uff43", "\u3001\u3002\u300c\u300d\u300e\u300f",
    "\U00020000\U0002a6d6", "\u9f98", "\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341",
    "\u6587\u5b57\u5316\u3051\uff1f",
]

EMOJI = [
    "\U0001f600", "\U0001f44b", "\U0001f44b\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f1fa\U0001f1f8", "\U0001f1ef\U0001f1f5\U0001f1eb\U0001f1f7", "\u2764\ufe0f", "\u2764",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "I \u2764\ufe0f NY", "ok \U0001f44d\U0001f3fb\U0001f44d\U0001f3ff",
    "\U0001f9d1\u200d\U0001f4bb coding", "\U0001f600\U0001f600\U0001f600", "1\ufe0f\u20e3",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "emoji\U0001f680at end",
]

SCRIPTS = [
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629\u064f",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430 \u0420\u043e\u0441\u0441\u0438\u0438.",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u03c3\u03bf\u03c6\u03af\u03b1 \u03a3\u039f\u03a6\u0399\u0391",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "\u0531\u0562\u0563", "\u0dc3\u0dd2\u0d82\u0dc4\u0dbd", "\u1780\u1798\u17d2\u1796\u17bb\u1787\u17b6",
    "Hello \u041f\u0440\u0438\u0432\u0435\u0442 \u4f60\u597d \u0645\u0631\u062d\u0628\u0627",
]

SPECIALS = [
    "<s>", "</s>", "<unk>", "<pad>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
    "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|reserved_special_token_0|>", "[CLS]", "[SEP]", "[UNK]",
    "<0x41>", "<0x0A>", "<0xFF>", "\u2581", "\u2581\u2581hello", "\u0120hello",
    "<s>Hello</s>", "text<|endoftext|>more text", "<|im_start|>user\nhi<|im_end|>\n",
    "<s> <s> <s>", "< s >", "<|endoftext", "<<s>>", "Hello <|begin_of_text|>world",
    "a <mask> b", "x<mask>y", "  <mask>  ", "<sep>  next", "  <both>  ", "cat concatenate cat. Cat cats",
    "Say hello world and  hello world", " hello world", "hello world, hello", "caf\u00e9 or cafe\u0301",
    "na\u00efve or nai\u0308ve", "[NOTE] note [NOTE]x", "[SW] x[SW]y",
]

LONG = [
    "a" * 300,
    "ab" * 120,
    "supercalifragilisticexpialidocious" * 4,
    "x" * 64 + " " + "y" * 64,
    "The " * 60,
    " " * 200,
    "\n" * 50,
    "9" * 200,
    "\u4f60" * 100,
    "\U0001f600" * 40,
    "-" * 80,
    "=" * 40 + "\n" + "=" * 40,
    "Donaudampfschifffahrtsgesellschaftskapit\u00e4nsm\u00fctze",
]

URLS = [
    "https://example.com/path/to/page?query=1&x=y#frag",
    "http://www.example.org", "ftp://files.example.net/pub/file.tar.gz",
    "user@example.com", "https://huggingface.co/meta-llama/Llama-2-7b-hf/resolve/main/tokenizer.model",
    "www.\u4f8b\u3048.jp", "/usr/local/bin/python3", "C:\\Windows\\System32\\drivers",
    "https://en.wikipedia.org/wiki/Caf%C3%A9",
]

MARKDOWN = [
    "# Heading 1\n## Heading 2\n", "**bold** and *italic* and `code`", "- item 1\n- item 2\n  - nested",
    "1. first\n2. second", "> quoted text\n> more", "```python\nprint('hi')\n```",
    "[link](https://example.com) ![img](a.png)", "| a | b |\n|---|---|\n| 1 | 2 |",
    "---\ntitle: x\n---", "~~strike~~ __under__ ***both***",
]

SINGLE = [
    "a", "Z", ".", "!", "?", " ", "0", "'", "\"", "\\", "\t", "\x00", "\x01", "\x7f", "\u00e9", "\u00ff",
    "\u0100", "\u20ac", "\ufffd", "\uffff", "\U00010000", "\U0010ffff", "\u0301", "\u200d", "\u4e00",
]

INVALID = [
    b"\x80", b"\xbf", b"\x80\x80\x80", b"abc\x80def", b"abc\x80", b"\x80abc",
    b"\xc3", b"caf\xc3", b"\xc3caf", b"\xe2\x82", b"price \xe2\x82 100", b"\xf0\x9f\x98", b"smile \xf0\x9f\x98",
    b"\xf0\x9f", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x88\x80\x80\x80",
    b"\xff", b"\xfe", b"\xff\xfe", b"a\xffb", b"abc\xff", b"\xffabc",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80", b"x\xed\xa0\x80y",
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xc3\xa9\x80", b"\xc3\xc3\xa9", b"\xe4\xbd\xe5\xa5\xbd",
    b"The \xe2\x80 quote", b"\xc2", b"tab\t\xa0nbsp", b"<s>\xff</s>", b"\x80 \x80 \x80",
    b"line1\n\xfe\nline2",
]


def _shared_snippets(shared):
    """Short, fixed snippets quoted from ../shared/assets datasets."""
    out = []
    hs = os.path.join(shared, "assets", "hellaswag", "hellaswag_val_full.txt")
    if os.path.exists(hs):
        with open(hs, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for _, ln in zip(range(4000), f)]
        picks = [ln for ln in lines if len(ln) > 40 and not ln.isdigit()]
        for ln in picks[0:400:25][:14]:
            out.append(("prose-hellaswag", ln[:200]))
    bq = os.path.join(shared, "assets", "boolq", "dev.jsonl")
    if os.path.exists(bq):
        with open(bq, encoding="utf-8") as f:
            rows = [json.loads(ln) for _, ln in zip(range(200), f)]
        for r in rows[0:200:20]:
            out.append(("prose-boolq", r["question"] + "?"))
            out.append(("prose-boolq", r["passage"][:180]))
    mm = os.path.join(shared, "assets", "mmlu-redux", "mmlu_redux_normalized.jsonl")
    if os.path.exists(mm):
        with open(mm, encoding="utf-8") as f:
            rows = [json.loads(ln) for _, ln in zip(range(3000), f)]
        for r in rows[0:3000:300]:
            out.append(("prose-mmlu", r["question"][:200]))
    return out


def build_corpus(shared):
    items = []
    items += [("prose", s) for s in PROSE]
    items += _shared_snippets(shared)
    items += [("code", s) for s in CODE]
    items += [("numbers", s) for s in NUMBERS]
    items += [("whitespace", s) for s in WHITESPACE]
    items += [("contractions", s) for s in CONTRACTIONS]
    items += [("accents", s) for s in ACCENTS]
    # NFC vs NFD forms of the same words, made explicitly.
    for w in ["\u00e9l\u00e8ve", "Cr\u00e8me br\u00fbl\u00e9e", "\u1ec7", "\u00c5", "\uac00\ud7a3"]:
        items.append(("accents-nfc", unicodedata.normalize("NFC", w)))
        items.append(("accents-nfd", unicodedata.normalize("NFD", w)))
    items += [("cjk", s) for s in CJK]
    items += [("emoji", s) for s in EMOJI]
    items += [("scripts", s) for s in SCRIPTS]
    items += [("special", s) for s in SPECIALS]
    items += [("long", s) for s in LONG]
    items += [("url", s) for s in URLS]
    items += [("markdown", s) for s in MARKDOWN]
    items += [("single", s) for s in SINGLE]
    items.append(("empty", ""))
    items += [("mixed", s) for s in [
        "The price is \u20ac42.50 (\u00a337) \u2014 cheap!",
        "Caf\u00e9 \u2615 at 8:30am with \u4f60\u597d and \U0001f600.",
        "def \u51fd\u6570(x):\n    return x  # \u6ce8\u91ca",
        "\u00abGuillemets\u00bb \u201ccurly\u201d \u2018single\u2019 \u201egerman\u201c",
        "x\u00b2 + y\u00b2 = z\u00b2; \u2200x \u2208 \u211d, \u221a4 = 2",
        "\u2190 \u2191 \u2192 \u2193 \u2194 \u21d2 \u2264 \u2265 \u2260",
    ]]
    out = [(c, s.encode("utf-8")) for c, s in items]
    out += [("invalid-utf8", b) for b in INVALID]
    return out


def write_corpus(corpus, path):
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for i, (cat, b) in enumerate(corpus):
            obj = {"id": i, "cat": cat, "hex": b.hex()}
            try:
                obj["text"] = b.decode("utf-8")
            except UnicodeDecodeError:
                pass
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")


# ======================================================================================
# Tokenizer-only fixtures
# ======================================================================================

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. The dog does not seem to mind; it has seen the "
    "fox many times before, and it knows the fox will be gone by evening.",
    "A language model reads a sequence of tokens and predicts the next one. Each layer mixes "
    "information between positions with attention, then transforms every position on its own with "
    "a small feed-forward network. We'll see that it's simpler than you'd think, and they're fast.",
    "In the morning the village market opens early. Farmers bring apples, pears, bread and cheese, "
    "and the baker sells warm rolls to the people waiting in line. By noon most of the stalls are "
    "empty and the square is quiet again. I'm sure you've been there; I've been there, too.",
    "Numbers are written with digits: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9. Ten plus twenty is thirty, and "
    "12 times 12 is 144. In 2024 she counted 365 days in the year, 24 hours in every day, 1,000,000 "
    "steps and 3.14159 pies. Call +1 (555) 123-4567 before 2024-06-11.",
    "When you run the program, it loads the weights from disk, moves them to the device, and then "
    "runs the layers one by one. If something goes wrong, it prints a message and stops.",
    "Good tests are small, fast and deterministic. They compare what the code computes with values "
    "that are known to be right, and they say clearly what went wrong when they fail.",
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) {\n"
    "        printf(\"%d: %s\\n\", i, argv[i]);\n    }\n    return 0;\n}\n",
    "static int ll_add(const float *a, const float *b, float *out, size_t n) {\n\tif (!a || !b) "
    "return -1;\n\tfor (size_t i = 0; i < n; ++i)\n\t\tout[i] = a[i] + b[i];\n\treturn 0;\n}\n",
    "def encode(self, text, add_special_tokens=True):\n    ids = []\n    for word in text.split():\n"
    "        ids.extend(self.vocab.get(word, [self.unk_id]))\n    return ids\n\n\nclass Tokenizer:\n"
    "    \"\"\"A tiny tokenizer.\"\"\"\n    def __init__(self, vocab):\n        self.vocab = vocab\n",
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}, "
    "\"normalizer\": null, \"added_tokens\": [{\"id\": 0, \"special\": true}]}",
    "Le renard brun rapide saute par-dessus le chien paresseux. C'est l'\u00e9t\u00e9 \u00e0 Paris, "
    "et le caf\u00e9 est tr\u00e8s bon. Les \u00e9l\u00e8ves fran\u00e7ais aiment la cr\u00e8me br\u00fbl\u00e9e.",
    "Der schnelle braune Fuchs springt \u00fcber den faulen Hund. Stra\u00dfen in M\u00fcnchen und "
    "Z\u00fcrich sind sch\u00f6n. Gr\u00fc\u00dfe aus K\u00f6ln!",
    "El r\u00e1pido zorro marr\u00f3n salta sobre el perro perezoso. \u00bfD\u00f3nde est\u00e1 la "
    "estaci\u00f3n? \u00a1Ma\u00f1ana es s\u00e1bado, se\u00f1or!",
    "\u0411\u044b\u0441\u0442\u0440\u0430\u044f \u043a\u043e\u0440\u0438\u0447\u043d\u0435\u0432\u0430\u044f "
    "\u043b\u0438\u0441\u0430 \u043f\u0440\u044b\u0433\u0430\u0435\u0442 \u0447\u0435\u0440\u0435\u0437 "
    "\u043b\u0435\u043d\u0438\u0432\u0443\u044e \u0441\u043e\u0431\u0430\u043a\u0443. \u041f\u0440\u0438\u0432\u0435\u0442, "
    "\u043c\u0438\u0440! \u041c\u043e\u0441\u043a\u0432\u0430 \u0438 \u0420\u043e\u0441\u0441\u0438\u044f.",
    "\u0397 \u03b3\u03c1\u03ae\u03b3\u03bf\u03c1\u03b7 \u03ba\u03b1\u03c6\u03ad \u03b1\u03bb\u03b5\u03c0\u03bf\u03cd "
    "\u03c0\u03b7\u03b4\u03ac\u03b5\u03b9. \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5.",
    "\u654f\u6377\u7684\u68d5\u8272\u72d0\u72f8\u8df3\u8fc7\u4e86\u61d2\u72d7\u3002\u4f60\u597d\uff0c\u4e16\u754c\uff01"
    "\u6211\u7231\u5317\u4eac\u3002\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3002\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002"
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3002",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645. \u0627\u0644\u0644\u063a\u0629 "
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629.",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e\u0964 \u0939\u093f\u0928\u094d\u0926\u0940 "
    "\u092d\u093e\u0937\u093e \u0938\u0941\u0902\u0926\u0930 \u0939\u0948\u0964",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01 \uc548\ub155\ud558\uc138\uc694 "
    "\U0001f600 \U0001f44b\U0001f3fd \u2764\ufe0f \U0001f1fa\U0001f1f8",
]


def training_text(corpus):
    texts = list(TRAIN_TEXT)
    for _, b in corpus:
        try:
            texts.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return texts


def _bytelevel_trainer(vocab_size, specials):
    return trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )


def _bytelevel(add_prefix_space, trim_offsets, use_regex):
    # Written as JSON: the Python constructors of the ByteLevel decoder and
    # post-processor ignore some of these options.
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets,
            "use_regex": use_regex}


def _patch(tok, fn):
    d = json.loads(tok.to_str())
    fn(d)
    return Tokenizer.from_str(json.dumps(d))


def _byte_level(s):
    """s in the GPT-2 byte-to-unicode alphabet (what a ByteLevel vocab holds)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    return "".join(table[b] for b in s.encode("utf-8"))


# Whole pre-tokens of the corpus added to the llama3 vocab WITHOUT merges that
# build them (like some tokens of the real Llama-3 vocab): with ignore_merges
# they come out as one token, without it the merges would split them.
LLAMA3_UNMERGED = ["Pneumonoultramicroscopicsilicovolcanoconiosis", " concatenate",
                   "Donaudampfschifffahrtsgesellschaftskapit\u00e4nsm\u00fctze", "\U0001f600\U0001f600\U0001f600",
                   " supercalifragilisticexpialidocious"]


def _finish_bpe(tok, ignore_merges, extra_vocab=()):
    """Rebuild the model from its JSON with the exact BPE options of the real files."""
    d = json.loads(tok.to_str())
    m = d["model"]
    for piece in extra_vocab:
        piece = _byte_level(piece)
        assert piece not in m["vocab"], piece
        m["vocab"][piece] = len(m["vocab"])
    m["dropout"] = None
    m["unk_token"] = None
    m["continuing_subword_prefix"] = None
    m["end_of_word_suffix"] = None
    m["fuse_unk"] = False
    m["byte_fallback"] = False
    m["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(d))


def make_llama3(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.train_from_iterator(text, trainer=_bytelevel_trainer(1500, []))
    tok = _finish_bpe(tok, ignore_merges=True, extra_vocab=LLAMA3_UNMERGED)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bot = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bot)]),
    ])

    def fix(d):  # exactly as in Meta-Llama-3-8B/tokenizer.json
        d["pre_tokenizer"]["pretokenizers"][1] = _bytelevel(False, True, False)
        d["post_processor"]["processors"][0] = _bytelevel(True, False, True)
        d["decoder"] = _bytelevel(True, True, True)
    tok = _patch(tok, fix)
    return tok, dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", model_max_length=131072,
                     clean_up_tokenization_spaces=True)


def make_qwen2(text):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.train_from_iterator(text, trainer=_bytelevel_trainer(1500, []))
    tok = _finish_bpe(tok, ignore_merges=False)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])

    def fix(d):  # exactly as in Qwen2-7B/tokenizer.json
        d["pre_tokenizer"]["pretokenizers"][1] = _bytelevel(False, False, False)
        d["post_processor"] = _bytelevel(False, False, False)
        d["decoder"] = _bytelevel(False, False, False)
    tok = _patch(tok, fix)
    return tok, dict(bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token=None,
                     model_max_length=32768, clean_up_tokenization_spaces=False, errors="replace",
                     split_special_tokens=False)


def make_wordlevel(text):
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=1200, min_frequency=1, special_tokens=specials,
                                        show_progress=False)
    tok.train_from_iterator(text, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    # No decoder: tokenizers then joins the tokens with single spaces.
    return tok, dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                     model_max_length=512, clean_up_tokenization_spaces=False)


GPT2_ADDED = [
    # (content, special, dict(flags))
    ("<|endoftext|>", True, dict(normalized=False)),
    ("<mask>", True, dict(lstrip=True, normalized=False)),           # RoBERTa style: eats spaces on the left
    ("<sep>", True, dict(rstrip=True, normalized=False)),            # eats spaces on the right
    ("<both>", True, dict(lstrip=True, rstrip=True, normalized=False)),
    ("[SW]", True, dict(single_word=True, normalized=False)),        # special + single_word
    ("cat", False, dict(single_word=True, normalized=True)),         # only as a whole word
    (" hello world", False, dict(normalized=False)),                 # non-special with spaces
    ("hello", False, dict(normalized=True)),                         # normalized pass (second)
    ("lo wor", False, dict(normalized=False)),                       # raw pass (first) overlaps "hello"
    ("caf\u00e9", False, dict(normalized=True)),                     # NFC'd: matches NFC and NFD input
    ("na\u00efve", False, dict(normalized=False)),                   # raw: matches only NFC input
    ("[NOTE]", False, dict(lstrip=True, rstrip=True, normalized=True)),
]


def make_gpt2_added(text):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.train_from_iterator(text, trainer=_bytelevel_trainer(1200, []))
    d = json.loads(tok.to_str())
    m = d["model"]
    m["continuing_subword_prefix"] = ""
    m["end_of_word_suffix"] = ""
    tok = Tokenizer.from_str(json.dumps(d))
    for content, special, flags in GPT2_ADDED:
        at = AddedToken(content, special=special, **flags)
        if special:
            tok.add_special_tokens([at])
        else:
            tok.add_tokens([at])

    def fix(d):  # as in gpt2/tokenizer.json
        d["pre_tokenizer"] = _bytelevel(False, True, True)
        d["post_processor"] = _bytelevel(True, False, True)
        d["decoder"] = _bytelevel(True, True, True)
    tok = _patch(tok, fix)
    return tok, dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                     mask_token="<mask>", sep_token="<sep>", model_max_length=1024,
                     clean_up_tokenization_spaces=False)


FIXTURE_MAKERS = {
    "llama3": make_llama3,
    "qwen2": make_qwen2,
    "wordlevel": make_wordlevel,
    "gpt2_added": make_gpt2_added,
}


STRING_MERGES = ("llama3", "qwen2")


def save_fixture(name, tok, special, path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.save_pretrained(path)
    if name in STRING_MERGES:
        # tokenizers >= 0.20 writes merges as ["a", "b"] pairs; the hub files of
        # Llama-3 and Qwen2 have the older "a b" strings.  Keep both forms in the
        # fixtures (gpt2_added and test/fixtures/* use pairs).
        tj = os.path.join(path, "tokenizer.json")
        with open(tj, encoding="utf-8") as f:
            d = json.load(f)
        merges = d["model"]["merges"]
        assert all(" " not in a and " " not in b for a, b in merges)
        d["model"]["merges"] = ["%s %s" % (a, b) for a, b in merges]
        with open(tj, "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(d, indent=2, ensure_ascii=False))
        again = Tokenizer.from_file(tj)
        probe = "Hello, world! It's 2024: caf\u00e9 \u4f60\u597d \U0001f600\n\tx"
        assert again.encode(probe).ids == tok.encode(probe).ids
    for fn in os.listdir(path):
        size = os.path.getsize(os.path.join(path, fn))
        if size > MAX_FIXTURE_FILE:
            raise SystemExit("%s/%s is %d bytes (> %d)" % (path, fn, size, MAX_FIXTURE_FILE))


# ======================================================================================
# Expected ids
# ======================================================================================

def hf_text(b):
    return b.decode("utf-8", errors="replace")


def describe(tokjson_path):
    d = json.load(open(tokjson_path, encoding="utf-8"))

    def short(x):
        if x is None:
            return None
        if x.get("type") == "Sequence":
            key = "normalizers" if "normalizers" in x else ("pretokenizers" if "pretokenizers" in x else
                                                           ("processors" if "processors" in x else "decoders"))
            return "Sequence[" + ", ".join(short(y) for y in x.get(key, [])) + "]"
        return json.dumps(x, sort_keys=True)
    return {k: short(d.get(k)) for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")}


def default_addition(fast, tok):
    """What ids_default adds around the plain ids (for the notes)."""
    a = tok.encode("hello", add_special_tokens=False).ids
    b = fast("hello")["input_ids"]
    n = len(b) - len(a)
    if n == 0:
        return "ids_default == ids (nothing added)"
    for i in range(len(b) - len(a) + 1):
        if b[i:i + len(a)] == a:
            pre = [fast.convert_ids_to_tokens(x) for x in b[:i]]
            post = [fast.convert_ids_to_tokens(x) for x in b[i + len(a):]]
            return "ids_default = %s + ids + %s" % (pre, post)
    return "ids_default differs from ids in an irregular way"


def write_expected(name, source, tokjson_path, fast, corpus, out_dir, extra_notes="", extra_header=None):
    tok = Tokenizer.from_file(tokjson_path)
    rows = []
    for i, (_, b) in enumerate(corpus):
        text = hf_text(b)
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_default = fast(text)["input_ids"]
        dec = tok.decode(ids, skip_special_tokens=False)
        rows.append({"id": i, "ids": ids, "ids_default": ids_default,
                     "decoded_hex": dec.encode("utf-8").hex()})
    added = default_addition(fast, tok)
    pre = fast("hello")["input_ids"]
    core = tok.encode("hello", add_special_tokens=False).ids
    k = next(i for i in range(len(pre) - len(core) + 1) if pre[i:i + len(core)] == core)
    prefix, suffix = pre[:k], pre[k + len(core):]
    odd = [r["id"] for r in rows if r["ids_default"] != prefix + r["ids"] + suffix]
    added += (" for every corpus string" if not odd else
              " except for corpus ids %s" % odd)
    d = describe(tokjson_path)
    notes = ("text = bytes.decode('utf-8', errors='replace'); ids = tokenizers.Tokenizer.from_file(tokenizer.json)"
             ".encode(text, add_special_tokens=False).ids; ids_default = AutoTokenizer.from_pretrained(dir)(text)"
             "['input_ids']; decoded_hex = Tokenizer.decode(ids, skip_special_tokens=False) as UTF-8. "
             + added + ". normalizer=%s; pre_tokenizer=%s" % (d["normalizer"], d["pre_tokenizer"]))
    if extra_notes:
        notes += ". " + extra_notes
    header = {"header": True, "source": source, "generator": GENERATOR, "tokenizers": tokenizers.__version__,
              "transformers": transformers.__version__, "tokenizer_class": type(fast).__name__,
              "count": len(rows)}
    header.update(extra_header or {})
    header["notes"] = notes
    path = os.path.join(out_dir, name + ".jsonl")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(json.dumps(header, ensure_ascii=True) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True, separators=(",", ":")) + "\n")
    print("  %-14s %6d bytes  %s" % (name, os.path.getsize(path), added))
    return rows


def convert_llama2(model_path, out_dir, legacy):
    """Convert a SentencePiece tokenizer.model with transformers (LlamaTokenizerFast)."""
    tmp = tempfile.mkdtemp(prefix="ll-llama2-")
    try:
        shutil.copy(model_path, os.path.join(tmp, "tokenizer.model"))
        cfg = {"tokenizer_class": "LlamaTokenizer", "legacy": legacy, "add_bos_token": True,
               "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "clean_up_tokenization_spaces": False, "model_max_length": 4096}
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        fast = AutoTokenizer.from_pretrained(tmp, use_fast=True)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        fast.save_pretrained(out_dir)
    finally:
        shutil.rmtree(tmp)
    return AutoTokenizer.from_pretrained(out_dir)


# ---------------------------------------------------------------------------- spm_encode

def spm_eligible(corpus):
    keep, skip = [], []
    for i, (_, b) in enumerate(corpus):
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            skip.append(i)
            continue
        if "\n" in s or "\r" in s:
            skip.append(i)
            continue
        keep.append((i, s))
    return keep, skip


def run_spm_encode(model, texts):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        for s in texts:
            f.write(s.encode("utf-8") + b"\n")
        inp = f.name
    try:
        r = subprocess.run(["spm_encode", "--model=" + model, "--output_format=id", "--input=" + inp],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        os.unlink(inp)
    lines = r.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(texts):
        raise SystemExit("spm_encode returned %d lines for %d inputs" % (len(lines), len(texts)))
    return [[int(x) for x in ln.split()] for ln in lines]


def spm_version():
    try:
        r = subprocess.run(["spm_encode", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.stdout.decode().strip()
    except OSError:
        return None


def write_spm(name, model, source, corpus, out_dir, hf_rows=None):
    import sentencepiece as spm
    keep, skip = spm_eligible(corpus)
    ids = run_spm_encode(model, [s for _, s in keep])
    sp = spm.SentencePieceProcessor(model_file=model)
    py = [sp.encode(s) for _, s in keep]
    py_diff = [i for (i, _), a, b in zip(keep, ids, py) if a != b]
    notes = ("spm_encode --model=<model> --output_format=id (no BOS/EOS), one corpus string per line; "
             "strings with \\n or \\r or invalid UTF-8 are skipped (skipped_ids). Python sentencepiece %s "
             "encode() %s" % (spm.__version__,
                              "agrees on every string" if not py_diff else
                              "DISAGREES on ids %s" % py_diff))
    hf_diff = None
    if hf_rows is not None:
        hf_diff = [i for (i, _), a in zip(keep, ids) if hf_rows[i]["ids"] != a]
        notes += ("; HF-converted tokenizer (expected/llama2.jsonl 'ids') differs on %d of %d strings: %s"
                  % (len(hf_diff), len(keep), hf_diff))
    header = {"header": True, "source": source, "generator": GENERATOR, "spm_encode": spm_version(),
              "sentencepiece_python": spm.__version__, "python_agrees": not py_diff,
              "count": len(keep), "skipped_ids": skip, "notes": notes}
    path = os.path.join(out_dir, name + ".jsonl")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(json.dumps(header, ensure_ascii=True) + "\n")
        for (i, _), a in zip(keep, ids):
            f.write(json.dumps({"id": i, "ids": a}, separators=(",", ":")) + "\n")
    print("  %-14s %6d bytes  %d strings, %d skipped, python %s%s" % (
        name, os.path.getsize(path), len(keep), len(skip), "agrees" if not py_diff else "DISAGREES %s" % py_diff,
        "" if hf_diff is None else ", HF differs on %d: %s" % (len(hf_diff), hf_diff)))
    return keep, ids, py_diff, hf_diff


# ======================================================================================

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "test", "tokenizer"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(root), "shared"))
    ap.add_argument("--only", nargs="*", default=None, help="expected-id names to (re)write")
    ap.add_argument("--no-spm", action="store_true")
    ap.add_argument("--llama2-out", default="/tmp/llama2-hf")
    args = ap.parse_args()
    shared_rel = "../shared"
    want = lambda n: not args.only or n in args.only  # noqa: E731

    print("transformers %s, tokenizers %s" % (transformers.__version__, tokenizers.__version__))
    os.makedirs(os.path.join(args.out, "fixtures"), exist_ok=True)
    exp_dir = os.path.join(args.out, "expected")
    os.makedirs(exp_dir, exist_ok=True)

    corpus = build_corpus(args.shared)
    write_corpus(corpus, os.path.join(args.out, "corpus.jsonl"))
    n_invalid = sum(1 for c, _ in corpus if c == "invalid-utf8")
    print("corpus: %d strings (%d invalid UTF-8)" % (len(corpus), n_invalid))

    text = training_text(corpus)
    for name, maker in FIXTURE_MAKERS.items():
        tok, special = maker(text)
        save_fixture(name, tok, special, os.path.join(args.out, "fixtures", name))
        print("fixture %-10s vocab %d" % (name, tok.get_vocab_size()))

    print("expected ids:")
    targets = [("tiny-gpt2", os.path.join(args.shared, "assets", "tiny-gpt2"), shared_rel + "/assets/tiny-gpt2")]
    for fx in ("llama_gqa", "llama3_rope", "mistral", "qwen2", "gpt2"):
        targets.append(("fx-" + fx, os.path.join(root, "test", "fixtures", fx), "test/fixtures/" + fx))
    for name in FIXTURE_MAKERS:
        targets.append((name, os.path.join(args.out, "fixtures", name), "test/tokenizer/fixtures/" + name))
    for name, path, source in targets:
        if want(name):
            write_expected(name, source, os.path.join(path, "tokenizer.json"), AutoTokenizer.from_pretrained(path),
                           corpus, exp_dir)

    llama2_model = os.path.join(args.shared, "assets", "llama2-tokenizer", "tokenizer.model")
    llama2_rows = None
    if want("llama2") or want("spm-llama2"):
        fast = convert_llama2(llama2_model, args.llama2_out, legacy=True)
        d = describe(os.path.join(args.llama2_out, "tokenizer.json"))
        extra = ("converted by transformers %s LlamaConverter from tokenizer.model with tokenizer_config "
                 "{tokenizer_class: LlamaTokenizer, legacy: true, add_bos_token: true, add_eos_token: false} "
                 "(legacy=true is what the hub Llama-2 tokenizer.json has and what transformers assumes when "
                 "legacy is unset); the converted tokenizer.json (not in the repo) was written to %s; "
                 "post_processor=%s; decoder=%s" % (transformers.__version__, args.llama2_out,
                                                    d["post_processor"], d["decoder"]))
        llama2_rows = write_expected("llama2", shared_rel + "/assets/llama2-tokenizer/tokenizer.model",
                                     os.path.join(args.llama2_out, "tokenizer.json"), fast, corpus, exp_dir, extra,
                                     {"legacy": True, "normalizer": d["normalizer"],
                                      "pre_tokenizer": d["pre_tokenizer"]})

    if not args.no_spm:
        if want("spm-tok512"):
            write_spm("spm-tok512", os.path.join(args.shared, "assets", "stories260K", "tok512.model"),
                      shared_rel + "/assets/stories260K/tok512.model", corpus, exp_dir)
        if want("spm-llama2"):
            write_spm("spm-llama2", llama2_model, shared_rel + "/assets/llama2-tokenizer/tokenizer.model",
                      corpus, exp_dir, hf_rows=llama2_rows)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
