/* The NCCL glue in a build without NCCL (or without MPI or CUDA, which it needs). */
#include "ll_mpi.h"

bool ll_nccl_built(void) { return false; }

ll_status ll_nccl_init(ll_lspade_comm *comm) {
    (void)comm;
    return ll_err(LL_ERR_UNSUPPORTED, "--reduce nccl: this layerlab was built without NCCL (needs MPI, CUDA and "
                                      "nccl.h; MPI=1 CUDA=1 NCCL=1)");
}

void ll_nccl_finalize(void) {}
