// The job a process belongs to: its world communicator, the watchdog's timeout, and how a rank
// that failed ends the job. MPI when the process was started by mpirun, a world of one otherwise.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace graft::runtime {

class Job {
 public:
  virtual ~Job() = default;  // MPI: stops the watchdog and finalises
  virtual Communicator& world() = 0;
  // True under mpirun (even with -np 1): errors then say which rank printed them.
  virtual bool distributed() const = 0;
  // Seconds a collective or receive may wait before the watchdog ends the job ([parallel]
  // timeout_s). Applies to every communicator of the job, split ones included.
  virtual void set_timeout(double seconds) = 0;
  virtual double timeout() const = 0;
  // How the watchdog's reports name each world rank beside its number, by world rank: its
  // place on the device mesh ("data 0, pipeline 1, tensor 1"). Empty: numbers alone.
  virtual void set_rank_labels(std::vector<std::string> labels) = 0;
  // For a rank whose command failed, after it printed its error. Locally: returns exit_code.
  // Under MPI: waits briefly for the other ranks, so that when they fail alike (a bad config)
  // each prints its own error; if all did, MPI is finalised and exit_code returned; otherwise
  // the job is aborted with exit_code (MPI_Abort), so no rank is left waiting for this one.
  virtual int fail(int exit_code) = 0;
};

// True when a launcher (mpirun, srun with PMIx) started this process; read from its
// environment so a plain run never loads MPI.
bool launched_by_mpi();

// MPI (initialised here, with MPI_THREAD_MULTIPLE for the watchdog) when launched_by_mpi(),
// else the local world. Once per process: MPI cannot be initialised twice.
std::unique_ptr<Job> start_job(double timeout_s = 300);

}  // namespace graft::runtime
