// Megatron's pairs: "linear (split by columns), element-wise layers, linear (split by rows)",
// found in a model's layer survey. tensor_parallel splits every pair over the whole world; the
// mesh strategy splits the pairs inside each pipeline stage over its tensor group. A pure
// function of the survey, so every rank (and `graft validate --world N`) finds the same pairs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <graft/cpp/strategy.hpp>

namespace graft::parallel {

struct MegatronPair {
  int64_t column = 0, row = 0;  // the two linears; the layers between run on parts
  std::vector<int64_t> parts;   // layers between that shard as GRAFT_SHARD_PART (dropout)
  std::string forward_what, backward_what;  // watchdog names of the pair's two all-reduces
};

inline bool has_flag(const graft_layer_info& layer, uint32_t flag) {
  return (layer.flags & flag) != 0;
}

// The pairs among top-level layers [begin, end), in order, each entirely inside the range.
// `parts` ranks split each; a pair whose hidden width `parts` does not divide is an error that
// `fix` (", or run ... on a number of ranks that divides ") completes with the width.
inline std::vector<MegatronPair> find_megatron_pairs(const graft_layer_info* layers, int64_t begin,
                                                     int64_t end, int32_t parts,
                                                     const std::string& fix) {
  std::vector<MegatronPair> pairs;
  for (int64_t i = begin; i < end; ++i) {
    const graft_layer_info& first = layers[i];
    if (first.kind != GRAFT_KIND_LAYER || !has_flag(first, GRAFT_ENTRY_SHARD_COLUMN)) continue;
    MegatronPair pair;
    int64_t j = i + 1;
    for (; j < end; ++j) {
      if (layers[j].kind == GRAFT_KIND_ACTIVATION && has_flag(layers[j], GRAFT_ENTRY_ELEMENTWISE))
        continue;
      if (layers[j].kind == GRAFT_KIND_LAYER && has_flag(layers[j], GRAFT_ENTRY_SHARD_PART)) {
        pair.parts.push_back(j);
        continue;
      }
      break;
    }
    if (j >= end || layers[j].kind != GRAFT_KIND_LAYER ||
        !has_flag(layers[j], GRAFT_ENTRY_SHARD_ROW))
      continue;
    const int64_t hidden = first.output.ndim ? first.output.dims[first.output.ndim - 1] : 0;
    GRAFT_CHECK(hidden % parts == 0, "[[model.layers]] #"
                                         << i << " (" << first.type << ") has " << hidden
                                         << " output features (its `units`), which do not split "
                                            "into "
                                         << parts << " equal tensor-parallel parts; choose units "
                                         << "divisible by " << parts << fix << hidden);
    pair.column = i;
    pair.row = j;
    pair.forward_what = "tensor_parallel: output of layer " + std::to_string(j);
    pair.backward_what = "tensor_parallel: input gradient of layer " + std::to_string(i);
    pairs.push_back(std::move(pair));
    i = j;
  }
  return pairs;
}

// Places every layer in [begin, end) that is a whole pair by itself (GRAFT_ENTRY_SHARD_PAIR:
// attention split by heads, a residual block ending in a pair) as GRAFT_SHARD_PAIR; the model
// sums their outputs and input gradients over the tensor group itself (set_tensor_reduce).
// Returns how many it placed.
inline int64_t place_whole_pairs(const graft_layer_info* layers, int64_t begin, int64_t end,
                                 graft_plan& plan) {
  int64_t placed = 0;
  for (int64_t i = begin; i < end; ++i)
    if (layers[i].kind == GRAFT_KIND_LAYER && has_flag(layers[i], GRAFT_ENTRY_SHARD_PAIR) &&
        plan.layers[i].shard == GRAFT_SHARD_NONE) {
      plan.layers[i].shard = GRAFT_SHARD_PAIR;
      ++placed;
    }
  return placed;
}

// Marks the pairs' shard modes in the host's plan.
inline void place_pairs(const std::vector<MegatronPair>& pairs, graft_plan& plan) {
  for (const MegatronPair& p : pairs) {
    plan.layers[p.column].shard = GRAFT_SHARD_COLUMN;
    for (int64_t k : p.parts) plan.layers[k].shard = GRAFT_SHARD_PART;
    plan.layers[p.row].shard = GRAFT_SHARD_ROW;
  }
}

}  // namespace graft::parallel
