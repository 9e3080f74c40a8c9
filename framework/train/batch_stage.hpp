// Batches on the model's device. On the CPU a step reads the loader's batch itself; on a GPU it
// reads a copy in device memory, made on the device's copy stream from the loader's page-locked
// buffers while the kernels of the step before still run. Two device buffer sets alternate, so
// a copy never overwrites a batch a queued step still reads.
#pragma once

#include <cstdint>

#include "data/batch_loader.hpp"
#include "model/buffer.hpp"

namespace graft::runtime {

class BatchStage {
 public:
  // max_rows: the most rows of one batch this process reads. `first_slot` keeps the training
  // and the evaluation stages on separate upload slots of the device.
  BatchStage(DLDevice device, const DatasetInstance& data, int64_t max_rows, int first_slot);
  BatchStage(const BatchStage&) = delete;
  BatchStage& operator=(const BatchStage&) = delete;

  // The memory the loader should read batches into.
  DLDevice loader_memory() const;
  // The batch as the step should see it; valid until the next place().
  const Batch& place(const Batch& batch);
  // After the step that reads the last placed batch was launched.
  void release();

 private:
  struct Set {
    Buffer x, y;
    Batch batch{};
    int64_t x_shape[GRAFT_MAX_DIMS + 1] = {};
    int64_t y_shape[GRAFT_MAX_DIMS + 1] = {};
  };
  DLDevice device_;
  int first_slot_;
  size_t x_sample_bytes_, y_sample_bytes_;
  int64_t max_rows_;
  Set sets_[2];
  int current_ = 1;
};

}  // namespace graft::runtime
