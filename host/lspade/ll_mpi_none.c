/* The MPI glue when the build has no MPI: always one process. */
#include <stdlib.h>

#include "ll_mpi.h"

bool ll_mpi_built(void) { return false; }

ll_status ll_mpi_init(int *argc, char ***argv, ll_lspade_comm *comm) {
    *comm = (ll_lspade_comm){.rank = 0, .size = 1, .name = "none"};
    /* Started by mpirun but built without MPI: every copy would fit everything alone and
     * they would all write the same file. Refuse instead. */
    const char *w = getenv("OMPI_COMM_WORLD_SIZE");
    if (w && atoi(w) > 1)
        return ll_err(LL_ERR_UNSUPPORTED, "started by mpirun with %s processes, but this layerlab was built without MPI "
                                          "(install libopenmpi-dev and rebuild: tools/deps.sh build)", w);
    return LL_OK;
}

void ll_mpi_finalize(void) {}

void ll_mpi_abort(int code) { (void)code; }
