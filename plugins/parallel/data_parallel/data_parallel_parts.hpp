// The pieces of the data_parallel strategy: which rows a rank reads (micro-batches within them
// are graft/cpp/rows.hpp's), and the gradient buckets that are summed over the ranks while backward still runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/rows.hpp>

namespace graft::data_parallel {

using graft::for_each_micro_batch;
using graft::row_range;

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

  void build(const graft_model_api& api, graft_model* model, double bucket_bytes) {
    buckets_.clear();
    model_ = model;
    const int64_t layers = api.layer_count(model);
    first_layer_bucket_.assign(size_t(layers), -1);
    int64_t end = layers;
    double bytes = 0.0;
    for (int64_t i = layers - 1; i >= 0; --i) {
      DLTensor layer{};
      check(api.gradients(model, i, i + 1, &layer));
      bytes += double(numel(layer)) * sizeof(float);
      if (bytes < bucket_bytes && i > 0) continue;
      Bucket b;
      b.begin = i;
      b.end = end;
      check(api.gradients(model, i, end, &b.view));
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
  void layer_done(const graft_comm_api& api, graft_comm* comm, int64_t layer) noexcept {
    if (layer < 0 || size_t(layer) >= first_layer_bucket_.size()) return;
    const int64_t b = first_layer_bucket_[size_t(layer)];
    if (b >= 0) start(api, comm, buckets_[size_t(b)]);
  }

  // Starts the buckets backward did not (a rank without rows this step), in bucket order.
  void start_remaining(const graft_comm_api& api, graft_comm* comm) noexcept {
    for (Bucket& b : buckets_)
      if (!b.started) start(api, comm, b);
  }

  // Waits for every started all-reduce, then rethrows the first failure; ready for next step.
  void wait_all(const graft_comm_api& api, graft_comm* comm) {
    for (Bucket& b : buckets_) {
      if (b.request) {
        // After the first failure the rest are not reported (the job ends with the first);
        // the host lends no call to free a status, so they stay allocated until then.
        graft_status* st = api.wait(comm, b.request);
        if (st && !failure_) failure_ = st;
      }
      b.request = nullptr;
      b.started = false;
    }
    if (graft_status* st = failure_) {
      failure_ = nullptr;
      throw StatusError(st);
    }
  }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;
    DLTensor view{};
    std::string what;
    graft_request* request = nullptr;
    bool started = false;
  };

  void start(const graft_comm_api& api, graft_comm* comm, Bucket& b) noexcept {
    b.started = true;
    if (numel(b.view) == 0 || failure_) return;  // nothing to sum, or the step has failed
    if (graft_status* st = api.all_reduce_start(comm, &b.view, GRAFT_REDUCE_SUM, b.what.c_str(),
                                                &b.request)) {
      failure_ = st;
      b.request = nullptr;
    }
  }

  const graft_model* model_ = nullptr;
  std::vector<Bucket> buckets_;              // buckets_[0] holds the last layers
  std::vector<int64_t> first_layer_bucket_;  // layer -> the bucket it is lowest in, or -1
  graft_status* failure_ = nullptr;
};

}  // namespace graft::data_parallel
