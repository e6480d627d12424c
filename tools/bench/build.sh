# Sourced by the bench scripts: compile one bench program against the library that
# `make` built, with the Makefile's own compiler, flags and libraries (MAKEFLAGS,
# and with it CUDA=0 or BUILD=..., is inherited from make).
#   ll_bench_build tools/bench/ll_bench_x.c   -> sets BIN=$BUILD/bench/ll_bench_x
# shellcheck disable=SC2016  # $($*) is for make, not the shell
ll_mkvar() { make -s --no-print-directory --eval='ll-print-%: ; @echo $($*)' "ll-print-$1" 2>/dev/null; }
ll_bench_build() {
    BUILD="$(ll_mkvar BUILD)"
    BUILD="${BUILD:-build}"
    local lib="$BUILD/liblayerlab.a" cc cflags ldflags ldlibs
    [ -f "$lib" ] || make --no-print-directory "$lib"
    cc="$(ll_mkvar CC)"
    cflags="$(ll_mkvar CPPFLAGS) $(ll_mkvar CFLAGS | sed 's/-MMD//; s/-MP//')"
    ldflags="$(ll_mkvar LDFLAGS)"
    ldlibs="$(ll_mkvar LDLIBS)"
    if nm "$lib" 2>/dev/null | grep -q cudaGetDeviceCount && ! grep -q cudart <<<"$ldlibs"; then
        ldlibs="$ldlibs -L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt"
    fi
    BIN="$BUILD/bench/$(basename "$1" .c)"
    mkdir -p "$BUILD/bench"
    # shellcheck disable=SC2086  # word splitting of the flag lists is intended
    ${cc:-cc} $cflags -Ihost "$1" "$lib" $ldflags $ldlibs -o "$BIN"
}
