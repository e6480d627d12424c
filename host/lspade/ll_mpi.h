/* Data-parallel L-SPADE fitting across processes: the Gram all-reduce over MPI.
 *
 * Built with MPI when the Makefile finds mpicc (MPI=1; host/lspade/ll_mpi.c), else as stubs
 * (host/lspade/ll_mpi_none.c) that report a single process. A process started by mpirun
 * (Open MPI's or PMIx's environment variables are set) initialises MPI; a plain start does
 * not touch MPI at all, so the same binary works both ways. */
#ifndef LL_MPI_H
#define LL_MPI_H

#include <stdbool.h>

#include "ll_lspade.h"

/* true when this build has MPI. */
bool ll_mpi_built(void);
/* Fill comm: under mpirun, MPI_Init and the world communicator with the double-double sum
 * (one MPI_Allreduce per Gram, a user-defined operation on (hi, lo) pairs, so the sum
 * keeps the exactness the Grams are accumulated with); otherwise rank 0 of 1. */
ll_status ll_mpi_init(int *argc, char ***argv, ll_lspade_comm *comm);
/* Barrier (so rank 0's file is complete before any rank exits) and MPI_Finalize, when
 * ll_mpi_init started MPI. */
void ll_mpi_finalize(void);
/* After a failure on one rank: end every rank (MPI_Abort), since the others would wait in
 * the all-reduce forever. Does nothing when MPI was not started. */
void ll_mpi_abort(int code);

/* The GPU variant (built when MPI, CUDA and NCCL are all present: host/lspade/ll_nccl.c):
 * switch an MPI communicator's reduction to ncclAllReduce on device `local_rank %
 * devices`. The high and low parts are summed separately (ncclSum on doubles), so the
 * result is exact to fp64 rounding, not bit-equal to the MPI path. Needs ll_mpi_init first.
 * Without NCCL in the build: an error saying so. */
bool ll_nccl_built(void);
ll_status ll_nccl_init(ll_lspade_comm *comm);
void ll_nccl_finalize(void);

#endif
