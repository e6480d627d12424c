#!/usr/bin/env bash
# Install the Debian packages layerlab needs, only those that are missing.
# Usage: tools/deps.sh [build|bench|fuzz|fixtures|plot]...   (default: build)
set -euo pipefail
want=()
for what in "${@:-build}"; do
  case "$what" in
    build) want+=(gcc make pkg-config libhdf5-dev libcriterion-dev libcjson-dev libopenblas-openmp-dev libpcre2-dev libunistring-dev python3-h5py hdf5-tools libopenmpi-dev openmpi-bin) ;;
    plot) want+=(python3-matplotlib python3-numpy) ;;  # PNGs of lens, exit and icl (optional: the CLIs warn without)
    bench) want+=(python3-torch python3-numpy python3-venv python3-pip) ;;
    fuzz) want+=(clang libclang-rt-14-dev) ;;
    fixtures) want+=(python3-torch python3-numpy python3-venv python3-pip sentencepiece) ;;
    *) echo "deps.sh: unknown group '$what' (build, bench, fuzz, fixtures, plot)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
