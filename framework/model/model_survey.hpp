// A survey of the configured layers before the model exists: each top-level layer's shapes,
// parameter count and sharding flags, for a strategy's plan() and for `graft validate --world`.
// It creates each plugin once, describes it and destroys it, allocating no parameters.
#pragma once

#include <string>
#include <vector>

#include "model/model.hpp"

namespace graft::runtime {

class StrategyInstance;

struct LayerSurvey {
  std::string type;  // the plugin's name, or "residual"
  int32_t kind = GRAFT_KIND_LAYER;
  uint32_t flags = 0;      // the entry's GRAFT_ENTRY_* (+ ELEMENTWISE for such activations)
  int64_t parameters = 0;  // unsharded; a residual block counts its inner layers'
  graft_shape input{}, output{};
};

std::vector<LayerSurvey> survey_layers(const std::vector<PluginChoice>& layers,
                                       const graft_shape& input);

// The shard modes of a residual block's inner layers when it is split over the tensor group as
// one pair (GRAFT_SHARD_PAIR): the layers before the pair whole, then a PAIR layer (attention)
// or a Megatron pair (COLUMN, element-wise or PART layers, ROW) ending the block. Empty when
// the inner layers end in no pair, and then the block is not split.
std::vector<int32_t> pair_block_modes(const std::vector<PluginChoice>& inner,
                                      const graft_shape& input);

// The C view plan() reads; `surveys` must outlive the result.
std::vector<graft_layer_info> layer_infos(const std::vector<LayerSurvey>& surveys);

// A strategy's plan for one rank, with the host's defaults where the strategy has no plan():
// one stage, no shards, one slot of ceil(global_batch / micro_batches) rows.
struct LayoutPlan {
  graft_plan plan{};
  std::vector<graft_layer_placement> layers;

  // Puts this plan into the model's settings: its slots, the layers' placement and this
  // rank's stage and shard (the rows per slot are the caller's to choose).
  void apply_to(ModelSettings& settings) const;
};
LayoutPlan plan_layout(StrategyInstance& strategy, const std::vector<LayerSurvey>& surveys,
                       int64_t global_batch, int64_t micro_batches);

}  // namespace graft::runtime
