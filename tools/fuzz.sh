#!/usr/bin/env bash
# Build the libFuzzer targets in test/fuzz with clang (ASan + UBSan) and run each for
# $1 seconds (default 60), seeded from the fixtures and ../shared/assets where present.
# Crashes are written to build-fuzz/<target>/ and make the script fail.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
out=build-fuzz
mkdir -p "$out"
# Parsers only: no OpenMP or BLAS is needed, so the library sources are compiled without them.
srcs="host/core/ll_status.c host/core/ll_alloc.c host/core/ll_dtype.c host/io/ll_mmap.c host/io/ll_tensors.c
      host/io/ll_safetensors.c host/model/ll_config.c"
srcs="$srcs host/io/ll_gguf.c host/io/ll_llama2c.c $(ls host/tokenizer/*.c)"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -Ihost -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wno-unknown-pragmas"
status=0
for t in ${FUZZ_TARGETS:-test/fuzz/fuzz_*.c}; do
  name=$(basename "$t" .c)
  bin="$out/$name"
  clang $flags "$t" $srcs -lcjson -lpcre2-8 -lunistring -lm -lpthread -o "$bin"
  corpus="$out/$name.corpus"
  mkdir -p "$corpus"
  case "$name" in
    fuzz_safetensors) cp test/fixtures/*/expected.safetensors "$corpus/" 2>/dev/null || true
                      for f in test/fixtures/*/model.safetensors; do head -c 4096 "$f" > "$corpus/$(basename "$(dirname "$f")").st"; done ;;
    fuzz_tokenizer) for f in test/fixtures/*/tokenizer.json test/tokenizer/fixtures/*/tokenizer.json; do
                      cp "$f" "$corpus/$(basename "$(dirname "$f")").json"; done ;;
    fuzz_config) for f in test/fixtures/*/config.json; do cp "$f" "$corpus/$(basename "$(dirname "$f")").json"; done ;;
    fuzz_gguf) python3 tools/fuzz_gguf_seeds.py "$corpus" >/dev/null ;;
    fuzz_llama2c) python3 - "$corpus" <<'PY'
import struct, sys
# a valid two-layer checkpoint with a shared classifier, and one with its own
for shared in (1, -1):
    dim, hid, L, H, KV, V, S = 8, 16, 2, 2, 1, 6, 4
    kv = dim * KV // H
    n = V*dim + L*dim + L*dim*dim + 2*L*kv*dim + L*dim*dim + L*dim + 3*L*hid*dim + dim + S*(dim//H)
    n += 0 if shared > 0 else V*dim
    open(f"{sys.argv[1]}/seed{shared}.bin", "wb").write(struct.pack("<7i", dim, hid, L, H, KV, shared*V, S) + struct.pack(f"<{n}f", *([0.5]*n)))
PY
      ;;
  esac
  echo "== $name: ${secs}s"
  if ! (cd "$out" && "./$name" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
          -artifact_prefix="./$name-" $( [ -f "test/fuzz/${name#fuzz_}.dict" ] && echo "-dict=../test/fuzz/${name#fuzz_}.dict" ) \
          "$name.corpus" 2>"$name.log"); then
    echo "fuzz: $name found a failure; see $out/$name.log and $out/$name-crash-*" >&2
    tail -30 "$out/$name.log" >&2
    status=1
  fi
  grep -E "^#[0-9]+.*(DONE|pulse)" "$out/$name.log" | tail -1 || true
done
exit $status
