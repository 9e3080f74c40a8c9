// Tied parameters: a layer's `tie = { weight = "layers.0.weight" }` makes its parameter the
// earlier one (GPT's output projection reusing the token embedding's table). Within a rank the
// store aliases the two (one tensor whose gradient both layers add into); across pipeline
// stages each stage keeps a copy and the strategy sums their gradients (tied_gradients), as
// Megatron sums the word embeddings' gradients between its first and last stages.
#include <algorithm>
#include <vector>

#include "device/host_api.hpp"
#include "model/model.hpp"
#include "model/model_parts.hpp"

namespace graft::runtime {

std::vector<int64_t> Model::resolve_ties(const LayerNode& layer, const graft_layer_desc& desc,
                                         const std::string& path) const {
  std::vector<int64_t> tied(desc.n_params, -1);
  std::vector<std::string> own;
  for (size_t k = 0; k < desc.n_params; ++k) own.push_back(desc.params[k].name);
  const std::vector<ParameterInfo>& params = store_.parameters();
  for (const TieConfig& tie : layer.choice->ties) {
    const auto k = size_t(std::find(own.begin(), own.end(), tie.param) - own.begin());
    if (k == own.size())
      throw UserError(tie.where + ": " + layer.who + " has no parameter '" + tie.param + "'" +
                      did_you_mean(tie.param, own) +
                      "; its parameters: " + (own.empty() ? std::string("none") : join(own)));
    int64_t target = -1;
    std::vector<std::string> earlier;
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i].name == tie.target) target = int64_t(i);
      earlier.push_back(params[i].name);
    }
    if (target < 0)
      throw UserError(tie.where + ": '" + tie.target + "' is not a parameter of an earlier layer" +
                      did_you_mean(tie.target, earlier) +
                      "; a layer ties to one declared before it (graft validate " +
                      "lists the parameters by name, e.g. layers.0.weight)");
    const ParameterInfo& other = params[size_t(target)];
    const int64_t root = other.tied >= 0 ? other.tied : target;  // ties to a tie share one
    const graft_param_spec& mine = desc.params[k];
    const std::string name = path + tie.param;
    if (!same_shape(mine.shape, other.shape))
      throw UserError(tie.where + ": '" + name + "' has shape " + shape_string(mine.shape) +
                      " but '" + tie.target + "' has " + shape_string(other.shape) +
                      "; tied parameters must have one shape (a linear tied to an embedding's " +
                      "table takes transpose_weight = true, which stores its weight as " +
                      "(units, inputs))");
    if (mine.is_buffer || other.spec.is_buffer)
      throw UserError(tie.where + ": '" + (mine.is_buffer ? name : tie.target) +
                      "' is a buffer (running statistics), which is not trained and cannot be "
                      "tied; tie a weight instead");
    if (mine.shard_axis >= 0 || other.spec.shard_axis >= 0)
      throw UserError(tie.where + ": the [parallel] strategy splits '" +
                      (mine.shard_axis >= 0 ? name : tie.target) +
                      "' across tensor-parallel ranks, but a tied parameter must be whole on "
                      "each rank; remove the tie or use data_parallel/pipeline");
    const bool crosses = layer_stage(layer.top) != layer_stage(params[size_t(root)].layer);
    if (settings_.zero_parts > 1 && (settings_.zero_level >= 2 || crosses))
      throw UserError(tie.where + ": ZeRO-" + std::to_string(settings_.zero_level) +
                      (crosses ? " with the tie across pipeline stages" : "") +
                      " keeps gradients by part, but tied parameters add whole gradients; " +
                      "use [parallel] zero = " + (crosses ? "0" : "1") + " or remove the tie");
    tied[k] = root;
  }
  return tied;
}

// Every rank lists the ties that cross stages in the same order, so the buffers line up.
void Model::plan_cross_stage_ties() {
  const std::vector<ParameterInfo>& params = store_.parameters();
  size_t floats = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const ParameterInfo& p = params[i];
    if (p.tied < 0) continue;
    const ParameterInfo& root = params[size_t(p.tied)];
    if (layer_stage(p.layer) == layer_stage(root.layer)) continue;
    const int64_t held = p.held ? int64_t(i) : root.held ? p.tied : -1;
    cross_ties_.push_back(CrossTie{int64_t(i), held, floats, p.numel});
    floats += p.numel;
  }
  tie_floats_ = int64_t(floats);
  if (floats > 0) tie_buffer_ = Buffer(settings_.device, floats);
}

void Model::tied_gradients(bool unpack, DLTensor& out) {
  out = DLTensor{};
  out.data = tie_buffer_.data();
  out.device = settings_.device;
  out.ndim = 1;
  out.dtype = DLDataType{kDLFloat, 32, 1};
  out.shape = &tie_floats_;
  if (tie_floats_ == 0) return;
  if (unpack) ties_summed_ = true;
  const graft_host_api* host = host_api();
  if (!unpack) throw_if_failed(host->fill(nullptr, &out, 0.0f), "tied gradients");
  for (const CrossTie& t : cross_ties_) {
    if (t.held < 0) continue;
    DLTensor* grad = *store_.gradient_tensors(size_t(t.held));
    TensorView part(tie_buffer_.data() + t.offset, settings_.device,
                    graft_shape{1, {int64_t(t.numel)}});
    TensorView flat(static_cast<float*>(grad->data), settings_.device,
                    graft_shape{1, {int64_t(t.numel)}});
    graft_status* st = unpack ? host->copy(nullptr, part.get(), flat.get())
                              : host->copy(nullptr, flat.get(), part.get());
    throw_if_failed(st, "tied gradients");
  }
}

void Model::check_ties_summed(const char* what) const {
  if (ties_summed_) return;
  const ParameterInfo& p = store_.parameters()[size_t(cross_ties_.front().param)];
  throw Failure(std::string(what) + ": '" + p.name + "' is tied to '" +
                store_.parameters()[size_t(p.tied)].name +
                "' across pipeline stages (its layer's `tie`), but the strategy did not sum "
                "their gradients (graft_model_api's tied_gradients, ABI 1.4); update the "
                "[parallel] strategy, or place the tied layers on one stage");
}

}  // namespace graft::runtime
