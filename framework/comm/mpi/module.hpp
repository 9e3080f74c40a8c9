// The contract between the runtime and libgraft_comm_mpi.so, the MPI communicator built as a
// module and loaded only under mpirun: plain runs never load libmpi (startup stays fast) and
// a graft built with MPI still runs on a machine without it.
#pragma once

#include <cstdint>
#include <string>

#include "comm/job.hpp"

// Bumped whenever Job, Communicator or this entry change, so a stale module is refused
// instead of called through a different vtable.
#define GRAFT_COMM_MPI_MODULE_VERSION 2u
#define GRAFT_COMM_MPI_ENTRY "graft_comm_mpi_start"
#define GRAFT_COMM_MPI_LIBRARY "libgraft_comm_mpi.so"

extern "C" {
// Initialises MPI and returns the job (owned by the caller), or NULL with *error set.
typedef graft::runtime::Job* (*graft_comm_mpi_start_fn)(uint32_t version, double timeout_s,
                                                        std::string* error);
}
