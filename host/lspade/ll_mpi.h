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

#endif
