// The survey of the configured layers a strategy plans from: each plugin created once to read
// its shapes, parameter count and what it can shard, then destroyed; and the host's side of a
// strategy's plan().
#include "model/model_survey.hpp"

#include <exception>

#include "device/host_api.hpp"
#include "model/model_parts.hpp"
#include "plugin/strategy_instance.hpp"

namespace graft::runtime {

namespace {

// The entry's flags say what the plugin can shard; an instance may refuse by its options (a
// linear with a fused activation cannot be row-split). Each mode is tried on a fresh instance
// as one part of one, which no divisibility rule refuses; the flags it refuses are cleared,
// so a strategy replicates that layer instead of failing later.
uint32_t shard_modes_accepted(const PluginChoice& choice, const graft_shape& input) {
  const uint32_t flags = choice.record->entry->flags;
  const bool has_shard = LayerInstance::can_shard(*choice.record);
  uint32_t keep = ~(GRAFT_ENTRY_SHARD_COLUMN | GRAFT_ENTRY_SHARD_ROW | GRAFT_ENTRY_SHARD_PART |
                    GRAFT_ENTRY_SHARD_PAIR);
  for (const auto& [flag, mode] : {std::pair{GRAFT_ENTRY_SHARD_COLUMN, GRAFT_SHARD_COLUMN},
                                   std::pair{GRAFT_ENTRY_SHARD_ROW, GRAFT_SHARD_ROW},
                                   std::pair{GRAFT_ENTRY_SHARD_PART, GRAFT_SHARD_PART},
                                   std::pair{GRAFT_ENTRY_SHARD_PAIR, GRAFT_SHARD_PAIR}}) {
    if (!has_shard || !(flags & flag)) continue;
    try {
      LayerInstance probe(*choice.record, *choice.options.get(), input, model_who(choice));
      probe.shard(mode, 0, 1, "");
      keep |= flag;
    } catch (const std::exception&) {
      // Refused, at create or at shard: this mode stays off.
    }
  }
  return keep;
}

LayerSurvey survey_one(const PluginChoice& choice, const graft_shape& input) {
  LayerSurvey s;
  s.input = input;
  s.output = input;
  if (choice.residual) {
    s.type = "residual";
    graft_shape shape = input;
    for (const PluginChoice& inner : choice.inner) {
      LayerSurvey in = survey_one(inner, shape);
      s.parameters += in.parameters;
      s.flags |= in.flags & GRAFT_ENTRY_BATCH_STATISTICS;  // a block mixes rows if one inside does
      shape = in.output;
    }
    if (!pair_block_modes(choice.inner, input).empty()) s.flags |= GRAFT_ENTRY_SHARD_PAIR;
    return s;  // the model checks that the block gives its input shape back
  }
  const PluginRecord& rec = *choice.record;
  s.type = rec.name;
  s.kind = rec.kind;
  s.flags = rec.entry->flags;
  const std::unique_ptr<LayerInstance> instance = create_layer(choice, input);
  if (instance->is_activation()) {
    if (instance->elementwise()) s.flags |= GRAFT_ENTRY_ELEMENTWISE;
    return s;
  }
  const graft_layer_desc& desc = instance->describe();
  s.output = desc.output;
  for (size_t p = 0; p < desc.n_params; ++p)
    s.parameters += graft_shape_numel(&desc.params[p].shape);
  s.flags &= shard_modes_accepted(choice, input);
  return s;
}

}  // namespace

std::vector<int32_t> pair_block_modes(const std::vector<PluginChoice>& inner,
                                      const graft_shape& input) {
  std::vector<LayerSurvey> s;
  graft_shape shape = input;
  for (const PluginChoice& choice : inner) {
    s.push_back(survey_one(choice, shape));
    shape = s.back().output;
  }
  if (s.empty()) return {};
  auto has = [&](size_t k, uint32_t flag) { return (s[k].flags & flag) != 0; };
  auto layer = [&](size_t k) { return s[k].kind == GRAFT_KIND_LAYER && s[k].type != "residual"; };
  const size_t last = s.size() - 1;
  std::vector<int32_t> modes(s.size(), GRAFT_SHARD_NONE);
  if (layer(last) && has(last, GRAFT_ENTRY_SHARD_PAIR)) {
    modes[last] = GRAFT_SHARD_PAIR;
    return modes;
  }
  if (!layer(last) || !has(last, GRAFT_ENTRY_SHARD_ROW)) return {};
  modes[last] = GRAFT_SHARD_ROW;
  for (size_t k = last; k-- > 0;) {
    if (s[k].kind == GRAFT_KIND_ACTIVATION && has(k, GRAFT_ENTRY_ELEMENTWISE)) continue;
    if (layer(k) && has(k, GRAFT_ENTRY_SHARD_PART)) {
      modes[k] = GRAFT_SHARD_PART;
      continue;
    }
    if (layer(k) && has(k, GRAFT_ENTRY_SHARD_COLUMN)) {
      modes[k] = GRAFT_SHARD_COLUMN;
      return modes;
    }
    return {};
  }
  return {};
}

std::vector<LayerSurvey> survey_layers(const std::vector<PluginChoice>& layers,
                                       const graft_shape& input) {
  std::vector<LayerSurvey> out;
  graft_shape shape = input;
  for (const PluginChoice& choice : layers) {
    out.push_back(survey_one(choice, shape));
    shape = out.back().output;
  }
  return out;
}

std::vector<graft_layer_info> layer_infos(const std::vector<LayerSurvey>& surveys) {
  std::vector<graft_layer_info> infos;
  for (const LayerSurvey& s : surveys)
    infos.push_back(graft_layer_info{sizeof(graft_layer_info), s.type.c_str(), s.kind, s.flags,
                                     s.parameters, s.input, s.output});
  return infos;
}

LayoutPlan plan_layout(StrategyInstance& strategy, const std::vector<LayerSurvey>& surveys,
                       int64_t global_batch, int64_t micro_batches) {
  LayoutPlan out;
  out.layers.assign(surveys.size(),
                    graft_layer_placement{sizeof(graft_layer_placement), 0, GRAFT_SHARD_NONE});
  graft_plan& plan = out.plan;
  plan.struct_size = sizeof plan;
  plan.stages = 1;
  plan.shards = 1;
  plan.slots = 1;
  const int64_t micro = micro_batches < 1 ? 1 : micro_batches;
  plan.rows_per_slot = (global_batch + micro - 1) / micro;
  plan.n_layers = static_cast<int64_t>(surveys.size());
  plan.layers = out.layers.data();
  plan.zero_unit_floats = -1;  // a strategy that shards over its data group says how
  strategy.plan(layer_infos(surveys), global_batch, plan);
  plan.layers = out.layers.data();  // a strategy must not move it; keep it ours regardless
  if (plan.stages < 1 || plan.shards < 1 || plan.slots < 1 || plan.rows_per_slot < 1)
    throw Failure("[parallel] strategy '" + strategy.name() + "' made an invalid plan (stages " +
                  std::to_string(plan.stages) + ", shards " + std::to_string(plan.shards) +
                  ", slots " + std::to_string(plan.slots) + ", rows " +
                  std::to_string(plan.rows_per_slot) + ")");
  return out;
}

void LayoutPlan::apply_to(ModelSettings& settings) const {
  settings.slots = plan.slots;
  settings.placement = layers;
  settings.stages = plan.stages;
  settings.shards = plan.shards;
  settings.stage_index = plan.stage_index;
  settings.shard_index = plan.shard_index;
}

}  // namespace graft::runtime
