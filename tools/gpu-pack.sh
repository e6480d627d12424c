#!/usr/bin/env bash
# make gpu-pack: put the built binaries, and the shared libraries they load that a bare
# GPU machine may lack, into gpu-pack/ (git-ignored), for a machine that runs but cannot
# build them (see tools/gpu-check.sh). Left out: glibc's own libraries (the target has
# them) and CUDA's (libcublas*, libcudart*, libcuda*: the target's toolkit and driver
# provide them; cuBLAS alone is over 500 MB).
#
#   bash tools/gpu-pack.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
pack=gpu-pack
bins=(layerlab layerlab_tests layerlab_bench_gpu)
for b in "${bins[@]}"; do
  [ -x "$build/$b" ] || { echo "gpu-pack: $build/$b is missing: build with CUDA on first (make CUDA=1 all $build/layerlab_tests)" >&2; exit 1; }
done
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib"
for b in "${bins[@]}"; do
  # stripped: the debug info would take most of the 64 MiB a carried folder may hold
  strip -o "$pack/bin/$b" "$build/$b"
done
skip='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux.*|libcublas.*|libcublasLt|libcudart|libcuda|linux-vdso)\.so'
for b in "${bins[@]}"; do ldd "$build/$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  while read -r lib; do
    name=$(basename "$lib")
    if [[ $name =~ $skip ]]; then continue; fi
    cp -L "$lib" "$pack/lib/$name"
  done
ls "$pack/lib" | tr '\n' ' '
echo
# Compressed: with HDF5 (and what Debian's build of it links: curl, TLS, ...) the
# libraries alone pass 60 MB, and a carried folder may hold 64 MiB in all.
tar -C "$pack" -czf "$pack/lib.tar.gz" lib && rm -rf "$pack/lib"
du -sh "$pack" | awk '{print "gpu-pack: " $1 " in gpu-pack/ (bin/, lib.tar.gz: tools/gpu-check.sh unpacks it)"}'
