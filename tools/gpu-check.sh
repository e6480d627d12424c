#!/usr/bin/env bash
# make gpu-check: the CUDA backend on a machine with a GPU, in one call, in under 8 minutes.
#
#   1. build (skipped when gpu-pack/ holds binaries made elsewhere by `make gpu-pack`)
#   2. the whole test suite, test/gpu included (CUDA vs CPU, op by op and model by model;
#      decode with CUDA graphs against decode without: gpu_decode::*)
#   3. the GPU benchmark: a Llama-7B-shaped model with random bf16 weights
#   4. the Hugging Face transformers peer on the same shapes (python3 with torch)
#   5. a short table: summary.md (also printed last), with the goals of issue 4
#
# Everything goes to $OUT (or ./gpu-results when OUT is unset): gpu.txt, tests.log,
# bench-layerlab.txt/.log, bench-hf.txt/.log, summary.md. Each step has its own time
# limit, so one that hangs cannot eat the others' time; a failed step is reported in
# the table and the script goes on. Exit status: 0 when every test passed and both
# benchmarks produced their numbers.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/gpu-results}
mkdir -p "$out"
t_start=$(date +%s)
status=0

say() { echo "gpu-check: $*" | tee -a "$out/steps.log"; }

# ---- 1. binaries ---------------------------------------------------------------------
libpath=""
if [ -x gpu-pack/bin/layerlab_tests ]; then
  bin=$root/gpu-pack/bin
  # The libraries travel compressed (the carried folder may hold 64 MiB).
  if [ -f gpu-pack/lib.tar.gz ] && [ ! -d gpu-pack/lib ]; then tar -C gpu-pack -xzf gpu-pack/lib.tar.gz; fi
  # Only the packed libraries this machine lacks are used: its own libstdc++ may be newer
  # than ours and needed by its cuBLAS, so ours must not shadow it.
  fallback=$out/.packed-libs
  rm -rf "$fallback" && mkdir -p "$fallback"
  for lib in gpu-pack/lib/*; do
    name=$(basename "$lib")
    ldconfig -p 2>/dev/null | grep -q "[[:space:]]$name " || ln -s "$root/$lib" "$fallback/$name"
  done
  libpath=$fallback
  say "using prebuilt binaries from gpu-pack/ (packed libraries used: $(ls "$fallback" | tr '\n' ' '))"
else
  say "building (make -j)"
  if ! make -j"$(nproc)" all build/layerlab_tests > "$out/build.log" 2>&1; then
    say "build FAILED (see build.log)"
    tail -30 "$out/build.log"
    exit 1
  fi
  bin=$root/build
fi
# cuBLAS: the toolkit's, or the one PyTorch's wheels bring.
cublas_dir=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
for d in /usr/local/cuda/lib64 "$cublas_dir"; do
  [ -n "$d" ] && [ -d "$d" ] && libpath="$libpath${libpath:+:}$d"
done
# Only our programs see these libraries: python3 (torch) keeps its own.
run() { LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

{ date -u '+%Y-%m-%d %H:%M UTC'; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || echo "no nvidia-smi"; } > "$out/gpu.txt"
gpu=$(sed -n 2p "$out/gpu.txt")
say "GPU: $gpu"
run "$bin/layerlab" info test/fixtures/llama_gqa > "$out/info.log" 2>&1 || true

# ---- 2. tests -------------------------------------------------------------------------
say "test suite (test/gpu included)"
run timeout 240 "$bin/layerlab_tests" --jobs 4 --verbose > "$out/tests.log" 2>&1
trc=$?
synth=$(grep -a "Synthesis" "$out/tests.log" | tail -1)
skipped=$(grep -ac "^\[SKIP\]" "$out/tests.log")
gpu_skipped=$(grep -a "^\[SKIP\] gpu_" "$out/tests.log" | head -3)
[ $trc -eq 0 ] || status=1
say "tests: rc $trc; ${synth:-no synthesis line}; $skipped skipped"
if [ -n "$gpu_skipped" ]; then
  say "GPU tests were SKIPPED, so the CUDA backend is unchecked: $gpu_skipped"
  status=1
fi
grep -a -E "^\[(FAIL|----)\]" "$out/tests.log" | head -40 > "$out/test-failures.txt"

# ---- 3. layerlab benchmark --------------------------------------------------------------
say "layerlab GPU benchmark"
run timeout 180 "$bin/layerlab_bench_gpu" --out "$out/bench-layerlab.txt" > "$out/bench-layerlab.log" 2>&1
brc=$?
[ $brc -eq 0 ] || { status=1; say "layerlab benchmark FAILED (rc $brc), see bench-layerlab.log"; tail -5 "$out/bench-layerlab.log"; }

# ---- 4. transformers peer -----------------------------------------------------------------
left=$((480 - ($(date +%s) - t_start) - 20))
if [ $left -gt 60 ]; then
  say "transformers peer ($left s left)"
  timeout "$left" python3 tools/bench/hf_peer_gpu.py --out "$out/bench-hf.txt" > "$out/bench-hf.log" 2>&1
  hrc=$?
  [ $hrc -eq 0 ] || { status=1; say "transformers peer FAILED (rc $hrc), see bench-hf.log"; tail -5 "$out/bench-hf.log"; }
else
  say "transformers peer skipped: only $left s of the 8 minutes left"
fi

# ---- 5. table -------------------------------------------------------------------------------
get() { awk -v k="$1" '$1 == k {print $2}' "$out"/bench-*.txt 2>/dev/null | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
pct() { awk -v a="$1" 'BEGIN { if (a == "") print "n/a"; else printf "%.1f%%", 100 * a }'; }
num() { awk -v a="$1" 'BEGIN { if (a == "") print "n/a"; else printf "%.4g", a }'; }
goal() { awk -v a="$1" -v g="$2" -v dir="$3" 'BEGIN { if (a == "" || a == "n/a") print "?"; else if ((dir == ">=" && a + 0 >= g) || (dir == "<" && a + 0 < g)) print "met"; else print "missed" }'; }
pre=$(get prefill_tok_s); hpre=$(get hf_prefill_tok_s); mfu=$(get prefill_mfu)
dec=$(get decode_tok_s); hdec=$(get hf_decode_tok_s); bwf=$(get decode_bw_fraction)
rov=$(get record_overhead); hrov=$(get hf_record_overhead)
gdec=$(get decode_graph_tok_s); gsp=$(get decode_graph_speedup)
speed=$(ratio "$pre" "$hpre")
{
  echo "# make gpu-check, $(sed -n 1p "$out/gpu.txt")"
  echo
  echo "GPU: $gpu"
  echo
  echo "Tests: ${synth:-none ran} (rc $trc), $skipped skipped"
  echo
  echo "| measure | layerlab | transformers (sdpa) | goal | |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| ceiling: bf16 GEMM, TFLOP/s | $(num "$(get ceiling_gemm_bf16_tflops)") | | | |"
  echo "| ceiling: device copy, GB/s | $(num "$(get ceiling_copy_gbs)") | | | |"
  echo "| prefill 8 x 2048, tokens/s | $(num "$pre") | $(num "$hpre") | >= 1.3x peer: $speed x | $(goal "$speed" 1.3 ">=") |"
  echo "| prefill MFU | $(pct "$mfu") | | >= 50% | $(goal "$mfu" 0.5 ">=") |"
  echo "| prefill, tensor-core attention (LL_ATTN=tc), tokens/s | $(num "$(get prefill_tc_tok_s)") | | MFU $(pct "$(get prefill_tc_mfu)"), logits nmse vs SIMT $(num "$(get prefill_tc_logits_nmse)") | |"
  echo "| decode batch 1, tokens/s | $(num "$dec") | $(num "$hdec") | | |"
  echo "| decode batch 1 with CUDA graphs, tokens/s | $(num "$gdec") | | speed-up over plain steps: $(num "$gsp") x | |"
  echo "| decode GB/s / copy bandwidth | $(pct "$bwf") | | >= 70% | $(goal "$bwf" 0.7 ">=") |"
  echo "| recording resid_post, all layers, overhead | $(pct "$rov") | $(pct "$hrov") | < 5% | $(goal "$rov" 0.05 "<") |"
  echo
  echo "Wall time: $(( $(date +%s) - t_start )) s. Logs: tests.log, bench-layerlab.log, bench-hf.log."
} > "$out/summary.md"
cat "$out/summary.md"
exit $status
