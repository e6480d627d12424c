# layerlab: the only entry point.
#   make            build build/liblayerlab.a and build/layerlab
#   make test       build and run the Criterion suites
#   make demo       run the demo (see README)
#   make asan       the suites once more under AddressSanitizer + UBSan
#   make bench      CPU benchmarks against PyTorch / Hugging Face transformers (and tokenizers):
#                   bench-tok, bench-dump, bench-icl and bench-spade below, plus prefill/decode
#   make bench-tok  only the tokenizer benchmark against Hugging Face tokenizers
#   make bench-dump only the activation-dump benchmark against transformers + h5py
#   make bench-icl  only the ICL (layer x position) patch-sweep benchmark against the naive
#                   loop and Hugging Face / PyTorch forward-hook loops (tools/bench/icl_sweep.sh)
#   make bench-spade only the SPADE-EXIT early-exit benchmark (tools/bench/spade_exit.sh)
#   make fuzz       build and run the libFuzzer targets (FUZZ_SECONDS each)
#   make fixtures   regenerate test/fixtures with Hugging Face transformers
#   make toy-model  retrain data/models/toy-llama (the built-in model organism) from scratch
# CUDA sources compile whenever nvcc is present; CUDA=0 turns them off.

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= sm_90
BUILD ?= build
SAN ?=

CC ?= gcc
OPT ?= -O2 -g
CFLAGS += $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP $(SAN)
# Shell look-ups run once here, not on every compile line (:= expands immediately).
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5 2>/dev/null)
HDF5_LIBS := $(shell pkg-config --libs hdf5 2>/dev/null || echo -lhdf5)
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
CPPFLAGS += $(HDF5_CFLAGS)
# OpenBLAS built on OpenMP (Debian's openblas-openmp flavour, found by path so the
# system-wide libblas choice does not matter): its threads are the same libgomp team as
# our own parallel loops. With the pthreads flavour the two pools fight for the cores:
# idle OpenMP workers spin while the BLAS threads need those cores.
BLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INC ?= /usr/include/$(MULTIARCH)/openblas-openmp
CPPFLAGS += -I$(BLAS_INC)
LDLIBS += $(HDF5_LIBS) -lcjson -lpcre2-8 -lunistring -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lm -lpthread
LDFLAGS += -fopenmp $(SAN)

# Host files that need CUDA (backend, GPU tuned lens, GPU ridge), MPI or NCCL, and their
# stand-ins (*_none.c) when the build has none.
HOST_SRC := $(shell find host -name '*.c' -not -path 'host/backend/cuda/*' -not -name 'll_devices_none.c' \
              -not -name 'll_lens_cuda.c' -not -name 'll_lens_cuda_none.c' -not -name 'll_mpi.c' \
              -not -name 'll_mpi_none.c' -not -name 'll_ridge_gpu_none.c' -not -name 'll_nccl.c' -not -name 'll_nccl_none.c')
# MPI (data-parallel L-SPADE fitting, host/lspade/ll_mpi.c) whenever mpicc is present; MPI=0 turns it off.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPI ?= $(if $(MPICC),1,0)
ifeq ($(MPI),1)
  CPPFLAGS += $(shell $(MPICC) -showme:compile 2>/dev/null || pkg-config --cflags ompi 2>/dev/null) -DLL_WITH_MPI=1
  LDLIBS += $(shell $(MPICC) -showme:link 2>/dev/null || pkg-config --libs ompi 2>/dev/null)
  HOST_SRC += host/lspade/ll_mpi.c
else
  HOST_SRC += host/lspade/ll_mpi_none.c
endif
ifeq ($(CUDA),1)
  HOST_SRC += $(wildcard host/backend/cuda/*.c) host/lens/ll_lens_cuda.c
  CU_SRC := $(wildcard kernels/*.cu host/backend/cuda/*.cu)
  CPPFLAGS += -I$(CUDA_HOME)/include -DLL_WITH_CUDA=1 -DLL_CUDA_MIN_CC=$(patsubst sm_%,%,$(subst a,,$(CUDA_ARCH)))
  # cuBLAS from the toolkit as a shared library (found through the rpath, or LD_LIBRARY_PATH
  # on a machine that has the same CUDA major version elsewhere); the runtime statically.
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lstdc++
  NVCCFLAGS ?= -O3 -arch=$(CUDA_ARCH) -std=c++17 -Xcompiler -fPIC -Xptxas -warn-spills --resource-usage
else
  HOST_SRC += host/backend/ll_devices_none.c host/lens/ll_lens_cuda_none.c host/lspade/ll_ridge_gpu_none.c
  CU_SRC :=
endif
# NCCL (the Gram all-reduce between GPUs, host/lspade/ll_nccl.c) needs MPI to bootstrap and CUDA;
# libnccl itself is opened at run time (dlopen), so the binaries do not depend on it.
NCCL ?= $(if $(and $(filter 1,$(MPI)),$(filter 1,$(CUDA)),$(wildcard $(CUDA_HOME)/include/nccl.h)),1,0)
ifeq ($(NCCL),1)
  HOST_SRC += host/lspade/ll_nccl.c
else
  HOST_SRC += host/lspade/ll_nccl_none.c
endif
TOOL_SRC := $(wildcard tools/cli/*.c)
# The GPU benchmark needs the CUDA backend: built (so CI compiles it) whenever CUDA is on.
GPU_BENCH := $(if $(filter 1,$(CUDA)),$(BUILD)/layerlab_bench_gpu)
# test/gpu: CUDA-vs-CPU suites; they skip, saying why, without a device.
TEST_SRC := $(wildcard test/test_*.c test/gpu/test_*.c) test/ll_test_util.c

LIB_OBJ := $(HOST_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps test asan demo bench bench-tok bench-dump bench-icl bench-spade fuzz fixtures clean check-ci gpu-check gpu-pack toy-model
all: deps $(BUILD)/liblayerlab.a $(BUILD)/layerlab $(GPU_BENCH)

deps:
	@bash tools/deps.sh build

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Ihost -Itest -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Ihost -c $< -o $@

$(BUILD)/liblayerlab.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/layerlab: $(TOOL_OBJ) $(BUILD)/liblayerlab.a
	$(CC) $(LDFLAGS) $(TOOL_OBJ) $(BUILD)/liblayerlab.a $(LDLIBS) -o $@

$(BUILD)/layerlab_bench_gpu: $(BUILD)/tools/bench/ll_bench_gpu.o $(BUILD)/liblayerlab.a
	$(CC) $(LDFLAGS) $< $(BUILD)/liblayerlab.a $(LDLIBS) -o $@

$(BUILD)/layerlab_tests: $(TEST_OBJ) $(BUILD)/liblayerlab.a
	$(CC) $(LDFLAGS) $(TEST_OBJ) $(BUILD)/liblayerlab.a -lcriterion $(LDLIBS) -o $@

# One binary, one Criterion summary. Tests run from the repository root so that
# test/fixtures and ../shared/assets resolve the same way everywhere.
test: deps $(BUILD)/layerlab_tests $(BUILD)/layerlab $(GPU_BENCH)
	$(BUILD)/layerlab_tests --jobs 2 $(TEST_ARGS)

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" OPT="-O1 -g" test

# The demo builds with two jobs even when make was called without -j (a fresh clone builds
# everything first), then adds matplotlib for its plots.
demo:
	@$(MAKE) --no-print-directory -j2 all
	@bash tools/deps.sh plot
	@bash tools/demo.sh

bench: all
	@bash tools/deps.sh bench
	@bash tools/bench/run.sh
	@bash tools/bench/tok.sh
	@bash tools/bench/dump.sh
	@BUILD=$(BUILD) bash tools/bench/icl_sweep.sh
	@LAYERLAB=$(BUILD)/layerlab bash tools/bench/spade_exit.sh bench-out/spade-exit

bench-tok: all
	@bash tools/deps.sh bench
	@bash tools/bench/tok.sh

bench-dump: all
	@bash tools/deps.sh bench
	@bash tools/bench/dump.sh

# The Hugging Face peer needs .venv-fixtures; without it (offline) icl_sweep.sh says
# "skipped" for that peer and still runs the others.
bench-icl: all
	@bash tools/deps.sh bench
	@bash tools/fixtures-env.sh --setup-only || echo "bench-icl: no .venv-fixtures; the Hugging Face peer will be skipped" >&2
	@BUILD=$(BUILD) bash tools/bench/icl_sweep.sh

bench-spade: all
	@LAYERLAB=$(BUILD)/layerlab bash tools/bench/spade_exit.sh bench-out/spade-exit

FUZZ_SECONDS ?= 60
fuzz:
	@bash tools/deps.sh build fuzz
	@bash tools/fuzz.sh $(FUZZ_SECONDS)

fixtures:
	@bash tools/fixtures-env.sh
	@bash tools/fixtures-env.sh --tok

clean:
	rm -rf build build-asan build-fuzz

# About 22 minutes on one core of a shared 2-core machine; see data/models/toy-llama/README.md.
toy-model: all $(BUILD)/layerlab_tests
	@BUILD=$(BUILD) bash tools/toy-model.sh

# make gpu-check: build, then test/gpu and the GPU benchmarks against transformers, with a
# short table and logs in $OUT (or ./gpu-results). make gpu-pack: the same binaries and the
# non-CUDA libraries they load, in gpu-pack/, for a GPU machine that cannot build them.
gpu-check:
	@bash tools/gpu-check.sh

gpu-pack: all $(BUILD)/layerlab_tests
	@bash tools/gpu-pack.sh $(BUILD)

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/tools/bench/ll_bench_gpu.d
