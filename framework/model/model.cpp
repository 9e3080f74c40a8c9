// Model assembly and the training-step primitives strategies call (forward, loss, backward,
// zero_grad, optimizer_step). Buffers are planned here once; the step only views them.
#include "model/model.hpp"

#include <cmath>
#include <cstring>

namespace graft::runtime {

namespace {
constexpr uint64_t kParameterStream = 0x5041524d00000000ull;  // "PARM": init streams

std::string who(const PluginChoice& c) {
  return c.section + " (" + kind_name(c.record->kind) + " '" + c.record->name + "' from " +
         c.record->library.filename().string() + ")";
}
}  // namespace

struct Model::Layer {
  const PluginChoice* choice = nullptr;
  bool is_activation = false;
  void* self = nullptr;
  const graft_layer_vtable* layer_vtable = nullptr;
  const graft_activation_vtable* activation_vtable = nullptr;
  graft_shape in{}, out{};
  int64_t workspace_per_sample = 0;
  std::vector<size_t> param_indices;
  std::vector<TensorView> param_views, grad_views;
  std::vector<const DLTensor*> param_ptrs;
  std::vector<DLTensor*> grad_ptrs;
  std::string who;
};

// One set of activation, gradient and workspace buffers (one micro-batch in flight).
struct Model::Slot {
  std::vector<Buffer> outputs, input_grads, workspaces;
  std::vector<TensorView> inputs, output_views, input_grad_views, workspace_views;
  Buffer dprediction;
  TensorView dprediction_view;
};

double Schedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  const int64_t after = step - warmup_steps;
  if (type == "step" && step_size > 0) return lr * std::pow(gamma, double(after / step_size));
  if (type == "cosine" && total_steps > warmup_steps) {
    double progress = std::min(1.0, double(after) / double(total_steps - warmup_steps));
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

Model::Model(std::vector<PluginChoice> layer_choices, PluginChoice loss, PluginChoice optimizer,
             const graft_shape& input, const graft_target_info& target, ModelSettings settings)
    : settings_(std::move(settings)), input_(input), loss_choice_(std::move(loss)),
      optimizer_choice_(std::move(optimizer)), target_(target) {
  const graft_host_api* host = host_api();
  if (layer_choices.empty()) throw UserError("[model] has no layers; add [[model.layers]] tables");
  // Kept for the model's life: layers point at their choice.
  layer_choices_ = std::move(layer_choices);
  std::vector<PluginChoice>* owned = &layer_choices_;

  graft_shape shape = input;
  std::vector<graft_param_spec> specs;
  for (size_t i = 0; i < owned->size(); ++i) {
    auto layer = std::make_unique<Layer>();
    layer->choice = &(*owned)[i];
    layer->who = who((*owned)[i]);
    layer->in = shape;
    const PluginRecord& rec = *layer->choice->record;
    if (rec.kind == GRAFT_KIND_ACTIVATION) {
      layer->is_activation = true;
      layer->activation_vtable = &rec.vtable<graft_activation_vtable>();
      throw_if_failed(layer->activation_vtable->create(host, layer->choice->options.get(), &layer->self),
                      layer->who);
      layer->out = shape;
    } else {
      layer->layer_vtable = &rec.vtable<graft_layer_vtable>();
      throw_if_failed(layer->layer_vtable->create(host, layer->choice->options.get(), &shape, &layer->self),
                      layer->who + " with input shape " + shape_string(shape));
      graft_layer_desc desc{};
      desc.struct_size = sizeof desc;
      throw_if_failed(layer->layer_vtable->describe(layer->self, &desc), layer->who);
      layer->out = desc.output;
      layer->workspace_per_sample = desc.workspace_per_sample;
      // The array's stride is the plugin's struct_size, which an older plugin has smaller.
      const size_t stride = desc.n_params ? desc.params[0].struct_size : 0;
      for (size_t p = 0; p < desc.n_params; ++p) {
        const auto* given = reinterpret_cast<const graft_param_spec*>(
            reinterpret_cast<const char*>(desc.params) + p * stride);
        ParameterInfo info;
        info.name = "layers." + std::to_string(i) + "." + given->name;
        info.layer = static_cast<int64_t>(i);
        info.shape = given->shape;
        info.numel = static_cast<size_t>(graft_shape_numel(&info.shape));
        info.offset = params_.empty() ? 0 : params_.back().offset + params_.back().numel;
        // Fields a plugin built against an older minor does not have stay zero.
        info.spec = graft_param_spec{};
        std::memcpy(&info.spec, given, std::min(sizeof(graft_param_spec), stride));
        info.spec.struct_size = sizeof(graft_param_spec);
        info.spec.name = nullptr;  // the plugin's string may not outlive describe()
        layer->param_indices.push_back(params_.size());
        params_.push_back(info);
      }
    }
    if (graft_shape_numel(&layer->out) <= 0)
      throw UserError(layer->who + ": output shape " + shape_string(layer->out) +
                      " is empty for input " + shape_string(shape));
    shape = layer->out;
    layers_.push_back(std::move(layer));
  }

  // Parameters, gradients and optimizer state: one contiguous buffer each.
  const size_t total = params_.empty() ? 0 : params_.back().offset + params_.back().numel;
  param_buffer_ = Buffer(settings_.device, total);
  grad_buffer_ = Buffer(settings_.device, total);
  graft_exec_ctx init_ctx{};
  init_ctx.struct_size = sizeof init_ctx;
  init_ctx.host = host;
  init_ctx.device = settings_.device;
  for (auto& layer : layers_) {
    for (size_t k = 0; k < layer->param_indices.size(); ++k) {
      const ParameterInfo& info = params_[layer->param_indices[k]];
      layer->param_views.emplace_back(param_buffer_.data() + info.offset, settings_.device, info.shape);
      layer->grad_views.emplace_back(grad_buffer_.data() + info.offset, settings_.device, info.shape);
      const graft_param_spec& s = info.spec;
      const uint64_t stream = kParameterStream | (uint64_t(info.layer) << 16) | k;
      DLTensor* t = layer->param_views.back().get();
      const double fan_in = double(std::max<int64_t>(1, s.fan_in));
      const double fan_out = double(std::max<int64_t>(1, s.fan_out));
      graft_status* st = nullptr;
      switch (s.init) {
        case GRAFT_INIT_ZEROS: st = host->fill(&init_ctx, t, 0.0f); break;
        case GRAFT_INIT_ONES: st = host->fill(&init_ctx, t, 1.0f); break;
        case GRAFT_INIT_XAVIER_UNIFORM: {
          float a = float(s.gain * std::sqrt(6.0 / (fan_in + fan_out)));
          st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -a, a);
          break;
        }
        case GRAFT_INIT_KAIMING_NORMAL:
          st = host->fill_normal(&init_ctx, t, settings_.seed, stream, 0, 0.0f,
                                 float(s.gain * std::sqrt(2.0 / fan_in)));
          break;
        case GRAFT_INIT_KAIMING_UNIFORM: {
          float a = float(s.gain * std::sqrt(3.0 / fan_in));
          st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -a, a);
          break;
        }
        case GRAFT_INIT_NORMAL: st = host->fill_normal(&init_ctx, t, settings_.seed, stream, 0, 0.0f, s.gain); break;
        case GRAFT_INIT_CONSTANT: st = host->fill(&init_ctx, t, s.gain); break;
        case GRAFT_INIT_UNIFORM: st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -s.gain, s.gain); break;
        default:
          throw UserError(layer->who + ": parameter '" + info.name + "' asks for unknown init " +
                          std::to_string(s.init));
      }
      throw_if_failed(st, "initialising " + info.name);
    }
    for (auto& v : layer->param_views) layer->param_ptrs.push_back(v.get());
    for (auto& v : layer->grad_views) layer->grad_ptrs.push_back(v.get());
  }

  // The loss, on the last layer's output.
  const PluginRecord& loss_rec = *loss_choice_.record;
  throw_if_failed(loss_rec.vtable<graft_loss_vtable>().create(host, loss_choice_.options.get(), &shape,
                                                              &target_, &loss_),
                  who(loss_choice_) + " on predictions of shape " + shape_string(shape));
  graft_loss_desc loss_desc{};
  loss_desc.struct_size = sizeof loss_desc;
  throw_if_failed(loss_rec.vtable<graft_loss_vtable>().describe(loss_, &loss_desc), who(loss_choice_));
  for (size_t m = 0; m < loss_desc.n_metrics; ++m) metric_names_.push_back(loss_desc.metric_names[m]);

  // The optimizer and its state.
  const auto& opt_vt = optimizer_choice_.record->vtable<graft_optimizer_vtable>();
  throw_if_failed(opt_vt.create(host, optimizer_choice_.options.get(), &optimizer_), who(optimizer_choice_));
  graft_optimizer_desc opt_desc{};
  opt_desc.struct_size = sizeof opt_desc;
  throw_if_failed(opt_vt.describe(optimizer_, &opt_desc), who(optimizer_choice_));
  for (size_t s = 0; s < opt_desc.n_state; ++s) {
    state_names_.push_back(opt_desc.state_names[s]);
    state_buffers_.emplace_back(settings_.device, total);
  }

  // Activation, gradient and workspace buffers for each slot.
  for (int32_t s = 0; s < settings_.slots; ++s) {
    auto slot = std::make_unique<Slot>();
    for (auto& layer : layers_) {
      const size_t rows = static_cast<size_t>(settings_.max_batch);
      slot->outputs.emplace_back(settings_.device, rows * graft_shape_numel(&layer->out));
      slot->input_grads.emplace_back(settings_.device, rows * graft_shape_numel(&layer->in));
      slot->workspaces.emplace_back(settings_.device, rows * layer->workspace_per_sample);
    }
    slot->inputs.resize(layers_.size());
    slot->output_views.resize(layers_.size());
    slot->input_grad_views.resize(layers_.size());
    slot->workspace_views.resize(layers_.size());
    slot->dprediction = Buffer(settings_.device, settings_.max_batch * graft_shape_numel(&shape));
    slots_.push_back(std::move(slot));
  }
}

Model::~Model() {
  for (auto& layer : layers_) {
    if (!layer->self) continue;
    if (layer->is_activation) layer->activation_vtable->destroy(layer->self);
    else layer->layer_vtable->destroy(layer->self);
  }
  if (loss_) loss_choice_.record->vtable<graft_loss_vtable>().destroy(loss_);
  if (optimizer_) optimizer_choice_.record->vtable<graft_optimizer_vtable>().destroy(optimizer_);
}

const std::string& Model::layer_name(int64_t i) const { return layers_.at(i)->choice->record->name; }
const graft_shape& Model::layer_output(int64_t i) const { return layers_.at(i)->out; }
int64_t Model::layer_parameter_count(int64_t i) const {
  int64_t n = 0;
  for (size_t p : layers_.at(i)->param_indices) n += static_cast<int64_t>(params_[p].numel);
  return n;
}

size_t Model::planned_bytes() const {
  size_t bytes = param_buffer_.bytes() + grad_buffer_.bytes();
  for (const Buffer& b : state_buffers_) bytes += b.bytes();
  for (const auto& slot : slots_) {
    for (const Buffer& b : slot->outputs) bytes += b.bytes();
    for (const Buffer& b : slot->input_grads) bytes += b.bytes();
    for (const Buffer& b : slot->workspaces) bytes += b.bytes();
    bytes += slot->dprediction.bytes();
  }
  return bytes;
}

const DLTensor* Model::forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                               const DLTensor& x) {
  Slot& slot = *slots_.at(ctx.slot);
  const int64_t rows = x.ndim ? x.shape[0] : 0;
  if (rows > settings_.max_batch)
    throw Failure("forward: " + std::to_string(rows) + " rows exceed the planned batch of " +
                  std::to_string(settings_.max_batch));
  graft_exec_ctx layer_ctx = ctx;
  const DLTensor* input = &x;
  for (int64_t i = begin; i < end; ++i) {
    Layer& layer = *layers_[i];
    slot.inputs[i] = TensorView(input->data, input->device, rows, layer.in);
    slot.inputs[i].get()->byte_offset = input->byte_offset;
    slot.output_views[i] = TensorView(slot.outputs[i].data(), settings_.device, rows, layer.out);
    layer_ctx.layer_index = static_cast<int32_t>(i);
    graft_status* st;
    if (layer.is_activation) {
      st = layer.activation_vtable->forward(layer.self, &layer_ctx, slot.inputs[i].get(),
                                            slot.output_views[i].get());
    } else {
      graft_shape ws{1, {layer.workspace_per_sample}};
      slot.workspace_views[i] = TensorView(slot.workspaces[i].data(), settings_.device, rows, ws);
      st = layer.layer_vtable->forward(layer.self, &layer_ctx, layer.param_ptrs.data(),
                                       slot.inputs[i].get(), slot.output_views[i].get(),
                                       layer.workspace_per_sample ? slot.workspace_views[i].get() : nullptr);
    }
    if (st) throw_if_failed(st, layer.who + " forward");  // the message only on failure: no allocation
    input = slot.output_views[i].get();
  }
  return input;
}

std::string Model::non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const {
  const Slot& slot = *slots_.at(ctx.slot);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const float* out = slot.outputs[i].data();
    const int64_t n = rows * graft_shape_numel(&layers_[i]->out);
    for (int64_t k = 0; k < n; ++k)
      if (!std::isfinite(out[k]))
        return "the output of layer " + std::to_string(i) + " (" + layers_[i]->choice->record->name +
               ") was the first to go non-finite";
  }
  return "every layer's output is finite, so the loss itself overflowed";
}

const DLTensor* Model::loss(const graft_exec_ctx& ctx, const DLTensor& prediction,
                            const DLTensor& target, graft_step_result& result, bool want_gradient) {
  const auto& vt = loss_choice_.record->vtable<graft_loss_vtable>();
  double loss_sum = 0.0;
  double metric_sums[GRAFT_MAX_METRICS] = {};
  if (graft_status* st = vt.forward(loss_, &ctx, &prediction, &target, &loss_sum, metric_sums))
    throw_if_failed(st, who(loss_choice_) + " forward");
  const int64_t rows = prediction.shape[0];
  if (!std::isfinite(loss_sum))
    throw Failure("step " + std::to_string(ctx.step) + ": the loss is " +
                  (std::isnan(loss_sum) ? "NaN" : "infinite") + "; " + non_finite_report(ctx, rows) +
                  ". Training stopped; checkpoints written before this step are intact. Lower "
                  "optimizer.lr, set run.clip_grad_norm, or check the data for bad values");
  result.loss_sum += loss_sum;
  for (size_t m = 0; m < metric_names_.size(); ++m) result.metric_sums[m] += metric_sums[m];
  result.rows += rows;
  if (!want_gradient) return nullptr;
  Slot& slot = *slots_.at(ctx.slot);
  graft_shape out_shape = layers_.back()->out;
  slot.dprediction_view = TensorView(slot.dprediction.data(), settings_.device, rows, out_shape);
  const float scale = 1.0f / float(ctx.global_batch > 0 ? ctx.global_batch : rows);
  if (graft_status* st = vt.backward(loss_, &ctx, &prediction, &target, scale, slot.dprediction_view.get()))
    throw_if_failed(st, who(loss_choice_) + " backward");
  return slot.dprediction_view.get();
}

const DLTensor* Model::backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                                const DLTensor& dy, void (*on_layer_done)(void*, int64_t),
                                void* user) {
  Slot& slot = *slots_.at(ctx.slot);
  const int64_t rows = dy.shape[0];
  graft_exec_ctx layer_ctx = ctx;
  const DLTensor* grad = &dy;
  for (int64_t i = end - 1; i >= begin; --i) {
    Layer& layer = *layers_[i];
    DLTensor* dx = nullptr;
    if (i > 0) {
      slot.input_grad_views[i] = TensorView(slot.input_grads[i].data(), settings_.device, rows, layer.in);
      dx = slot.input_grad_views[i].get();
    }
    layer_ctx.layer_index = static_cast<int32_t>(i);
    graft_status* st;
    if (layer.is_activation) {
      st = dx ? layer.activation_vtable->backward(layer.self, &layer_ctx, slot.inputs[i].get(),
                                                  slot.output_views[i].get(), grad, dx)
              : nullptr;
    } else {
      st = layer.layer_vtable->backward(layer.self, &layer_ctx, layer.param_ptrs.data(),
                                        slot.inputs[i].get(), slot.output_views[i].get(), grad, dx,
                                        layer.grad_ptrs.data(),
                                        layer.workspace_per_sample ? slot.workspace_views[i].get() : nullptr);
    }
    if (st) throw_if_failed(st, layer.who + " backward");
    if (on_layer_done) on_layer_done(user, i);
    grad = dx;
  }
  return grad;
}

void Model::zero_grad() {
  if (grad_buffer_.size()) std::memset(grad_buffer_.data(), 0, grad_buffer_.bytes());
}

void Model::optimizer_step(const graft_exec_ctx& ctx) {
  const graft_host_api* host = host_api();
  if (settings_.clip_grad_norm > 0.0 && grad_buffer_.size()) {
    TensorView all(grad_buffer_.data(), settings_.device, graft_shape{1, {int64_t(grad_buffer_.size())}});
    double squared = 0.0;
    if (graft_status* st = host->dot(&ctx, all.get(), all.get(), &squared))
      throw_if_failed(st, "gradient norm");
    const double norm = std::sqrt(squared);
    if (norm > settings_.clip_grad_norm) {  // as torch.nn.utils.clip_grad_norm_
      const float scale = float(settings_.clip_grad_norm / (norm + 1e-6));
      if (graft_status* st = host->axpby(&ctx, scale, all.get(), 0.0f, all.get()))
        throw_if_failed(st, "gradient clipping");
    }
  }
  last_lr_ = settings_.schedule.at(optimizer_steps_);
  const auto& vt = optimizer_choice_.record->vtable<graft_optimizer_vtable>();
  for (auto& layer : layers_) {
    for (size_t k = 0; k < layer->param_indices.size(); ++k) {
      const ParameterInfo& info = params_[layer->param_indices[k]];
      if (info.spec.is_buffer) continue;  // the layer keeps it (running statistics)
      TensorView states[GRAFT_MAX_OPTIMIZER_STATE];
      DLTensor* state_ptrs[GRAFT_MAX_OPTIMIZER_STATE] = {};
      for (size_t s = 0; s < state_buffers_.size(); ++s) {
        states[s] = TensorView(state_buffers_[s].data() + info.offset, settings_.device, info.shape);
        state_ptrs[s] = states[s].get();
      }
      graft_param_update u{sizeof(graft_param_update), layer->param_views[k].get(),
                           layer->grad_views[k].get(), state_ptrs, float(last_lr_),
                           optimizer_steps_ + 1, 1};
      if (graft_status* st = vt.step(optimizer_, &ctx, &u))
        throw_if_failed(st, who(optimizer_choice_) + " on " + info.name);
    }
  }
  ++optimizer_steps_;
}

// The C table for strategy plugins: each call converts exceptions into statuses.
namespace {
Model* self(graft_model* m) { return reinterpret_cast<Model*>(m); }

template <class F>
graft_status* guarded(F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const UserError& e) {
    return host_api()->make_status(GRAFT_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return host_api()->make_status(GRAFT_ERR_RUNTIME, e.what());
  }
}

int64_t api_layer_count(graft_model* m) { return self(m)->layer_count(); }
graft_status* api_forward(graft_model* m, const graft_exec_ctx* ctx, int64_t b, int64_t e,
                          const DLTensor* x, const DLTensor** y) {
  return guarded([&] { *y = self(m)->forward(*ctx, b, e, *x); });
}
graft_status* api_loss(graft_model* m, const graft_exec_ctx* ctx, const DLTensor* pred,
                       const DLTensor* target, graft_step_result* r, const DLTensor** dpred) {
  return guarded([&] {
    const DLTensor* g = self(m)->loss(*ctx, *pred, *target, *r, dpred != nullptr);
    if (dpred) *dpred = g;
  });
}
graft_status* api_backward(graft_model* m, const graft_exec_ctx* ctx, int64_t b, int64_t e,
                           const DLTensor* dy, const DLTensor** dx, void (*done)(void*, int64_t),
                           void* user) {
  return guarded([&] {
    const DLTensor* g = self(m)->backward(*ctx, b, e, *dy, done, user);
    if (dx) *dx = g;
  });
}
graft_status* api_zero_grad(graft_model* m) { return guarded([&] { self(m)->zero_grad(); }); }
graft_status* api_optimizer_step(graft_model* m, const graft_exec_ctx* ctx) {
  return guarded([&] { self(m)->optimizer_step(*ctx); });
}
const graft_model_api kModelApi = {sizeof(graft_model_api), api_layer_count, api_forward, api_loss,
                                   api_backward, api_zero_grad, api_optimizer_step};
}  // namespace

const graft_model_api* Model::api() { return &kModelApi; }

}  // namespace graft::runtime
