// The pieces of the data_parallel strategy: which rows a rank reads (micro-batches within them
// are graft/cpp/rows.hpp's), and the gradient buckets that are summed over the ranks while backward
// still runs.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <graft/cpp/strategy.hpp>

namespace graft::data_parallel {

// The first row of rank r's part of `rows` over n ranks: r * rows / n, so parts differ by at
// most one row and the remainder is spread over the ranks.
inline int64_t shard_begin(int64_t rows, int64_t r, int64_t n) { return rows * r / n; }

// Gradient buckets: ranges of whole top-level layers, from the last layer backwards, each
// closed once it holds at least the bucket size (a larger layer is a bucket of its own). A
// bucket's all-reduce starts when backward finishes its first (lowest) layer; every rank
// builds the same buckets, so the collectives match.
class Buckets {
 public:
  // How many buckets layers with these parameter counts make (for the plan's message count).
  static int64_t count(const std::vector<int64_t>& floats_per_layer, double bucket_bytes) {
    int64_t buckets = 0;
    double bytes = 0.0;
    for (size_t i = floats_per_layer.size(); i-- > 0;) {
      bytes += double(floats_per_layer[i]) * sizeof(float);
      if (bytes >= bucket_bytes || i == 0) {
        if (bytes > 0.0) ++buckets;
        bytes = 0.0;
      }
    }
    return buckets;
  }

  bool built_for(const graft_model* model) const { return model_ == model; }

  void build(const ModelRef& model, double bucket_bytes) {
    buckets_.clear();
    model_ = model.handle();
    const int64_t layers = model.layer_count();
    first_layer_bucket_.assign(size_t(layers), -1);
    int64_t end = layers;
    double bytes = 0.0;
    for (int64_t i = layers - 1; i >= 0; --i) {
      bytes += double(numel(model.gradients(i, i + 1))) * sizeof(float);
      if (bytes < bucket_bytes && i > 0) continue;
      Bucket b;
      b.begin = i;
      b.end = end;
      b.view = model.gradients(i, end);
      b.what = "gradient bucket " + std::to_string(buckets_.size()) + " (layers " +
               std::to_string(i) + ".." + std::to_string(end - 1) + ")";
      first_layer_bucket_[size_t(i)] = int64_t(buckets_.size());
      buckets_.push_back(b);
      end = i;
      bytes = 0.0;
    }
  }

  // From backward's on_layer_done: starts the bucket whose lowest layer this is. It cannot
  // throw (the model calls it through C); a failure is kept for wait_all.
  void layer_done(const Comm& comm, int64_t layer) noexcept {
    if (layer < 0 || size_t(layer) >= first_layer_bucket_.size()) return;
    const int64_t b = first_layer_bucket_[size_t(layer)];
    if (b >= 0) start(comm, buckets_[size_t(b)]);
  }

  // Starts the buckets backward did not (a rank without rows this step), in bucket order.
  void start_remaining(const Comm& comm) noexcept {
    for (Bucket& b : buckets_)
      if (!b.started) start(comm, b);
  }

  // Waits for every started all-reduce, then rethrows the first failure; ready for next step.
  void wait_all(const Comm& comm) {
    for (Bucket& b : buckets_) {
      if (b.request) {
        // After the first failure the rest are not reported (the job ends with the first);
        // the host lends no call to free a status, so they stay allocated until then.
        try {
          comm.wait(b.request);
        } catch (...) {
          if (!failure_) failure_ = std::current_exception();
        }
      }
      b.request = nullptr;
      b.started = false;
    }
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;
    DLTensor view{};
    std::string what;
    graft_request* request = nullptr;
    bool started = false;
  };

  void start(const Comm& comm, Bucket& b) noexcept {
    b.started = true;
    if (numel(b.view) == 0 || failure_) return;  // nothing to sum, or the step has failed
    try {
      b.request = comm.all_reduce_start(b.view, GRAFT_REDUCE_SUM, b.what.c_str());
    } catch (...) {
      failure_ = std::current_exception();
      b.request = nullptr;
    }
  }

  const graft_model* model_ = nullptr;
  std::vector<Bucket> buckets_;              // buckets_[0] holds the last layers
  std::vector<int64_t> first_layer_bucket_;  // layer -> the bucket it is lowest in, or -1
  std::exception_ptr failure_;               // the step's first failed start or wait
};

}  // namespace graft::data_parallel
