/* The Gram all-reduce over NCCL (GPUs), bootstrapped by MPI (which hands the NCCL unique
 * id from rank 0 to the others). libnccl is opened at run time (dlopen), not linked: a
 * machine without it still runs every other command, and only --reduce nccl says so. */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <mpi.h>
#include <nccl.h>
#include <stdlib.h>

#include "ll_mpi.h"

static struct {
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*comm_destroy)(ncclComm_t);
} ll_nccl_fn;

static ll_status ll_nccl_open(void) {
    if (ll_nccl_fn.all_reduce) return LL_OK;
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!h) h = dlopen("libnccl.so", RTLD_NOW | RTLD_GLOBAL);
    if (!h) return ll_err(LL_ERR_UNSUPPORTED, "--reduce nccl: cannot load libnccl.so.2 (%s)", dlerror());
    *(void **)&ll_nccl_fn.get_unique_id = dlsym(h, "ncclGetUniqueId");
    *(void **)&ll_nccl_fn.comm_init_rank = dlsym(h, "ncclCommInitRank");
    *(void **)&ll_nccl_fn.all_reduce = dlsym(h, "ncclAllReduce");
    *(void **)&ll_nccl_fn.comm_destroy = dlsym(h, "ncclCommDestroy");
    if (!ll_nccl_fn.get_unique_id || !ll_nccl_fn.comm_init_rank || !ll_nccl_fn.all_reduce || !ll_nccl_fn.comm_destroy) {
        ll_nccl_fn.all_reduce = NULL;
        return ll_err(LL_ERR_UNSUPPORTED, "--reduce nccl: libnccl lacks ncclAllReduce / ncclCommInitRank");
    }
    return LL_OK;
}

static ncclComm_t ll_nccl_comm;
static cudaStream_t ll_nccl_stream;
static bool ll_nccl_up;

bool ll_nccl_built(void) { return true; }

/* Sum n doubles in place across ranks through the device, in pieces of at most 64 MB. */
static ll_status ll_nccl_sum(double *x, size_t n) {
    const size_t piece = (size_t)1 << 23;
    double *d = NULL;
    size_t cap = n < piece ? n : piece;
    if (cudaMalloc((void **)&d, (cap ? cap : 1) * sizeof(double)) != cudaSuccess)
        return ll_err(LL_ERR_DEVICE, "NCCL all-reduce: cannot allocate %zu doubles on the device", cap);
    ll_status st = LL_OK;
    for (size_t at = 0; at < n && !st; at += piece) {
        size_t c = n - at < piece ? n - at : piece;
        if (cudaMemcpyAsync(d, x + at, c * sizeof(double), cudaMemcpyHostToDevice, ll_nccl_stream) != cudaSuccess ||
            ll_nccl_fn.all_reduce(d, d, c, ncclDouble, ncclSum, ll_nccl_comm, ll_nccl_stream) != ncclSuccess ||
            cudaMemcpyAsync(x + at, d, c * sizeof(double), cudaMemcpyDeviceToHost, ll_nccl_stream) != cudaSuccess ||
            cudaStreamSynchronize(ll_nccl_stream) != cudaSuccess)
            st = ll_err(LL_ERR_DEVICE, "NCCL all-reduce of %zu doubles failed", c);
    }
    cudaFree(d);
    return st;
}

static ll_status ll_nccl_allreduce_dd(void *user, double *hi, double *lo, size_t n) {
    (void)user;
    LL_TRY(ll_nccl_sum(hi, n));
    LL_TRY(ll_nccl_sum(lo, n));
    /* Renormalise the pairs (the sums of parts are no longer hi + small lo). */
    for (size_t i = 0; i < n; i++) {
        double h = hi[i], l = lo[i];
        hi[i] = 0;
        lo[i] = 0;
        ll_gram_dd_sum(hi + i, lo + i, &h, &l, 1);
    }
    return LL_OK;
}

ll_status ll_nccl_init(ll_lspade_comm *comm) {
    if (comm->size <= 1) return LL_OK; /* one process: nothing to reduce */
    if (!comm->allreduce_dd) return ll_err(LL_ERR_ARG, "--reduce nccl: start under mpirun (MPI bootstraps NCCL)");
    int nd = 0;
    if (cudaGetDeviceCount(&nd) != cudaSuccess || nd == 0)
        return ll_err(LL_ERR_DEVICE, "--reduce nccl: no CUDA device on rank %d", comm->rank);
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (cudaSetDevice((lr ? atoi(lr) : comm->rank) % nd) != cudaSuccess)
        return ll_err(LL_ERR_DEVICE, "--reduce nccl: cannot select a device on rank %d", comm->rank);
    /* Every rank must reach the broadcast below, so a rank that cannot load NCCL ends them all. */
    ll_status lst = ll_nccl_open();
    if (lst) return lst;
    ncclUniqueId id;
    if (comm->rank == 0 && ll_nccl_fn.get_unique_id(&id) != ncclSuccess) return ll_err(LL_ERR_DEVICE, "ncclGetUniqueId failed");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (ll_nccl_fn.comm_init_rank(&ll_nccl_comm, comm->size, id, comm->rank) != ncclSuccess)
        return ll_err(LL_ERR_DEVICE, "ncclCommInitRank failed on rank %d of %d", comm->rank, comm->size);
    if (cudaStreamCreate(&ll_nccl_stream) != cudaSuccess) {
        ll_nccl_fn.comm_destroy(ll_nccl_comm);
        return ll_err(LL_ERR_DEVICE, "NCCL: cannot create a stream");
    }
    ll_nccl_up = true;
    comm->allreduce_dd = ll_nccl_allreduce_dd;
    comm->name = "nccl";
    return LL_OK;
}

void ll_nccl_finalize(void) {
    if (!ll_nccl_up) return;
    ll_nccl_fn.comm_destroy(ll_nccl_comm);
    cudaStreamDestroy(ll_nccl_stream);
    ll_nccl_up = false;
}
