// graft's side of the long-context attention benchmark: the attention plugin loaded and driven
// through its C vtable, one forward + backward at (1, T, C); prints time and peak RSS as JSON.
#include <algorithm>
#include <chrono>
#include <cmath>
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
    "usage: graft_bench_attention [--context 1024] [--width 256] [--heads 4] [--batch 1]\n"
    "                             [--repeats 2] [--threads 2] [--plugin-dir DIR]\n"
    "Times one forward + backward of the causal attention layer (fused qkv and output\n"
    "projections, biases) on a (batch, T, C) input; prints one JSON line with the best time of\n"
    "--repeats and the process's peak RSS (VmHWM), before the layer and at the end.";

struct Arguments {
  int64_t context = 1024;  // T
  int64_t width = 256;     // C
  int64_t heads = 4;
  int64_t batch = 1;  // N
  int64_t repeats = 2;
  int threads = 2;
  std::string plugin_dir = GRAFT_BENCH_PLUGIN_DIR;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  using graft::bench::into;
  graft::bench::parse_flags(argc, argv, kUsage,
                            {{"--context", into(a.context)},
                             {"--width", into(a.width)},
                             {"--heads", into(a.heads)},
                             {"--batch", into(a.batch)},
                             {"--repeats", into(a.repeats)},
                             {"--threads", into(a.threads)},
                             {"--plugin-dir", into(a.plugin_dir)}},
                            {});
  if (a.context < 1 || a.width < 1 || a.heads < 1 || a.batch < 1 || a.repeats < 1)
    throw rt::UserError("--context, --width, --heads, --batch and --repeats must be >= 1");
  return a;
}

using graft::bench::status_bytes;

const auto since = graft::bench::seconds_since;

void check(graft_status* status, const std::string& what) {
  rt::throw_if_failed(status, "attention " + what);
}

using Buffer = graft::bench::RandomBuffer;

int run(const Arguments& a) {
  rt::set_cpu_threads(a.threads);
  rt::Registry registry(rt::host_api());
  registry.load_directory(a.plugin_dir);
  if (!registry.find(GRAFT_KIND_LAYER, "attention"))
    throw rt::UserError("no 'attention' layer in " + a.plugin_dir +
                        "; build it (cmake --build <build> --target graft_attention) or pass "
                        "--plugin-dir");
  const rt::PluginRecord& record = registry.get(GRAFT_KIND_LAYER, "attention");
  const auto& vtable = record.vtable<graft_layer_vtable>();
  const toml::table table = toml::parse("heads = " + std::to_string(a.heads) + "\ncausal = true",
                                        std::string("bench options"));
  rt::BoundOptions options = rt::bind_options(*record.entry, &table, "[attention]", {"type"});
  const graft_shape input{2, {a.context, a.width}};  // (T, C) per sample
  const double rss_before_layer = status_bytes("VmHWM");
  void* self = nullptr;
  check(vtable.create(rt::host_api(), options.get(), &input, &self), "create");
  graft_layer_desc desc{};
  desc.struct_size = sizeof desc;
  check(vtable.describe(self, &desc), "describe");

  // Parameters and gradients (batch-less tensors: rows = the first dimension); reserved, so
  // that no reallocation moves a Buffer away from its view.
  std::vector<Buffer> params, grads;
  params.reserve(desc.n_params);
  grads.reserve(desc.n_params);
  std::vector<const DLTensor*> param_ptrs;
  std::vector<DLTensor*> grad_ptrs;
  for (size_t p = 0; p < desc.n_params; ++p) {
    graft_shape rest{desc.params[p].shape.ndim - 1, {}};
    for (int d = 1; d < desc.params[p].shape.ndim; ++d)
      rest.dims[d - 1] = desc.params[p].shape.dims[d];
    params.emplace_back(desc.params[p].shape.dims[0], rest, 10 + p);
    grads.emplace_back(desc.params[p].shape.dims[0], rest, 20 + p);
    param_ptrs.push_back(params.back().view.get());
    grad_ptrs.push_back(grads.back().view.get());
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
  double best = 1e30, best_forward = 0.0;
  for (int64_t r = 0; r < a.repeats; ++r) {
    const auto start = Clock::now();
    check(vtable.forward(self, &ctx, param_ptrs.data(), x.view.get(), y.view.get(),
                         workspace.view.get()),
          "forward");
    const double forward = since(start);
    check(vtable.backward(self, &ctx, param_ptrs.data(), x.view.get(), y.view.get(), dy.view.get(),
                          dx.view.get(), grad_ptrs.data(), workspace.view.get()),
          "backward");
    const double total = since(start);
    if (total < best) best = total, best_forward = forward;
  }
  vtable.destroy(self);
  const bool finite =
      std::all_of(dx.data.begin(), dx.data.end(), [](float v) { return std::isfinite(v); });
  if (!finite) throw rt::Failure("attention's dx has a non-finite value");

  json out;
  out["event"] = "attention";
  out["framework"] = "graft";
  out["context"] = a.context;
  out["width"] = a.width;
  out["heads"] = a.heads;
  out["batch"] = n;
  out["threads"] = a.threads;
  out["seconds"] = best;
  out["forward_seconds"] = best_forward;
  out["workspace_bytes"] = double(n * desc.workspace_per_sample) * 4.0;
  out["rss_before_bytes"] = rss_before_layer;
  out["peak_rss_bytes"] = status_bytes("VmHWM");
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "graft_bench_attention: " << e.what() << "\n";
    return 2;
  }
}
