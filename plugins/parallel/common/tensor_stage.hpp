// The tensor axis of the mesh strategy: forward and backward through one pipeline stage's
// layers, with the stage's Megatron pairs split over the tensor group. A ROW layer's partial
// output is all-reduced before the next layer reads it; a COLUMN layer's partial input
// gradient before the layers below (or the previous stage) read it.
#pragma once

#include <cstdint>
#include <vector>

#include <graft/cpp/strategy.hpp>

#include "megatron_pairs.hpp"

namespace graft::mesh {

class TensorStage {
 public:
  // Layers [begin, end) of the model, with `pairs` inside them split over `tensor` (empty or
  // of one rank when nothing is split).
  void set(int64_t begin, int64_t end, std::vector<parallel::MegatronPair> pairs, Comm tensor) {
    begin_ = begin;
    end_ = end;
    pairs_ = std::move(pairs);
    tensor_ = tensor;
  }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  const std::vector<parallel::MegatronPair>& pairs() const { return pairs_; }

  // The stage's output for x, whole on every tensor rank (the model's planned buffer).
  const DLTensor& forward(const ModelRef& model, const Context& ctx, const DLTensor& x) {
    const DLTensor* input = &x;
    int64_t at = begin_;
    for (parallel::MegatronPair& pair : pairs_) {
      const DLTensor& out = model.forward(ctx, at, pair.row + 1, *input);
      DLTensor sum = out;
      tensor_.all_reduce(sum, GRAFT_REDUCE_SUM, pair.forward_what.c_str());
      input = &out;
      at = pair.row + 1;
    }
    return at == end_ ? *input : model.forward(ctx, at, end_, *input);
  }

  // Backward from dy (the gradient of the stage's output), calling on_layer_done(layer) as
  // each layer finishes; the whole gradient of the stage's input, or NULL at layer 0.
  template <class OnLayerDone>
  const DLTensor* backward(const ModelRef& model, const Context& ctx, const DLTensor& dy,
                           OnLayerDone& on_layer_done) {
    const DLTensor* grad = &dy;
    int64_t end = end_;
    for (size_t p = pairs_.size(); p-- > 0;) {
      parallel::MegatronPair& pair = pairs_[p];
      const DLTensor* dx = model.backward(ctx, pair.column, end, *grad, on_layer_done);
      end = pair.column;
      if (!dx) return nullptr;  // the pair starts the model
      DLTensor sum = *dx;
      tensor_.all_reduce(sum, GRAFT_REDUCE_SUM, pair.backward_what.c_str());
      grad = dx;
    }
    if (end == begin_) return grad;  // a pair starts the stage: grad is its input's
    return model.backward(ctx, begin_, end, *grad, on_layer_done);
  }

 private:
  int64_t begin_ = 0, end_ = 0;
  std::vector<parallel::MegatronPair> pairs_;
  Comm tensor_;
};

}  // namespace graft::mesh
