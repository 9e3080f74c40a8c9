// The batch loader: a seeded permutation per epoch, and a worker thread that reads the next
// batch into the free one of two buffer sets while the caller trains on the other.
#include "data/batch_loader.hpp"

#include <algorithm>
#include <numeric>

#include "device/host_api.hpp"
#include "graft/random.h"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

constexpr DLDevice kCpu{kDLCPU, 0};

void* allocate(DLDevice memory, size_t bytes, const std::string& what) {
  void* p = host_api()->alloc(memory, bytes);
  if (!p) throw Failure("out of memory allocating " + std::to_string(bytes) + " bytes for " + what);
  return p;
}

// A uniform draw in [0, 1) with 48 random bits, from two 24-bit graft_random_uniform values,
// so a shuffle of more than 2^24 samples still reaches every position.
double uniform48(uint64_t seed, uint64_t stream, uint64_t index) {
  double high = static_cast<double>(graft_random_uniform(seed, stream, 2 * index)) * 16777216.0;
  double low = static_cast<double>(graft_random_uniform(seed, stream, 2 * index + 1));
  return (high + low) / 16777216.0;
}

}  // namespace

BatchLoader::HostMemory::~HostMemory() {
  if (data) host_api()->free(memory, data);
}

BatchLoader::BatchLoader(DatasetInstance& dataset, int64_t batch_size, bool shuffle, uint64_t seed,
                         bool drop_last, const RowSelection& select, DLDevice memory)
    : dataset_(dataset), batch_size_(batch_size), shuffle_(shuffle), seed_(seed) {
  if (batch_size < 1)
    throw UserError("batch_size is " + std::to_string(batch_size) + "; it must be at least 1");
  const graft_dataset_info& info = dataset.info();
  const int64_t samples = info.samples;
  batches_ = drop_last ? samples / batch_size : (samples + batch_size - 1) / batch_size;
  // Only two batch lengths occur, so the selection is asked up front.
  auto rows_of = [&](int64_t rows) {
    std::pair<int64_t, int64_t> r = select ? select(rows) : std::pair<int64_t, int64_t>{0, rows};
    if (r.first < 0 || r.second < r.first || r.second > rows)
      throw Failure("the strategy asked for rows [" + std::to_string(r.first) + ", " +
                    std::to_string(r.second) + ") of a batch of " + std::to_string(rows));
    return r;
  };
  full_rows_ = rows_of(batch_size);
  last_rows_ = samples % batch_size ? rows_of(samples % batch_size) : full_rows_;
  order_.resize(static_cast<size_t>(samples));
  std::iota(order_.begin(), order_.end(), int64_t{0});

  const int64_t capacity = std::max<int64_t>(1, std::min(batch_size, samples));
  for (Slot& slot : slots_) {
    slot.x_memory.memory = slot.y_memory.memory = memory;
    slot.x_memory.data = allocate(memory, static_cast<size_t>(capacity) * dataset.input_bytes(),
                                  "the inputs of " + dataset.who());
    slot.y_memory.data = allocate(memory, static_cast<size_t>(capacity) * dataset.target_bytes(),
                                  "the targets of " + dataset.who());
    DLTensor& x = slot.batch.x;
    x.data = slot.x_memory.data;
    x.device = kCpu;
    x.dtype = DLDataType{kDLFloat, 32, 1};
    x.ndim = 1 + info.input.ndim;
    x.shape = slot.x_shape;
    for (int d = 0; d < info.input.ndim; ++d) slot.x_shape[d + 1] = info.input.dims[d];
    DLTensor& y = slot.batch.y;
    y.data = slot.y_memory.data;
    y.device = kCpu;
    y.dtype = info.target.dtype;
    y.ndim = 1 + info.target.shape.ndim;
    y.shape = slot.y_shape;
    for (int d = 0; d < info.target.shape.ndim; ++d)
      slot.y_shape[d + 1] = info.target.shape.dims[d];
  }
  worker_ = std::thread([this] { run_worker(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();  // a read in progress finishes first
}

void BatchLoader::start_epoch(int64_t epoch, int64_t skip_batches) {
  if (epoch < 0) throw Failure("start_epoch: epoch " + std::to_string(epoch) + " is negative");
  if (skip_batches < 0 || skip_batches > batches_)
    throw UserError("cannot resume at batch " + std::to_string(skip_batches) + " of an epoch of " +
                    std::to_string(batches_) + " batches of " + dataset_.who() +
                    "; was the checkpoint made with another batch size or dataset?");
  std::unique_lock<std::mutex> lock(mutex_);
  wait_idle(lock);  // a prefetch of the previous epoch is dropped with its order
  failure_ = nullptr;
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (shuffle_)
    for (int64_t i = static_cast<int64_t>(order_.size()) - 1; i > 0; --i) {
      double u = uniform48(seed_, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i));
      int64_t j = std::min(i, static_cast<int64_t>(u * static_cast<double>(i + 1)));
      std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(j)]);
    }
  started_ = true;
  next_batch_ = skip_batches;
  current_slot_ = 1;
  if (next_batch_ < batches_) request(0, next_batch_);
}

const Batch* BatchLoader::next() {
  if (!started_) throw Failure("BatchLoader::next() called before start_epoch()");
  if (next_batch_ >= batches_) return nullptr;
  std::unique_lock<std::mutex> lock(mutex_);
  wait_idle(lock);
  if (failure_) {
    next_batch_ = batches_;  // the epoch ends with the failure
    std::exception_ptr failure = failure_;
    failure_ = nullptr;
    std::rethrow_exception(failure);
  }
  current_slot_ = requested_slot_;
  ++next_batch_;
  // The caller has returned the other slot by calling next(): read ahead into it.
  if (next_batch_ < batches_) request(1 - current_slot_, next_batch_);
  return &slots_[current_slot_].batch;
}

void BatchLoader::request(int slot, int64_t batch) {
  requested_slot_ = slot;
  requested_batch_ = batch;
  busy_ = true;
  changed_.notify_all();
}

void BatchLoader::wait_idle(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [this] { return !busy_; });
}

void BatchLoader::run_worker() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || requested_batch_ >= 0; });
    if (stopping_) return;
    const int slot = requested_slot_;
    const int64_t batch = requested_batch_;
    requested_batch_ = -1;
    lock.unlock();
    std::exception_ptr failure;
    try {
      fill(slots_[slot], batch);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    failure_ = failure;
    busy_ = false;
    changed_.notify_all();
  }
}

// Reads batch `batch` of the current order into `slot`. Runs on the worker thread.
void BatchLoader::fill(Slot& slot, int64_t batch) {
  const int64_t start = batch * batch_size_;
  const int64_t rows = std::min(batch_size_, static_cast<int64_t>(order_.size()) - start);
  const auto [begin, end] = rows == batch_size_ ? full_rows_ : last_rows_;
  slot.batch.rows = rows;
  slot.batch.index = batch;
  slot.batch.row_offset = begin;
  slot.x_shape[0] = end - begin;
  slot.y_shape[0] = end - begin;
  if (end > begin)
    dataset_.read(order_.data() + start + begin, end - begin, slot.batch.x, slot.batch.y);
}

}  // namespace graft::runtime
