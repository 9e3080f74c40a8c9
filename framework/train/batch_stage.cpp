// BatchStage: the loader's batch as the step reads it, in place on the CPU, or copied to the
// GPU on the copy stream into one of two alternating device buffer sets (why: batch_stage.hpp).
#include "train/batch_stage.hpp"

#include <cstring>

#include "device/cuda_loader.hpp"
#include "util/errors.hpp"

namespace graft::runtime {
namespace {
bool on_gpu(DLDevice d) { return d.device_type == kDLCUDA; }
size_t floats_for(size_t bytes) { return (bytes + sizeof(float) - 1) / sizeof(float); }
}  // namespace

BatchStage::BatchStage(DLDevice device, const DatasetInstance& data, int64_t max_rows,
                       int first_slot)
    : device_(device),
      first_slot_(first_slot),
      x_sample_bytes_(data.input_bytes()),
      y_sample_bytes_(data.target_bytes()),
      max_rows_(max_rows) {
  if (!on_gpu(device)) return;
  if (first_slot < 0 || first_slot + 2 > cuda::Device::kUploadSlots)
    throw Failure("BatchStage: upload slots " + std::to_string(first_slot) + ".." +
                  std::to_string(first_slot + 1) + " are outside the device's");
  for (Set& set : sets_) {
    set.x = Buffer(device, floats_for(size_t(max_rows) * x_sample_bytes_));
    set.y = Buffer(device, floats_for(size_t(max_rows) * y_sample_bytes_));
  }
}

DLDevice BatchStage::loader_memory() const {
  return on_gpu(device_) ? DLDevice{kDLCUDAHost, 0} : DLDevice{kDLCPU, 0};
}

const Batch& BatchStage::place(const Batch& batch) {
  if (!on_gpu(device_)) return batch;
  cuda::Device* gpu = cuda_device();
  if (!gpu) throw Failure("a batch for the GPU, but the CUDA device is not started");
  const int64_t rows = batch.x.ndim ? batch.x.shape[0] : 0;
  if (rows > max_rows_)
    throw Failure("a batch of " + std::to_string(rows) + " rows exceeds the " +
                  std::to_string(max_rows_) + " planned on the GPU");
  current_ = 1 - current_;
  Set& set = sets_[current_];
  set.batch = batch;
  set.batch.x.data = set.x.data();
  set.batch.y.data = set.y.data();
  set.batch.x.byte_offset = set.batch.y.byte_offset = 0;
  set.batch.x.device = set.batch.y.device = device_;
  std::memcpy(set.x_shape, batch.x.shape, sizeof(int64_t) * size_t(batch.x.ndim));
  std::memcpy(set.y_shape, batch.y.shape, sizeof(int64_t) * size_t(batch.y.ndim));
  set.batch.x.shape = set.x_shape;
  set.batch.y.shape = set.y_shape;
  const int slot = first_slot_ + current_;
  const auto bytes_at = [](const DLTensor& t) {
    return static_cast<const char*>(t.data) + t.byte_offset;
  };
  throw_if_failed(
      gpu->upload(bytes_at(batch.x), set.x.data(), size_t(rows) * x_sample_bytes_, slot),
      "copying a batch's inputs to the GPU");
  throw_if_failed(
      gpu->upload(bytes_at(batch.y), set.y.data(), size_t(rows) * y_sample_bytes_, slot),
      "copying a batch's targets to the GPU");
  return set.batch;
}

void BatchStage::release() {
  if (!on_gpu(device_)) return;
  if (cuda::Device* gpu = cuda_device())
    throw_if_failed(gpu->release_upload(first_slot_ + current_), "releasing a batch on the GPU");
}

}  // namespace graft::runtime
