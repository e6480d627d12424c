/* The MPI glue: world communicator and a double-double MPI_Allreduce for the Grams. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "ll_mpi.h"

static bool ll_mpi_started;
static MPI_Datatype ll_dd_type;
static MPI_Op ll_dd_op;

bool ll_mpi_built(void) { return true; }

/* (hi, lo) pairs: inout += in, in double-double. */
static void ll_dd_op_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    double *a = in, *b = inout;
    for (int i = 0; i < *len; i++) {
        double hi = b[2 * i], lo = b[2 * i + 1];
        ll_gram_dd_sum(&hi, &lo, a + 2 * i, a + 2 * i + 1, 1);
        b[2 * i] = hi;
        b[2 * i + 1] = lo;
    }
}

static ll_status ll_mpi_allreduce_dd(void *user, double *hi, double *lo, size_t n) {
    (void)user;
    /* Interleave into pairs; in pieces so that counts stay within int. */
    const size_t piece = (size_t)1 << 24;
    double *buf = malloc((n < piece ? n : piece) * 2 * sizeof(double));
    if (!buf && n) return ll_err(LL_ERR_NOMEM, "MPI all-reduce: no memory for %zu values", n);
    for (size_t at = 0; at < n; at += piece) {
        size_t c = n - at < piece ? n - at : piece;
        for (size_t i = 0; i < c; i++) {
            buf[2 * i] = hi[at + i];
            buf[2 * i + 1] = lo[at + i];
        }
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)c, ll_dd_type, ll_dd_op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) {
            free(buf);
            return ll_err(LL_ERR_IO, "MPI_Allreduce of %zu values failed (code %d)", c, rc);
        }
        for (size_t i = 0; i < c; i++) {
            hi[at + i] = buf[2 * i];
            lo[at + i] = buf[2 * i + 1];
        }
    }
    free(buf);
    return LL_OK;
}

ll_status ll_mpi_init(int *argc, char ***argv, ll_lspade_comm *comm) {
    *comm = (ll_lspade_comm){.rank = 0, .size = 1, .name = "none"};
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return LL_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return ll_err(LL_ERR_IO, "MPI_Init failed");
    ll_mpi_started = true;
    MPI_Type_contiguous(2, MPI_DOUBLE, &ll_dd_type);
    MPI_Type_commit(&ll_dd_type);
    MPI_Op_create(ll_dd_op_fn, 1, &ll_dd_op);
    MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
    comm->allreduce_dd = ll_mpi_allreduce_dd;
    comm->name = "mpi";
    return LL_OK;
}

void ll_mpi_finalize(void) {
    if (!ll_mpi_started) return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Op_free(&ll_dd_op);
    MPI_Type_free(&ll_dd_type);
    MPI_Finalize();
    ll_mpi_started = false;
}

void ll_mpi_abort(int code) {
    if (ll_mpi_started) MPI_Abort(MPI_COMM_WORLD, code);
}
