// graft's side of the GPU MLP benchmark: graft_bench_mlp's model built on the GPU (parameters,
// state, activations and a pool of random batches in GPU memory, TF32 off), timed with the stream
// synchronised at both ends, then cuBLAS's own sgemm rate on the same products. One JSON line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "device/cuda_loader.hpp"
#include "device/host_api.hpp"
#include "graft/random.h"
#include "mlp_setup.hpp"
#include "model/model.hpp"
#include "model/tensor_view.hpp"
#include "sgemm_rate_cuda.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;
using graft::bench::check;
const auto since = graft::bench::seconds_since;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr int kNoGpu = 77;  // as the GPU tests: nothing was measured, nothing failed

constexpr const char* kUsage =
    "usage: graft_bench_mlp_gpu [--layers 784,4096,4096,10] [--batch 1024] [--seconds 3]\n"
    "                           [--warmup 1] [--pool 16] [--sgemm-seconds 1] [--plugin-dir DIR]\n"
    "Trains an MLP (linear+relu ..., linear; cross_entropy; sgd momentum 0.9, lr 0.01) on GPU 0\n"
    "(CUDA_VISIBLE_DEVICES picks it) with TF32 off, on random batches preloaded into GPU memory,\n"
    "and prints one JSON line: samples/s, TFLOP/s, and cuBLAS's own sgemm rate on the same\n"
    "products (CUBLAS_DEFAULT_MATH, and CUBLAS_PEDANTIC_MATH as graft's device sets it).\n"
    "Exits 77 with the reason where no GPU is usable (a build without CUDA, no driver, no GPU).";

struct Arguments {
  std::vector<int64_t> widths{784, 4096, 4096, 10};  // D0, H0, H1, ..., classes
  int64_t batch = 1024;                              // B
  double seconds = 3.0;
  double warmup_seconds = 1.0;
  int64_t pool = 16;
  double sgemm_seconds = 1.0;
  std::string plugin_dir = GRAFT_BENCH_PLUGIN_DIR;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  using graft::bench::into;
  graft::bench::parse_flags(argc, argv, kUsage,
                            {{"--layers", into(a.widths)},
                             {"--batch", into(a.batch)},
                             {"--seconds", into(a.seconds)},
                             {"--warmup", into(a.warmup_seconds)},
                             {"--pool", into(a.pool)},
                             {"--sgemm-seconds", into(a.sgemm_seconds)},
                             {"--plugin-dir", into(a.plugin_dir)}});
  if (a.batch < 1 || a.pool < 1) throw rt::UserError("--batch and --pool must be at least 1");
  return a;
}

// GPU memory from the host API (the CUDA device's caching allocator), freed with it.
class DeviceBlock {
 public:
  explicit DeviceBlock(size_t bytes)
      : data_(rt::host_api()->alloc(kGpu, std::max<size_t>(bytes, 4))) {
    if (!data_) throw rt::Failure("out of GPU memory for " + std::to_string(bytes) + " bytes");
  }
  ~DeviceBlock() { rt::host_api()->free(kGpu, data_); }
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  void* data() const { return data_; }
  static constexpr DLDevice kGpu{kDLCUDA, 0};

 private:
  void* data_;
};

// Copies `count` elements of `dtype` from host memory into a DeviceBlock.
void copy_to_gpu(const void* host, const DeviceBlock& device, int64_t count, DLDataType dtype) {
  DLTensor from{const_cast<void*>(host), DLDevice{kDLCPU, 0}, 1, dtype, &count, nullptr, 0};
  DLTensor to{device.data(), DeviceBlock::kGpu, 1, dtype, &count, nullptr, 0};
  check(rt::host_api()->copy(nullptr, &from, &to), "copying the batches to the GPU");
}

// Preloaded batches in GPU memory, the CPU benchmark's values: x (pool, B, D) normal, drawn
// on the GPU by the same counter-based generator (51M draws at batch 4096 take seconds on the
// host); y (pool, B) int32 labels, drawn here and copied up. Views made once.
struct DeviceBatches {
  DeviceBlock x, y;
  std::vector<rt::TensorView> x_views, y_views;
  DeviceBatches(int64_t pool, int64_t B, int64_t D, int64_t classes)
      : x(size_t(pool * B * D) * sizeof(float)), y(size_t(pool * B) * sizeof(int32_t)) {
    int64_t x_count = pool * B * D;
    DLTensor all_x{x.data(), DeviceBlock::kGpu, 1, DLDataType{kDLFloat, 32, 1},
                   &x_count, nullptr,           0};
    check(rt::host_api()->fill_normal(nullptr, &all_x, 3, 1, 0, 0.0f, 1.0f), "drawing the batches");
    std::vector<int32_t> host_y(size_t(pool * B));
    for (size_t i = 0; i < host_y.size(); ++i)
      host_y[i] = std::min<int32_t>(int32_t(classes - 1),
                                    int32_t(graft_random_uniform(3, 2, i) * float(classes)));
    const DLDataType i32{kDLInt, 32, 1};
    copy_to_gpu(host_y.data(), y, int64_t(host_y.size()), i32);
    auto* xs = static_cast<float*>(x.data());
    auto* ys = static_cast<int32_t*>(y.data());
    for (int64_t p = 0; p < pool; ++p) {
      x_views.emplace_back(xs + p * B * D, DeviceBlock::kGpu, B, graft_shape{1, {D}});
      y_views.emplace_back(ys + p * B, DeviceBlock::kGpu, B, graft_shape{0, {}}, i32);
    }
  }
};

json products_json(const graft::bench::SgemmRate& rate) {
  json products = json::array();
  for (const auto& p : rate.products)
    products.push_back({{"name", p.name},
                        {"m", p.m},
                        {"n", p.n},
                        {"k", p.k},
                        {"seconds", p.seconds_per_call},
                        {"tflops", p.flops() / p.seconds_per_call / 1e12}});
  return products;
}

int run(const Arguments& a) {
  rt::cuda::Options options;
  options.tf32 = false;  // float32 products on both sides, as torch's allow_tf32 = False
  rt::cuda::Device* gpu = nullptr;
  try {
    gpu = &rt::start_cuda(options);
  } catch (const rt::UserError& e) {
    std::cerr << "graft_bench_mlp_gpu: no usable GPU, nothing measured: " << e.what() << "\n";
    return kNoGpu;
  }
  const int64_t B = a.batch, D = a.widths.front(), classes = a.widths.back();
  const size_t layer_count = a.widths.size() - 1;
  const DLDevice device = DeviceBlock::kGpu;

  DeviceBatches data(a.pool, B, D, classes);
  // The model on the GPU, stepped on the device's stream.
  graft::bench::MlpTraining training(a.widths, B, a.plugin_dir, device);
  rt::Model& model = training.model();
  training.context().stream = gpu->stream();
  int64_t step = 0;
  double last_loss = 0.0, first_loss = 0.0;
  auto train_step = [&] {
    const size_t b = size_t(step) % data.x_views.size();
    last_loss = training.step(*data.x_views[b].get(), *data.y_views[b].get());
    if (step == 0) first_loss = last_loss;
    ++step;
  };

  // The warm-up loads the kernels, lets cuBLAS pick its algorithms and the clocks rise.
  const auto warmup_start = Clock::now();
  while (step < 3 || since(warmup_start) < a.warmup_seconds) train_step();
  const int64_t warmup_steps = step;
  check(gpu->synchronize(), "synchronize");
  const size_t mallocs_before = gpu->device_mallocs();
  const auto start = Clock::now();
  while (step - warmup_steps < 5 || since(start) < a.seconds) train_step();
  check(gpu->synchronize(), "synchronize");
  const double seconds = since(start);
  const size_t mallocs_in_steps = gpu->device_mallocs() - mallocs_before;
  const int64_t timed_steps = step - warmup_steps;
  if (!std::isfinite(last_loss)) throw rt::Failure("the loss went non-finite during the benchmark");

  const double step_seconds = seconds / double(timed_steps);
  const double samples_per_second = double(timed_steps * B) / seconds;
  json out;
  out["framework"] = "graft";
  out["device"] = gpu->describe();
  out["tf32"] = false;
  out["layers"] = a.widths;
  out["batch"] = B;
  out["warmup_steps"] = warmup_steps;
  out["steps"] = timed_steps;
  out["seconds"] = seconds;
  out["step_seconds"] = step_seconds;
  out["samples_per_s"] = samples_per_second;
  out["parameters"] = model.parameter_count();
  // The products' own FLOPs (the first layer has no input gradient; bias, activation, loss
  // and update are not counted): the FLOPs cuBLAS is timed on below.
  double flops_per_step = 0.0;
  for (size_t l = 0; l < layer_count; ++l)
    flops_per_step += (l > 0 ? 3.0 : 2.0) * 2.0 * double(B * a.widths[l] * a.widths[l + 1]);
  out["flops_per_step"] = flops_per_step;
  out["tflops"] = flops_per_step / step_seconds / 1e12;
  out["first_loss"] = first_loss;
  out["last_loss"] = last_loss;
  out["device_mallocs_in_timed_steps"] = mallocs_in_steps;

  if (a.sgemm_seconds > 0) {
    using graft::bench::CublasMath;
    const graft::bench::SgemmRate rate =
        graft::bench::measure_cublas_sgemm(a.widths, B, a.sgemm_seconds, CublasMath::standard);
    const graft::bench::SgemmRate pedantic =
        graft::bench::measure_cublas_sgemm(a.widths, B, a.sgemm_seconds, CublasMath::pedantic);
    out["sgemm_math"] = graft::bench::cublas_math_name(CublasMath::standard);
    out["sgemm_tflops"] = rate.gflops() / 1e3;
    out["sgemm_seconds_per_step"] = rate.seconds_per_step;
    // graft's TFLOP/s over cuBLAS's on the same products: the share of the step that is sgemm.
    out["percent_of_sgemm"] = 100.0 * rate.seconds_per_step / step_seconds;
    out["sgemm_pedantic_tflops"] = pedantic.gflops() / 1e3;
    out["sgemm_products"] = products_json(rate);
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "graft_bench_mlp_gpu: " << e.what() << "\n";
    return 1;
  }
}
