// graft's side of the conv2d speed benchmark: the conv2d plugin loaded and driven through its
// C vtable as the model drives it, forward + backward on fashion_cnn's conv shapes; one JSON line.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_flags.hpp"
#include "bench_support.hpp"
#include "config/options.hpp"
#include "device/host_api.hpp"
#include "graft/random.h"
#include "model/tensor_view.hpp"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr const char* kUsage =
    "usage: graft_bench_conv --shape conv1|conv2 [--batch 128] [--seconds 3] [--warmup 1]\n"
    "                        [--threads 2] [--plugin-dir DIR] [--check-every-step]\n"
    "Times conv2d forward + backward (bias, no activation) on one of configs/fashion_cnn.toml's\n"
    "convolutions: conv1 (1, 28, 28) -> 32 channels, the first layer, so no dx; conv2\n"
    "(32, 14, 14) -> 64 channels with dx. Both 3x3, padding 1. Prints one JSON line. Every\n"
    "forward must reproduce the first one's bits (checked in the warm-up and at the end, or\n"
    "after every timed step with --check-every-step).";

// One of fashion_cnn's convolutions: input (C, H, W), O output channels, 3x3, padding 1.
struct ConvShape {
  std::string name;
  int64_t channels, height, width, out_channels;
  bool needs_dx;  // false for the first layer, as the model calls it
};

const ConvShape kShapes[] = {{"conv1", 1, 28, 28, 32, false}, {"conv2", 32, 14, 14, 64, true}};

struct Arguments {
  ConvShape shape = kShapes[0];
  int64_t batch = 128;  // N
  double seconds = 3.0, warmup_seconds = 1.0;
  int threads = 2;
  std::string plugin_dir = GRAFT_BENCH_PLUGIN_DIR;
  bool check_every_step = false;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  bool have_shape = false;
  using graft::bench::into;
  const auto shape = [&](const std::string&, const std::string& value) {
    auto it = std::find_if(std::begin(kShapes), std::end(kShapes),
                           [&](const ConvShape& s) { return s.name == value; });
    if (it == std::end(kShapes)) throw rt::UserError("--shape is conv1 or conv2, not " + value);
    a.shape = *it;
    have_shape = true;
  };
  graft::bench::parse_flags(argc, argv, kUsage,
                            {{"--shape", shape},
                             {"--batch", into(a.batch)},
                             {"--seconds", into(a.seconds)},
                             {"--warmup", into(a.warmup_seconds)},
                             {"--threads", into(a.threads)},
                             {"--plugin-dir", into(a.plugin_dir)}},
                            {{"--check-every-step", &a.check_every_step}});
  if (!have_shape) throw rt::UserError(std::string("--shape is required\n") + kUsage);
  if (a.batch < 1 || a.threads < 1) throw rt::UserError("--batch and --threads must be >= 1");
  return a;
}

// CPU seconds the whole machine has been busy (/proc/stat) and this process's own: over a
// measurement, their difference is what other processes took.
double machine_busy_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
}
double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

const auto since = graft::bench::seconds_since;

void check(graft_status* status, const std::string& what) {
  rt::throw_if_failed(status, "conv2d " + what);
}

using Buffer = graft::bench::RandomBuffer;

// A few outputs against the convolution's definition (3x3, padding 1), so that the rates below
// are those of a correct layer: y (N, O, H, W) from x (N, C, H, W), w (O, C, 3, 3), b (O,).
void check_outputs(const ConvShape& s, int64_t n, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& b,
                   const std::vector<float>& y) {
  const int64_t h = s.height, wd = s.width;
  for (uint64_t k = 0; k < 64; ++k) {
    const auto pick = [&](int64_t range, uint64_t stream) {
      return std::min<int64_t>(range - 1, int64_t(graft_random_uniform(9, stream, k) * range));
    };
    const int64_t i = pick(n, 1), o = pick(s.out_channels, 2), oh = pick(h, 3), ow = pick(wd, 4);
    double expected = b[size_t(o)];
    for (int64_t c = 0; c < s.channels; ++c)
      for (int64_t u = 0; u < 3; ++u)
        for (int64_t v = 0; v < 3; ++v) {
          const int64_t ih = oh + u - 1, iw = ow + v - 1;
          if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
          expected += double(w[size_t(((o * s.channels + c) * 3 + u) * 3 + v)]) *
                      x[size_t(((i * s.channels + c) * h + ih) * wd + iw)];
        }
    const double got = y[size_t(((i * s.out_channels + o) * h + oh) * wd + ow)];
    if (!(std::fabs(got - expected) <= 1e-4 * (1.0 + std::fabs(expected))))
      throw rt::Failure("conv2d's output (" + std::to_string(i) + ", " + std::to_string(o) + ", " +
                        std::to_string(oh) + ", " + std::to_string(ow) + ") is " +
                        std::to_string(got) + ", the definition gives " + std::to_string(expected));
  }
}

int run(const Arguments& a) {
  rt::set_cpu_threads(a.threads);
  rt::Registry registry(rt::host_api());
  registry.load_directory(a.plugin_dir);
  if (!registry.find(GRAFT_KIND_LAYER, "conv2d"))
    throw rt::UserError("no 'conv2d' layer in " + a.plugin_dir +
                        "; build it (cmake --build <build> --target graft_conv2d) or pass "
                        "--plugin-dir");
  const rt::PluginRecord& record = registry.get(GRAFT_KIND_LAYER, "conv2d");
  const auto& vtable = record.vtable<graft_layer_vtable>();
  const ConvShape& s = a.shape;
  const toml::table table = toml::parse(
      "out_channels = " + std::to_string(s.out_channels) + "\nkernel_size = 3\npadding = 1",
      std::string("bench options"));
  rt::BoundOptions options = rt::bind_options(*record.entry, &table, "[conv2d]", {"type"});
  const graft_shape input{3, {s.channels, s.height, s.width}};
  void* self = nullptr;
  check(vtable.create(rt::host_api(), options.get(), &input, &self), "create");
  graft_layer_desc desc{};
  desc.struct_size = sizeof desc;
  check(vtable.describe(self, &desc), "describe");

  // Parameters and gradients (batch-less tensors: rows = the first dimension).
  std::vector<Buffer> params, grads;
  std::vector<const DLTensor*> param_ptrs;
  std::vector<DLTensor*> grad_ptrs;
  // Reserved: a reallocation would copy the Buffers and leave the views on the old data.
  params.reserve(desc.n_params);
  grads.reserve(desc.n_params);
  for (size_t p = 0; p < desc.n_params; ++p) {
    graft_shape rest{desc.params[p].shape.ndim - 1, {}};
    for (int d = 1; d < desc.params[p].shape.ndim; ++d)
      rest.dims[d - 1] = desc.params[p].shape.dims[d];
    params.emplace_back(desc.params[p].shape.dims[0], rest, 10 + p);
    grads.emplace_back(desc.params[p].shape.dims[0], rest, 20 + p);
  }
  for (size_t p = 0; p < desc.n_params; ++p) {
    param_ptrs.push_back(params[p].view.get());
    grad_ptrs.push_back(grads[p].view.get());
  }
  const int64_t n = a.batch;
  Buffer x(n, input, 1), y(n, desc.output, 2), dy(n, desc.output, 3), dx(n, input, 4);
  Buffer workspace(n, graft_shape{1, {desc.workspace_per_sample}}, 5);

  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = rt::host_api();
  ctx.device = DLDevice{kDLCPU, 0};
  ctx.training = 1;
  ctx.world = 1;
  ctx.global_batch = n;
  double forward_seconds = 0.0, backward_seconds = 0.0;
  int64_t steps = 0;
  auto step = [&] {
    auto t = Clock::now();
    check(vtable.forward(self, &ctx, param_ptrs.data(), x.view.get(), y.view.get(),
                         workspace.view.get()),
          "forward");
    forward_seconds += since(t);
    t = Clock::now();
    check(vtable.backward(self, &ctx, param_ptrs.data(), x.view.get(), y.view.get(), dy.view.get(),
                          s.needs_dx ? dx.view.get() : nullptr, grad_ptrs.data(),
                          workspace.view.get()),
          "backward");
    backward_seconds += since(t);
    ++steps;
  };
  // Every forward must give the bits of the first: same inputs, same parameters.
  step();
  const std::vector<float> first_y = y.data;
  int64_t differing_steps = 0;
  auto compare = [&] {
    if (std::memcmp(first_y.data(), y.data.data(), sizeof(float) * first_y.size()) != 0)
      ++differing_steps;
  };
  const auto warmup_start = Clock::now();
  while (steps < 3 || since(warmup_start) < a.warmup_seconds) {
    step();
    compare();
  }
  steps = 0;
  forward_seconds = backward_seconds = 0.0;
  const double busy_before = machine_busy_seconds(), own_before = own_cpu_seconds();
  const auto start = Clock::now();
  while (steps < 5 || since(start) < a.seconds) {
    step();
    if (a.check_every_step) compare();
  }
  const double seconds = since(start);
  const double own = own_cpu_seconds() - own_before;
  const double others = (machine_busy_seconds() - busy_before) - own;
  vtable.destroy(self);
  compare();
  check_outputs(s, n, x.data, params[0].data, params[1].data, y.data);
  if (differing_steps)
    throw rt::Failure("conv2d's forward gave other bits than its first call in " +
                      std::to_string(differing_steps) + " steps");

  const double flops_per_sample = 2.0 * s.out_channels * s.height * s.width * s.channels * 9;
  json out;
  out["framework"] = "graft";
  out["shape"] = s.name;
  out["input"] = {s.channels, s.height, s.width};
  out["out_channels"] = s.out_channels;
  out["needs_dx"] = s.needs_dx;
  out["batch"] = n;
  out["threads"] = a.threads;
  out["blas_core"] = rt::blas_core_name();
  out["steps"] = steps;
  out["seconds"] = seconds;
  out["samples_per_s"] = double(steps * n) / seconds;
  out["forward_ms"] = 1e3 * forward_seconds / double(steps);
  out["backward_ms"] = 1e3 * backward_seconds / double(steps);
  out["gflops"] = flops_per_sample * (s.needs_dx ? 3 : 2) * double(steps * n) / seconds / 1e9;
  out["cpu_ms_per_step"] = 1e3 * own / double(steps);  // robust to other load with 1 thread
  out["other_load_cores"] = std::max(0.0, others / seconds);
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "graft_bench_conv: " << e.what() << "\n";
    return 2;
  }
}
