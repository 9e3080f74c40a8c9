// What the MPI communicator's calls share: the watchdog bracket, count checks, waiting on an
// oversubscribed node, and the request of an operation in flight. Used by mpi_communicator.cpp
// and mpi_started.cpp, in the MPI module only.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.hpp"
#include "comm/mpi/pooled.hpp"

namespace graft::runtime::mpi::detail {

// Marks this rank as waiting in `op` for the length of one MPI call.
template <typename F>
void watched(Watchdog& watchdog, const OpRecord& op, const std::vector<int>* members, F&& f) {
  watchdog.begin(op, members);
  try {
    f();
  } catch (...) {
    watchdog.end(false);
    throw;
  }
  watchdog.end(true);
}

inline int mpi_count(int64_t n, const char* call, const char* what) {
  if (n > INT32_MAX)
    throw UserError(comm_call(call, what) + ": " + std::to_string(n) +
                    " elements are more than one MPI call moves (2^31 - 1); split the tensor");
  return static_cast<int>(n);
}

// Cut to fit the record: reports show the start of a long description.
inline void copy_text(char* out, size_t size, const char* text) {
  const size_t n = text ? std::min(std::strlen(text), size - 1) : 0;
  if (n) std::memcpy(out, text, n);
  out[n] = '\0';
}

inline bool overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes && b_bytes && pa < pb + b_bytes && pb < pa + a_bytes;
}

// More ranks on this node than it has cores. Open MPI waits by spinning, so a rank waiting
// for a message then takes the core of one that computes: four pipeline stages on two cores
// idled 45-60% where 16-43% was due. Such ranks sleep between tests instead.
inline bool oversubscribed() {
  static const bool value = [] {
    MPI_Comm node = MPI_COMM_NULL;
    int local = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
      MPI_Comm_size(node, &local);
      MPI_Comm_free(&node);
    }
    // Not the affinity mask: mpirun binds each of a few ranks to one core of its own.
    const unsigned cores = std::thread::hardware_concurrency();
    return cores > 0 && unsigned(local) > cores;
  }();
  return value;
}

// MPI_Wait, or on an oversubscribed node a test loop that sleeps after a short spin (a
// message that is nearly there costs no sleep).
inline int wait_for(MPI_Request& request, MPI_Status* status) {
  if (!oversubscribed()) return MPI_Wait(&request, status);
  for (int tests = 0;; ++tests) {
    int flag = 0;
    const int code = MPI_Test(&request, &flag, status);
    if (code != MPI_SUCCESS || flag) return code;
    if (tests >= 64)
      std::this_thread::sleep_for(std::chrono::microseconds(tests < 1024 ? 20 : 200));
  }
}

template <typename T>
void divide(T* values, int64_t n, int size) {
  for (int64_t i = 0; i < n; ++i) values[i] /= static_cast<T>(size);
}

// An operation in flight. wait() is what the watchdog watches: a request that sits unwaited
// costs no one anything, a wait that never ends is a hang.
class MpiRequest final : public CommRequest, public Pooled<MpiRequest> {
 public:
  // `blocking`: made by a blocking call (recv), which reports as itself rather than as a wait.
  MpiRequest(Watchdog& watchdog, const OpRecord& op, const std::vector<int>* members,
             bool blocking = false)
      : watchdog_(watchdog), op_(op), members_(members) {
    watchdog_.started();
    if (blocking) return;
    name_wait(op_);
  }
  ~MpiRequest() override {
    if (request != MPI_REQUEST_NULL) {
      if (std::uncaught_exceptions() > 0) {
        // Unwinding after an error on this rank: the other ranks may never join, and this
        // rank must get to print its error and end the job (Job::fail), so give MPI a moment
        // to finish with the buffer, then leave the request behind.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        int flag = 0;
        while (!flag && std::chrono::steady_clock::now() < until) {
          MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
          if (!flag) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      } else {
        try {  // see CommRequest: MPI may still use the caller's tensor
          wait();
        } catch (const std::exception&) {  // a destructor cannot report it; wait() counted it
        }
      }
    }
    done();
  }
  // Once MPI says the operation is over (a test at its start, or wait()).
  void done() {
    if (counted_) watchdog_.finished();
    counted_ = false;
  }
  void wait() override {
    if (request == MPI_REQUEST_NULL) return done();
    MPI_Status status;
    watched(watchdog_, op_, members_,
            [&] { MPI_CHECK(wait_for(request, &status), describe(op_)); });
    done();
    unstage();
    if (average) divide(average, average_n, average_size);
    if (expected_bytes >= 0) {
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      if (count != expected_bytes)
        throw UserError(describe(op_) + ": received " + std::to_string(count) +
                        " bytes, expected " + std::to_string(expected_bytes));
    }
  }

  // A reduce_scatter into its own input (ZeRO) lands here first, since MPI may not write
  // where it reads; unstage() copies it into place once the operation is over.
  void unstage() {
    if (staged_to) std::memcpy(staged_to, staging.data(), staging.size() * sizeof(float));
    staged_to = nullptr;
  }

  MPI_Request request = MPI_REQUEST_NULL;
  std::vector<float> staging;
  float* staged_to = nullptr;
  float* average = nullptr;  // divided by average_size after the sum arrives (AVG)
  int64_t average_n = 0;
  int average_size = 1;
  int64_t expected_bytes = -1;  // recv: checked against what arrived

 private:
  Watchdog& watchdog_;
  OpRecord op_;
  const std::vector<int>* members_;
  bool counted_ = true;  // in the watchdog's count of operations in flight
};

}  // namespace graft::runtime::mpi::detail
