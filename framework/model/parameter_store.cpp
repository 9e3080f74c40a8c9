// Parameter, gradient and optimizer-state buffers: initialisation by each parameter's init
// and stream, the layer-range views and norms the strategies ask for, and host copies.
#include "model/parameter_store.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "device/cpu/cpu_primitives.hpp"
#include "device/host_api.hpp"
#include "model/tensor_parts.hpp"

namespace graft::runtime {

namespace {
constexpr uint64_t kParameterStream = 0x5041524d00000000ull;  // "PARM": init streams

// The axis a parameter is a tensor-parallel part along, or -1 when it is whole.
int part_axis(const graft_param_spec& spec) {
  return spec.shard_axis >= 0 && spec.shard_axis < spec.shape.ndim ? spec.shard_axis : -1;
}

void copy_floats(const float* from, DLDevice from_device, float* to, DLDevice to_device,
                 size_t floats) {
  if (floats == 0) return;
  int64_t n = static_cast<int64_t>(floats);
  DLTensor src{}, dst{};
  src.data = const_cast<float*>(from);
  src.device = from_device;
  dst.data = to;
  dst.device = to_device;
  src.ndim = dst.ndim = 1;
  src.dtype = dst.dtype = DLDataType{kDLFloat, 32, 1};
  src.shape = dst.shape = &n;
  throw_if_failed(host_api()->copy(nullptr, &src, &dst), "copying model memory");
}
}  // namespace

size_t ParameterStore::declare(std::string name, int64_t layer, const graft_param_spec& spec,
                               int32_t init_layer, size_t position, std::string owner, bool held,
                               int64_t tied) {
  ParameterInfo info;
  info.name = std::move(name);
  info.layer = layer;
  info.shape = spec.shape;
  info.numel = static_cast<size_t>(graft_shape_numel(&info.shape));
  info.offset = held_floats_;
  info.held = held;
  info.spec = spec;
  info.spec.name = nullptr;  // the plugin's string may not outlive the plugin object
  uint64_t stream = kParameterStream | (uint64_t(init_layer) << 16) | position;
  if (tied >= 0) {
    const ParameterInfo& other = params_.at(size_t(tied));
    info.tied = tied;
    info.spec = other.spec;
    stream = streams_[size_t(tied)];
    info.alias = held && other.held;
    if (info.alias) info.offset = other.offset;
  }
  if (info.has_floats()) held_floats_ += info.numel;
  params_.push_back(std::move(info));
  streams_.push_back(stream);
  owners_.push_back(std::move(owner));
  return params_.size() - 1;
}

void ParameterStore::shard_over_data(int32_t parts, int32_t index, size_t unit_floats,
                                     int32_t level) {
  zero_parts_ = parts;
  zero_index_ = index;
  zero_unit_floats_ = unit_floats;
  zero_level_ = level;
}

// Under ZeRO the held parameters move to their places in the padded units; one of another
// stage keeps the place of the held parameter after it (or the end), so layer ranges still
// find their floats by offset.
void ParameterStore::lay_out_units(int64_t layers) {
  std::vector<int64_t> layer_of;
  std::vector<size_t> numel;
  int64_t first = layers, end = 0;
  for (const ParameterInfo& p : params_)
    if (p.has_floats()) {
      layer_of.push_back(p.layer);
      numel.push_back(p.numel);
      first = std::min(first, p.layer);
      end = std::max(end, p.layer + 1);
    }
  if (numel.empty()) return;  // nothing to shard: no ZeRO units
  zero_ = zero_layout(layer_of, numel, first, end, zero_unit_floats_, zero_parts_, zero_index_);
  size_t next = zero_->floats, k = numel.size();
  for (size_t i = params_.size(); i-- > 0;) {
    if (params_[i].has_floats()) next = zero_->offsets[--k];
    params_[i].offset = next;
  }
  for (ParameterInfo& p : params_)
    if (p.alias) p.offset = params_[size_t(p.tied)].offset;
  held_floats_ = zero_->floats;
}

void ParameterStore::allocate(int64_t layers, uint64_t seed, int32_t shard_index, int32_t shards) {
  layers_ = layers;
  if (zero_parts_ > 1) lay_out_units(layers);
  const bool windowed_params = zero_level() >= 3, windowed_grads = zero_level() >= 2;
  if (windowed_grads) {
    // Two windows per kind, one for the even units and one for the odd: the strategy gathers
    // (or reduce-scatters) the next unit in one while the other unit computes.
    for (size_t u = 0; u < zero_->units.size(); ++u)
      window_size_[u % 2] =
          std::max(window_size_[u % 2], zero_->units[u].part * size_t(zero_->parts));
    grad_parts_ = Buffer(device_, zero_->state_floats);
  }
  if (windowed_params) param_parts_ = Buffer(device_, zero_->state_floats);
  const size_t windows = window_size_[0] + window_size_[1];
  param_buffer_ = Buffer(device_, windowed_params ? windows : held_floats_);
  grad_buffer_ = Buffer(device_, windowed_grads ? windows : held_floats_);
  for (const ParameterInfo& info : params_) {
    param_views_.emplace_back(info.held ? param_at(info.offset) : nullptr, device_, info.shape);
    grad_views_.emplace_back(info.held ? grad_at(info.offset) : nullptr, device_, info.shape);
  }
  // Pointers into the views, taken once the vectors no longer grow.
  for (TensorView& v : param_views_) param_ptrs_.push_back(v.get());
  for (TensorView& v : grad_views_) grad_ptrs_.push_back(v.get());
  if (windowed_params) {
    initialise_by_unit(seed, shard_index, shards);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].has_floats()) initialise(i, seed, shard_index, shards);
}

void ParameterStore::initialise(size_t i, uint64_t seed, int32_t shard_index, int32_t shards) {
  const graft_host_api* host = host_api();
  graft_exec_ctx init_ctx{};
  init_ctx.struct_size = sizeof init_ctx;
  init_ctx.host = host;
  init_ctx.device = device_;
  const ParameterInfo& info = params_[i];
  const graft_param_spec& s = info.spec;
  const uint64_t stream = streams_[i];
  DLTensor* t = param_views_[i].get();
  // A tensor-parallel part is its slice of the whole tensor drawn from the same stream,
  // so its values do not depend on the layout; the whole lives only during the fill.
  const int axis = part_axis(info.spec);
  Buffer whole;
  TensorView whole_view;
  if (axis >= 0) {
    const graft_shape whole_dims = whole_shape(info.shape, axis, shards);
    whole = Buffer(device_, size_t(graft_shape_numel(&whole_dims)));
    whole_view = TensorView(whole.data(), device_, whole_dims);
    t = whole_view.get();
  }
  const double fan_in = double(std::max<int64_t>(1, s.fan_in));
  const double fan_out = double(std::max<int64_t>(1, s.fan_out));
  graft_status* st = nullptr;
  switch (s.init) {
    case GRAFT_INIT_ZEROS: st = host->fill(&init_ctx, t, 0.0f); break;
    case GRAFT_INIT_ONES: st = host->fill(&init_ctx, t, 1.0f); break;
    case GRAFT_INIT_XAVIER_UNIFORM: {
      float a = float(s.gain * std::sqrt(6.0 / (fan_in + fan_out)));
      st = host->fill_uniform(&init_ctx, t, seed, stream, 0, -a, a);
      break;
    }
    case GRAFT_INIT_KAIMING_NORMAL:
      st = host->fill_normal(&init_ctx, t, seed, stream, 0, 0.0f,
                             float(s.gain * std::sqrt(2.0 / fan_in)));
      break;
    case GRAFT_INIT_KAIMING_UNIFORM: {
      float a = float(s.gain * std::sqrt(3.0 / fan_in));
      st = host->fill_uniform(&init_ctx, t, seed, stream, 0, -a, a);
      break;
    }
    case GRAFT_INIT_NORMAL:
      st = host->fill_normal(&init_ctx, t, seed, stream, 0, 0.0f, s.gain);
      break;
    case GRAFT_INIT_CONSTANT: st = host->fill(&init_ctx, t, s.gain); break;
    case GRAFT_INIT_UNIFORM:
      st = host->fill_uniform(&init_ctx, t, seed, stream, 0, -s.gain, s.gain);
      break;
    default:
      throw UserError(owners_[i] + ": parameter '" + info.name + "' asks for unknown init " +
                      std::to_string(s.init));
  }
  throw_if_failed(st, "initialising " + info.name);
  if (axis >= 0 && on_cpu()) {
    copy_part_from_whole(whole.data(), static_cast<float*>(param_views_[i].get()->data), info.shape,
                         axis, shard_index, shards);
  } else if (axis >= 0) {  // the slicing is the host's: through host memory, once
    std::vector<float> whole_host(whole.size()), part(info.numel);
    copy_to_host(whole.data(), whole_host.data(), whole.size());
    copy_part_from_whole(whole_host.data(), part.data(), info.shape, axis, shard_index, shards);
    copy_from_host(part.data(), static_cast<float*>(param_views_[i].get()->data), info.numel);
  }
}

void ParameterStore::allocate_optimizer_state(size_t states) {
  const size_t n = zero_ ? zero_->state_floats : floats();
  for (size_t s = 0; s < states; ++s) state_buffers_.emplace_back(device_, n);
}

std::vector<size_t> ParameterStore::buffer_floats() const {
  std::vector<size_t> sizes{param_buffer_.size() + param_parts_.size(),
                            grad_buffer_.size() + grad_parts_.size()};
  for (const Buffer& b : state_buffers_) sizes.push_back(b.size());
  return sizes;
}

ParameterStore::Floats ParameterStore::floats_by_kind() const {
  Floats f;
  const bool windowed_params = zero_level() >= 3, windowed_grads = zero_level() >= 2;
  f.parameters = windowed_params ? param_parts_.size() : param_buffer_.size();
  f.gradients = windowed_grads ? grad_parts_.size() : grad_buffer_.size();
  for (const Buffer& b : state_buffers_) f.state += b.size();
  f.windows =
      (windowed_params ? param_buffer_.size() : 0) + (windowed_grads ? grad_buffer_.size() : 0);
  return f;
}

TensorView ParameterStore::state_tensor(size_t s, size_t i) const {
  const ParameterInfo& info = params_[i];
  if (zero_)
    throw Failure("optimizer state of '" + info.name +
                  "': under ZeRO it is kept by part (ParameterStore::zero()), not by parameter");
  float* const data = info.held ? state_buffers_[s].data() + info.offset : nullptr;
  return TensorView(data, device_, info.shape);
}

// Parameters are laid out in layer order (a block's inner layers right after it), so the
// tensors of layers [begin, end) are one run of floats in every buffer. Those not held take no
// floats, so a range reaching into other stages' layers is this stage's run, or empty.
std::pair<size_t, size_t> ParameterStore::layer_floats(int64_t begin, int64_t end,
                                                       const char* what) const {
  if (begin < 0 || end < begin || end > layers_)
    throw Failure(std::string(what) + ": layers [" + std::to_string(begin) + ", " +
                  std::to_string(end) + ") are outside the model's " + std::to_string(layers_) +
                  " layers");
  const size_t total = held_floats_;
  size_t first = total, last = total;
  for (auto p = params_.rbegin(); p != params_.rend(); ++p) {  // backwards: each ends the last
    if (p->alias) continue;                                    // its floats are the earlier layer's
    if (p->layer >= end) last = p->offset;
    if (p->layer >= begin) first = p->offset;
  }
  return {first, last};
}

void ParameterStore::layer_range_view(bool gradients, int64_t begin, int64_t end, DLTensor& out) {
  const auto [first, last] = layer_floats(begin, end, gradients ? "gradients" : "parameters");
  // A map node never moves, so the shape outlives the call; one node per distinct range.
  int64_t& shape = range_shapes_[{begin, end}];
  shape = static_cast<int64_t>(last - first);
  // A window holds one unit: a range must stay inside one (ZeRO units ask for exactly theirs).
  const bool windowed = gradients ? zero_level() >= 2 : zero_level() >= 3;
  if (windowed && last > first) {
    const ZeroUnit& u = zero_->units[unit_of(first)];
    if (last > u.first + u.part * size_t(zero_->parts))
      throw Failure(std::string(gradients ? "gradients" : "parameters") + ": layers [" +
                    std::to_string(begin) + ", " + std::to_string(end) +
                    ") span ZeRO units, whose whole tensors are gathered one unit at a time; "
                    "ask for a unit's (zero_unit)");
  }
  out = DLTensor{};
  out.data = gradients ? grad_at(first) : param_at(first);
  out.device = device_;
  out.ndim = 1;
  out.dtype = DLDataType{kDLFloat, 32, 1};
  out.shape = &shape;
}

double ParameterStore::grad_sq_norm(int64_t begin, int64_t end, bool count_replicated) const {
  if (zero_level() >= 2)
    throw Failure("grad_sq_norm: under ZeRO-" + std::to_string(zero_level()) +
                  " each rank keeps its parts' gradients only; sum zero_part_sq_norm instead");
  const auto [first, last] = layer_floats(begin, end, "grad_sq_norm");
  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = host_api();
  ctx.device = device_;
  ctx.layer_index = -1;
  // Counted tensors that touch are summed as one run, so the whole model without buffers is
  // one dot product: the very sum optimizer_step always took.
  double total = 0.0;
  size_t run_begin = first, run_end = first;
  auto flush = [&] {
    if (run_end == run_begin) return;
    TensorView run(grad_buffer_.data() + run_begin, device_,
                   graft_shape{1, {int64_t(run_end - run_begin)}});
    double squared = 0.0;
    if (graft_status* st = ctx.host->dot(&ctx, run.get(), run.get(), &squared))
      throw_if_failed(st, "gradient norm");
    total += squared;
  };
  for (const ParameterInfo& p : params_) {
    // A tied parameter counts once: where it was declared first (ParameterInfo::tied).
    if (!p.held || p.tied >= 0 || p.offset < first || p.offset >= last) continue;
    const bool counts = !p.spec.is_buffer && (count_replicated || p.spec.shard_axis >= 0);
    if (!counts) continue;
    if (p.offset != run_end) {
      flush();
      run_begin = p.offset;
    }
    run_end = p.offset + p.numel;
  }
  flush();
  return total;
}

void ParameterStore::zero_gradients() {
  for (Buffer* b : {&grad_buffer_, &grad_parts_}) {
    if (b->size() == 0) continue;
    if (on_cpu()) {
      // On the host's threads, with streaming stores for a large model (cpu_primitives.hpp).
      cpu::zero(b->data(), int64_t(b->size()));
      continue;
    }
    TensorView all(b->data(), device_, graft_shape{1, {int64_t(b->size())}});
    if (graft_status* st = host_api()->fill(nullptr, all.get(), 0.0f))
      throw_if_failed(st, "zero_grad");
  }
}

void ParameterStore::copy_to_host(const float* device_memory, float* host, size_t floats) const {
  if (on_cpu()) {
    std::memcpy(host, device_memory, floats * sizeof(float));
    return;
  }
  copy_floats(device_memory, device_, host, DLDevice{kDLCPU, 0}, floats);
}

void ParameterStore::copy_from_host(const float* host, float* device_memory, size_t floats) const {
  if (on_cpu()) {
    std::memcpy(device_memory, host, floats * sizeof(float));
    return;
  }
  copy_floats(host, DLDevice{kDLCPU, 0}, device_memory, device_, floats);
}

}  // namespace graft::runtime
