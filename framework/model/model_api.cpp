// The model functions the parallel strategies need beyond one whole step: views of the
// contiguous parameter and gradient buffers by layer range, and the gradient norm of a range.
#include <cstring>
#include <string>

#include "model/model.hpp"
#include "model/model_parts.hpp"

namespace graft::runtime {

// Parameters are laid out in layer order (a block's inner layers right after it), so the
// tensors of layers [begin, end) are one run of floats in every buffer.
std::pair<size_t, size_t> Model::layer_floats(int64_t begin, int64_t end, const char* what) const {
  if (begin < 0 || end < begin || end > layer_count())
    throw Failure(std::string(what) + ": layers [" + std::to_string(begin) + ", " +
                  std::to_string(end) + ") are outside the model's " +
                  std::to_string(layer_count()) + " layers");
  const size_t total = param_buffer_.size();
  size_t first = total, last = total;
  for (auto p = params_.rbegin(); p != params_.rend(); ++p) {  // backwards: each ends the last
    if (p->layer >= end) last = p->offset;
    if (p->layer >= begin) first = p->offset;
  }
  return {first, last};
}

void Model::layer_range_view(bool gradients, int64_t begin, int64_t end, DLTensor& out) {
  const auto [first, last] = layer_floats(begin, end, gradients ? "gradients" : "parameters");
  // A map node never moves, so the shape outlives the call; one node per distinct range.
  int64_t& shape = range_shapes_[{begin, end}];
  shape = static_cast<int64_t>(last - first);
  out = DLTensor{};
  out.data = (gradients ? grad_buffer_.data() : param_buffer_.data()) + first;
  out.device = settings_.device;
  out.ndim = 1;
  out.dtype = DLDataType{kDLFloat, 32, 1};
  out.shape = &shape;
}

namespace {
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

void Model::copy_to_host(const float* model, float* host, size_t floats) const {
  if (on_cpu()) {
    std::memcpy(host, model, floats * sizeof(float));
    return;
  }
  copy_floats(model, settings_.device, host, DLDevice{kDLCPU, 0}, floats);
}

void Model::copy_from_host(const float* host, float* model, size_t floats) const {
  if (on_cpu()) {
    std::memcpy(model, host, floats * sizeof(float));
    return;
  }
  copy_floats(host, DLDevice{kDLCPU, 0}, model, settings_.device, floats);
}

double Model::grad_sq_norm(int64_t begin, int64_t end, bool count_replicated) {
  const auto [first, last] = layer_floats(begin, end, "grad_sq_norm");
  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = host_api();
  ctx.device = settings_.device;
  ctx.layer_index = -1;
  // Counted tensors that touch are summed as one run, so the whole model without buffers is
  // one dot product: the very sum optimizer_step always took.
  double total = 0.0;
  size_t run_begin = first, run_end = first;
  auto flush = [&] {
    if (run_end == run_begin) return;
    TensorView run(grad_buffer_.data() + run_begin, settings_.device,
                   graft_shape{1, {int64_t(run_end - run_begin)}});
    double squared = 0.0;
    if (graft_status* st = ctx.host->dot(&ctx, run.get(), run.get(), &squared))
      throw_if_failed(st, "gradient norm");
    total += squared;
  };
  for (const ParameterInfo& p : params_) {
    if (p.offset < first || p.offset >= last) continue;
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

}  // namespace graft::runtime
