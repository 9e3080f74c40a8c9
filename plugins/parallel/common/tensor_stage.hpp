// The tensor axis of a pipeline stage: forward and backward through the stage's layers, with
// its Megatron pairs split over the tensor group. A ROW layer's partial output is all-reduced
// before the next layer reads it; a COLUMN layer's partial input gradient before the layers
// below (or the previous stage) read it. The layers run in segments between those points and
// any further cuts (ZeRO units, whose parameters are gathered before their first segment), with
// a caller's hook before and after each.
#pragma once

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include <graft/cpp/strategy.hpp>

#include "megatron_pairs.hpp"

namespace graft::mesh {

class TensorStage {
 public:
  // Layers [begin, end) of the model, with `pairs` inside them split over `tensor` (empty or
  // of one rank when nothing is split), paused also at each layer in `cuts`.
  void set(int64_t begin, int64_t end, std::vector<parallel::MegatronPair> pairs, Comm tensor,
           const std::vector<int64_t>& cuts = {}) {
    begin_ = begin;
    end_ = end;
    pairs_ = std::move(pairs);
    tensor_ = tensor;
    std::set<int64_t> points = {begin, end};
    for (const parallel::MegatronPair& p : pairs_) points.insert({p.column, p.row + 1});
    for (int64_t c : cuts)
      if (c > begin && c < end) points.insert(c);
    segments_.clear();
    for (auto a = points.begin(), b = std::next(a); b != points.end(); ++a, ++b) {
      Segment s{*a, *b, -1, -1};
      for (size_t k = 0; k < pairs_.size(); ++k) {
        if (pairs_[k].row + 1 == s.end) s.reduce_output = int(k);
        if (pairs_[k].column == s.begin) s.reduce_dx = int(k);
      }
      segments_.push_back(s);
    }
  }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  const std::vector<parallel::MegatronPair>& pairs() const { return pairs_; }

  // The stage's output for x, whole on every tensor rank (the model's planned buffer);
  // before(a, b) runs before layers [a, b) do.
  template <class Before>
  const DLTensor& forward(const ModelRef& model, const Context& ctx, const DLTensor& x,
                          Before&& before) {
    const DLTensor* input = &x;
    for (const Segment& s : segments_) {
      before(s.begin, s.end);
      const DLTensor& out = model.forward(ctx, s.begin, s.end, *input);
      if (s.reduce_output >= 0) {
        DLTensor sum = out;
        tensor_.all_reduce(sum, GRAFT_REDUCE_SUM,
                           pairs_[size_t(s.reduce_output)].forward_what.c_str());
      }
      input = &out;
    }
    return *input;
  }
  const DLTensor& forward(const ModelRef& model, const Context& ctx, const DLTensor& x) {
    return forward(model, ctx, x, [](int64_t, int64_t) {});
  }

  // Backward from dy (the gradient of the stage's output): before(a, b) and after(a, b) around
  // each segment, on_layer_done(layer) as each layer finishes. The whole gradient of the
  // stage's input, or NULL at layer 0.
  template <class Before, class After, class OnLayerDone>
  const DLTensor* backward(const ModelRef& model, const Context& ctx, const DLTensor& dy,
                           Before&& before, After&& after, OnLayerDone& on_layer_done) {
    const DLTensor* grad = &dy;
    for (auto s = segments_.rbegin(); s != segments_.rend(); ++s) {
      before(s->begin, s->end);
      const DLTensor* dx = model.backward(ctx, s->begin, s->end, *grad, on_layer_done);
      after(s->begin, s->end);
      if (!dx) return nullptr;  // layer 0: nobody needs its input's gradient
      if (s->reduce_dx >= 0) {
        DLTensor sum = *dx;
        tensor_.all_reduce(sum, GRAFT_REDUCE_SUM,
                           pairs_[size_t(s->reduce_dx)].backward_what.c_str());
      }
      grad = dx;
    }
    return grad;
  }
  template <class OnLayerDone>
  const DLTensor* backward(const ModelRef& model, const Context& ctx, const DLTensor& dy,
                           OnLayerDone& on_layer_done) {
    const auto nothing = [](int64_t, int64_t) {};
    return backward(model, ctx, dy, nothing, nothing, on_layer_done);
  }

 private:
  struct Segment {
    int64_t begin, end;
    int reduce_output;  // the pair whose ROW layer ends the segment, or -1
    int reduce_dx;      // the pair whose COLUMN layer starts it, or -1
  };
  int64_t begin_ = 0, end_ = 0;
  std::vector<parallel::MegatronPair> pairs_;
  std::vector<Segment> segments_;
  Comm tensor_;
};

}  // namespace graft::mesh
