// graft's side of the MLP speed benchmark: builds the model through the runtime as a training
// session does (registry, bind_options, Model, the `single` strategy's train_step through its
// vtable), feeds a preloaded pool of random batches, and prints one JSON line of results.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "device/host_api.hpp"
#include "graft/random.h"
#include "mlp_setup.hpp"
#include "model/model.hpp"
#include "model/tensor_view.hpp"
#include "sgemm_rate.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;
using graft::bench::check;
const auto since = graft::bench::seconds_since;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr const char* kUsage =
    "usage: graft_bench_mlp [--layers 784,256,128,10] [--batch 64] [--seconds 4] [--warmup 1]\n"
    "                       [--threads 2] [--pool 16] [--sgemm-seconds 1.5] [--profile]\n"
    "                       [--plugin-dir DIR]\n"
    "Trains an MLP (linear+relu ..., linear; cross_entropy; sgd momentum 0.9, lr 0.01) on\n"
    "preloaded random batches and prints one JSON line: samples/s, GFLOP/s, peak RSS, and\n"
    "OpenBLAS's own sgemm rate on the same products. --profile adds a per-phase breakdown.";

struct Arguments {
  std::vector<int64_t> widths{784, 256, 128, 10};  // D0, H0, H1, ..., classes
  int64_t batch = 64;                              // B
  double seconds = 4.0;
  double warmup_seconds = 1.0;
  int threads = 2;
  int64_t pool = 16;
  double sgemm_seconds = 1.5;
  bool profile = false;
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
                             {"--threads", into(a.threads)},
                             {"--pool", into(a.pool)},
                             {"--sgemm-seconds", into(a.sgemm_seconds)},
                             {"--plugin-dir", into(a.plugin_dir)}},
                            {{"--profile", &a.profile}});
  if (a.batch < 1 || a.pool < 1 || a.threads < 1)
    throw rt::UserError("--batch, --pool and --threads must be at least 1");
  return a;
}

using graft::bench::status_bytes;

// CPU time the whole machine spent busy (from /proc/stat) and this process's own (all threads),
// in seconds: their difference over a measurement is what other processes took.
struct CpuTimes {
  double machine_busy = 0.0, self = 0.0;
  static CpuTimes now() {
    CpuTimes t;
    std::ifstream stat("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    t.machine_busy = (user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    t.self = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
             1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    return t;
  }
};

// Cores' worth of CPU other processes used between `before` and now, over `seconds`.
double other_load(const CpuTimes& before, double seconds) {
  const CpuTimes after = CpuTimes::now();
  const double others = (after.machine_busy - before.machine_busy) - (after.self - before.self);
  return std::max(0.0, others / seconds);
}

// Preloaded batches: x (pool, B, D) normal, y (pool, B) int32 labels; views made once.
struct BatchPool {
  std::vector<float> x;
  std::vector<int32_t> y;
  std::vector<rt::TensorView> x_views, y_views;
  BatchPool(int64_t pool, int64_t B, int64_t D, int64_t classes)
      : x(size_t(pool * B * D)), y(size_t(pool * B)) {
    for (size_t i = 0; i < x.size(); ++i) x[i] = graft_random_normal(3, 1, i);
    for (size_t i = 0; i < y.size(); ++i)
      y[i] = std::min<int32_t>(int32_t(classes - 1),
                               int32_t(graft_random_uniform(3, 2, i) * float(classes)));
    const DLDevice cpu{kDLCPU, 0};
    for (int64_t p = 0; p < pool; ++p) {
      x_views.emplace_back(x.data() + p * B * D, cpu, B, graft_shape{1, {D}});
      y_views.emplace_back(y.data() + p * B, cpu, B, graft_shape{0, {}}, DLDataType{kDLInt, 32, 1});
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
                        {"gflops", p.flops() / p.seconds_per_call / 1e9}});
  return products;
}

// Per-phase times of the same step, driven through the model api one layer at a time. Each
// step alternates with the bare sgemm products of a step, so that both see the same machine
// load and "layer time - its sgemm time" is what graft adds around OpenBLAS.
json profile_steps(const graft_model_api& api, graft_model* model, graft_exec_ctx ctx,
                   BatchPool& data, int64_t steps, graft::bench::SgemmSteps& sgemm) {
  sgemm.run_step();
  sgemm.reset();
  const int64_t layers = api.layer_count(model);
  std::vector<double> forward(size_t(layers), 0.0), backward(size_t(layers), 0.0);
  double zero = 0, loss = 0, update = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const size_t b = size_t(s) % data.x_views.size();
    graft_step_result result{};
    result.struct_size = sizeof result;
    auto t = Clock::now();
    check(api.zero_grad(model), "zero_grad");
    zero += since(t);
    const DLTensor* activation = data.x_views[b].get();
    for (int64_t i = 0; i < layers; ++i) {
      t = Clock::now();
      check(api.forward(model, &ctx, i, i + 1, activation, &activation), "forward");
      forward[size_t(i)] += since(t);
    }
    const DLTensor* gradient = nullptr;
    t = Clock::now();
    check(api.loss(model, &ctx, activation, data.y_views[b].get(), &result, &gradient), "loss");
    loss += since(t);
    for (int64_t i = layers - 1; i >= 0; --i) {
      t = Clock::now();
      check(api.backward(model, &ctx, i, i + 1, gradient, &gradient, nullptr, nullptr), "backward");
      backward[size_t(i)] += since(t);
    }
    t = Clock::now();
    check(api.optimizer_step(model, &ctx), "optimizer_step");
    update += since(t);
    sgemm.run_step();
  }
  json out;
  const double n = double(steps);
  for (int64_t i = 0; i < layers; ++i) {
    out["forward_layer_" + std::to_string(i)] = forward[size_t(i)] / n;
    out["backward_layer_" + std::to_string(i)] = backward[size_t(i)] / n;
  }
  out["zero_grad"] = zero / n;
  out["loss"] = loss / n;
  out["optimizer_step"] = update / n;
  return json{{"seconds", out}, {"sgemm_products", products_json(sgemm.rate())}};
}

int run(const Arguments& a) {
  rt::set_cpu_threads(a.threads);
  const int64_t B = a.batch, D = a.widths.front(), classes = a.widths.back();

  BatchPool data(a.pool, B, D, classes);
  const double rss_before_model = status_bytes("VmRSS");
  graft::bench::MlpTraining training(a.widths, B, a.plugin_dir, DLDevice{kDLCPU, 0});
  rt::Model& model = training.model();
  graft_exec_ctx& ctx = training.context();
  double last_loss = 0.0, first_loss = 0.0;
  int64_t step = 0;
  auto train_step = [&] {
    const size_t b = size_t(step) % data.x_views.size();
    last_loss = training.step(*data.x_views[b].get(), *data.y_views[b].get());
    if (step == 0) first_loss = last_loss;
    ++step;
  };

  const auto warmup_start = Clock::now();
  while (step < 3 || since(warmup_start) < a.warmup_seconds) train_step();
  const int64_t warmup_steps = step;
  const CpuTimes cpu_before = CpuTimes::now();
  const auto start = Clock::now();
  while (step - warmup_steps < 5 || since(start) < a.seconds) train_step();
  const double seconds = since(start);
  const double other_cores = other_load(cpu_before, seconds);
  const int64_t timed_steps = step - warmup_steps;
  const double peak_rss = status_bytes("VmHWM");
  if (!std::isfinite(last_loss)) throw rt::Failure("the loss went non-finite during the benchmark");

  json out;
  out["framework"] = "graft";
  out["layers"] = a.widths;
  out["batch"] = B;
  out["threads"] = a.threads;
  out["blas_core"] = rt::blas_core_name();
  out["warmup_steps"] = warmup_steps;
  out["steps"] = timed_steps;
  out["seconds"] = seconds;
  out["other_load_cores"] = other_cores;
  const double samples_per_second = double(timed_steps * B) / seconds;
  out["samples_per_s"] = samples_per_second;
  out["parameters"] = model.parameter_count();
  out["gflops"] = 6.0 * double(model.parameter_count()) * samples_per_second / 1e9;
  out["first_loss"] = first_loss;
  out["last_loss"] = last_loss;
  out["peak_rss_bytes"] = peak_rss;
  out["rss_before_model_bytes"] = rss_before_model;
  out["peak_allocated_bytes"] = rt::peak_allocated_bytes();

  if (a.profile) {
    graft::bench::SgemmSteps sgemm(a.widths, B);
    out["profile"] = profile_steps(*model.api(), model.handle(), ctx, data,
                                   std::max<int64_t>(timed_steps / 2, 5), sgemm);
  }
  if (a.sgemm_seconds > 0) {
    const graft::bench::SgemmRate rate = graft::bench::measure_sgemm(a.widths, B, a.sgemm_seconds);
    out["sgemm_gflops"] = rate.gflops();
    out["sgemm_seconds_per_step"] = rate.seconds_per_step;
    out["step_seconds"] = seconds / double(timed_steps);
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
    std::cerr << "graft_bench_mlp: " << e.what() << "\n";
    return 1;
  }
}
