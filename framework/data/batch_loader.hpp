// Batches of a dataset in a seeded, reproducible order, the next one read on a background
// thread while the caller trains on the current one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "data/dataset_instance.hpp"

namespace graft::runtime {

// One batch on the CPU; valid until the next call to next() or start_epoch(). A process of a
// parallel job may read only some rows of it: x and y hold rows [row_offset, row_offset + n).
struct Batch {
  DLTensor x;          // (n, input...) float32
  DLTensor y;          // (n, target...) int32 class labels or float32 values
  int64_t rows;        // of the whole batch: batch_size, or fewer in the last of an epoch
  int64_t index;       // position of the batch within its epoch
  int64_t row_offset;  // the whole batch's row that x's first row is
};

// Which rows [begin, end) of a whole batch of `rows` this process reads (a strategy's
// batch_rows); none given: all of them.
using RowSelection = std::function<std::pair<int64_t, int64_t>(int64_t rows)>;

class BatchLoader {
 public:
  // The loader reads `dataset` from its own thread; nothing else may read it meanwhile.
  // drop_last leaves out the last batch of an epoch when it would be short.
  // `select` is asked here, once per batch length, never from the reading thread.
  // `memory`: kDLCPU, or kDLCUDAHost (page-locked) when batches go on to a GPU.
  BatchLoader(DatasetInstance& dataset, int64_t batch_size, bool shuffle, uint64_t seed,
              bool drop_last, const RowSelection& select = {},
              DLDevice memory = DLDevice{kDLCPU, 0});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts epoch `epoch`: its order is a Fisher-Yates shuffle driven by
  // graft_random_uniform(seed, epoch, .) (the identity without shuffle), so the same seed and
  // epoch give the same order on any machine. skip_batches resumes in the middle of an epoch.
  void start_epoch(int64_t epoch, int64_t skip_batches = 0);
  // The next batch, or nullptr at the end of the epoch. Rethrows a failed read.
  const Batch* next();

  int64_t batches_per_epoch() const { return batches_; }
  // The current epoch's order of sample indices.
  const std::vector<int64_t>& order() const { return order_; }

 private:
  // Host memory from host->alloc (so it is accounted), freed with the loader.
  struct HostMemory {
    void* data = nullptr;
    DLDevice memory{kDLCPU, 0};
    HostMemory() = default;
    HostMemory(const HostMemory&) = delete;
    HostMemory& operator=(const HostMemory&) = delete;
    ~HostMemory();
  };
  // Buffers for one batch, allocated once and reused.
  struct Slot {
    Batch batch{};
    int64_t x_shape[GRAFT_MAX_DIMS + 1] = {};
    int64_t y_shape[GRAFT_MAX_DIMS + 1] = {};
    HostMemory x_memory, y_memory;
  };

  void run_worker();
  void fill(Slot& slot, int64_t batch);
  void request(int slot, int64_t batch);  // caller holds mutex_
  void wait_idle(std::unique_lock<std::mutex>& lock);

  DatasetInstance& dataset_;
  const int64_t batch_size_;
  const bool shuffle_;
  const uint64_t seed_;
  int64_t batches_ = 0;
  std::vector<int64_t> order_;  // (samples,)
  // The rows read of a full batch and of the short last one.
  std::pair<int64_t, int64_t> full_rows_{0, 0}, last_rows_{0, 0};
  Slot slots_[2];

  // Shared with the worker, under mutex_.
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  bool busy_ = false;  // a read is requested or running
  int requested_slot_ = 0;
  int64_t requested_batch_ = -1;
  std::exception_ptr failure_;

  // The caller's side.
  bool started_ = false;
  int64_t next_batch_ = 0;  // the batch next() returns
  int current_slot_ = 1;    // the slot the caller holds
  std::thread worker_;
};

}  // namespace graft::runtime
