#!/usr/bin/env bash
# Set up the pinned Hugging Face reference environment (idempotently) and
# regenerate test/fixtures/ with tools/gen_fixtures.py.
#
#   bash tools/fixtures-env.sh            # regenerate every fixture
#   bash tools/fixtures-env.sh --only gpt2
#   bash tools/fixtures-env.sh --setup-only   # only the environment (used by make bench)
#   bash tools/fixtures-env.sh --tok          # regenerate test/tokenizer/ (corpus,
#                                             # tokenizer-only fixtures, expected ids)
#                                             # with tools/gen_tok_fixtures.py; extra
#                                             # arguments go to that script
#
# torch and numpy come from Debian (python3-torch 1.13.1, python3-numpy 1.24);
# the Hugging Face packages are pip-installed, pinned, into the git-ignored
# virtualenv .venv-fixtures (created with --system-site-packages so that it
# sees Debian's torch).  transformers 4.45.2 is the newest release that still
# runs on torch 1.13 and it knows Llama-3 "llama3" rope scaling, Mistral and
# Qwen2.  sentencepiece + protobuf let transformers convert a SentencePiece
# tokenizer.model into a fast tokenizer (tools/gen_tok_fixtures.py); Debian's
# `sentencepiece` package provides spm_encode, the reference for the
# SentencePiece expected ids.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-fixtures"
SYS_PY=/usr/bin/python3
SETUP_ONLY=0
GEN=tools/gen_fixtures.py
if [ "${1:-}" = "--setup-only" ]; then
    SETUP_ONLY=1
    shift
elif [ "${1:-}" = "--tok" ]; then
    GEN=tools/gen_tok_fixtures.py
    shift
fi

PINS=(
    transformers==4.45.2
    tokenizers==0.20.3
    safetensors==0.4.5
    huggingface-hub==0.25.2
    filelock==3.16.1
    fsspec==2024.9.0
    packaging==24.1
    regex==2024.9.11
    tqdm==4.66.5
    sentencepiece==0.2.0
    protobuf==4.25.5
)

# 1. Debian packages, only when missing.
missing=()
for pkg in python3 python3-torch python3-numpy python3-venv sentencepiece; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "fixtures-env: installing Debian packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# 2. The virtualenv, only when missing (or broken).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "fixtures-env: creating $VENV"
    rm -rf "$VENV"
    "$SYS_PY" -m venv --system-site-packages "$VENV"
fi

# 3. Pinned packages, only when some pin is not satisfied.
if ! "$VENV/bin/python" - "${PINS[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        bad.append("%s (have %s)" % (pin, have))
if bad:
    print("fixtures-env: need " + ", ".join(bad))
    sys.exit(1)
EOF
then
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input "${PINS[@]}"
fi

# 4. Generate.
[ "$SETUP_ONLY" = 1 ] && exit 0
cd "$ROOT"
exec "$VENV/bin/python" "$GEN" "$@"
