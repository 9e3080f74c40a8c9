// The data-parallel benchmark, one process of a job (run_dp_bench.sh starts it): `--mode train`
// times training steps of an MLP under a strategy, through a session as `graft train` builds it,
// on preloaded random batches (each rank holding only its rows); `--mode allreduce` times
// graft's all-reduce (the C table strategies call) against a plain MPI_Allreduce of the same
// bytes. Rank 0 prints one JSON line.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "comm/job.hpp"
#include "graft/random.h"
#include "mlp_setup.hpp"
#include "model/tensor_view.hpp"
#include "session/session.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage =
    "usage: graft_bench_dp --mode train [--strategy single|data_parallel] [--threads 2]\n"
    "                      [--layers 784,1024,1024,10] [--batch 256] [--bucket-mb 25]\n"
    "                      [--seconds 4] [--plugin-dir DIR]\n"
    "       graft_bench_dp --mode allreduce [--floats N] [--seconds 2] [--repeats 3]\n"
    "train: an MLP (linear+relu ..., linear; cross_entropy; sgd momentum 0.9) under the strategy\n"
    "on this job's ranks; prints samples/s of the whole job. allreduce: N floats (default: the\n"
    "gradients of --layers) summed by graft's all_reduce, by its all_reduce_start + wait, and by\n"
    "MPI_Allreduce, alternated --repeats times, best of each; prints the bandwidths.";

struct Arguments {
  std::string mode = "train", strategy = "single";
  std::vector<int64_t> widths{784, 1024, 1024, 10};
  int64_t batch = 256, floats = 0;
  int threads = 2, repeats = 3;
  double seconds = 4.0, bucket_mb = 25.0;
  std::string plugin_dir = GRAFT_BENCH_PLUGIN_DIR;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  using graft::bench::into;
  graft::bench::parse_flags(argc, argv, kUsage,
                            {{"--mode", into(a.mode)},
                             {"--strategy", into(a.strategy)},
                             {"--layers", into(a.widths)},
                             {"--batch", into(a.batch)},
                             {"--floats", into(a.floats)},
                             {"--threads", into(a.threads)},
                             {"--repeats", into(a.repeats)},
                             {"--seconds", into(a.seconds)},
                             {"--bucket-mb", into(a.bucket_mb)},
                             {"--plugin-dir", into(a.plugin_dir)}});
  if (a.mode != "train" && a.mode != "allreduce")
    throw rt::UserError("--mode is train or allreduce\n" + std::string(kUsage));
  if (a.widths.size() < 2 || a.batch < 1 || a.threads < 1 || a.repeats < 1)
    throw rt::UserError("--layers needs input,classes; --batch, --threads, --repeats >= 1");
  return a;
}

int64_t parameter_count(const std::vector<int64_t>& widths) {
  int64_t n = 0;
  for (size_t i = 0; i + 1 < widths.size(); ++i) n += widths[i] * widths[i + 1] + widths[i + 1];
  return n;
}

// Runs `step` (collective on every rank) enough times to last about `seconds`: every rank
// must run it equally often, so a fixed calibration of 3 steps decides, by rank 0's clock.
template <class Step>
double seconds_per_step(rt::Communicator& world, double seconds, Step&& step) {
  for (int i = 0; i < 2; ++i) step();  // warm-up: first-touch, OpenBLAS and MPI set-up
  world.barrier("calibration");
  auto start = Clock::now();
  for (int i = 0; i < 3; ++i) step();
  double per_step = std::chrono::duration<double>(Clock::now() - start).count() / 3.0;
  int64_t one = 1;
  DLTensor view{};
  view.data = &per_step;
  view.device = DLDevice{kDLCPU, 0};
  view.ndim = 1;
  view.dtype = DLDataType{kDLFloat, 64, 1};
  view.shape = &one;
  world.broadcast(view, 0, "calibration");
  const int64_t steps = std::max<int64_t>(3, int64_t(seconds / std::max(per_step, 1e-9)));
  world.barrier("timed run");
  start = Clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  world.barrier("timed run end");
  return std::chrono::duration<double>(Clock::now() - start).count() / double(steps);
}

nlohmann::json train(const Arguments& a, rt::Job& job) {
  rt::Communicator& world = job.world();
  const int rank = world.rank();
  char folder_template[] = "/tmp/graft_bench_dp_XXXXXX";
  const std::string folder = mkdtemp(folder_template);
  const std::string file = folder + "/bench.toml";
  {
    std::ofstream config(file);
    config << "[run]\nname = \"bench\"\nseed = 1\nsteps = 1\nthreads = " << a.threads
           << "\nprogress = \"none\"\noutput_dir = \"" << folder << "\"\n"
           << "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = " << a.widths[0]
           << "\nclasses = " << a.widths.back() << "\nsamples = " << a.batch
           << "\ntest_samples = 1\nbatch_size = " << a.batch << "\n";
    for (size_t i = 1; i < a.widths.size(); ++i)
      config << "[[model.layers]]\ntype = \"linear\"\nunits = " << a.widths[i] << "\n"
             << (i + 1 < a.widths.size() ? "activation = \"relu\"\n" : "");
    config << "[loss]\ntype = \"cross_entropy\"\n[optimizer]\ntype = \"sgd\"\nlr = 0.01\n"
           << "momentum = 0.9\n[parallel]\nstrategy = \"" << a.strategy << "\"\ntimeout_s = 60\n"
           << (a.strategy == "data_parallel" ? "bucket_mb = " + std::to_string(a.bucket_mb) + "\n"
                                             : "");
  }
  rt::SessionOptions options;
  options.plugin_dirs = {a.plugin_dir};
  options.open_test_split = false;
  options.write_outputs = false;
  options.job = &job;
  rt::Session session(rt::load_config(file, {}), options);
  std::filesystem::remove_all(folder);

  // This rank's rows of a few random batches, read by the step in turn.
  const auto [begin, end] = session.strategy->batch_rows(a.batch, /*training=*/true);
  const int64_t rows = end - begin, features = a.widths[0];
  constexpr int kPool = 4;
  std::vector<std::vector<float>> xs(kPool, std::vector<float>(size_t(rows * features)));
  std::vector<std::vector<int32_t>> ys(kPool, std::vector<int32_t>(size_t(rows)));
  for (int p = 0; p < kPool; ++p) {
    for (size_t i = 0; i < xs[p].size(); ++i)
      xs[p][i] = graft_random_uniform(7, uint64_t(p), uint64_t(begin * features) + i) - 0.5f;
    for (int64_t r = 0; r < rows; ++r)
      ys[p][size_t(r)] = int32_t((begin + r + p) % a.widths.back());
  }
  graft_exec_ctx ctx = session.context(true);
  ctx.global_batch = a.batch;
  ctx.row_offset = begin;
  int step = 0;
  auto one_step = [&] {
    const int p = step % kPool;
    rt::TensorView x(xs[size_t(p)].data(), DLDevice{kDLCPU, 0}, rows, graft_shape{1, {features}});
    rt::TensorView y(ys[size_t(p)].data(), DLDevice{kDLCPU, 0}, rows, graft_shape{0, {}},
                     DLDataType{kDLInt, 32, 1});
    ctx.step = step++;
    session.strategy->train_step(*session.model, ctx, *x.get(), *y.get());
  };
  const double per_step = seconds_per_step(world, a.seconds, one_step);
  std::ostringstream layers;
  for (size_t i = 0; i < a.widths.size(); ++i) layers << (i ? "," : "") << a.widths[i];
  (void)rank;
  return {{"event", "train"},
          {"strategy", a.strategy},
          {"ranks", world.size()},
          {"threads", a.threads},
          {"layers", layers.str()},
          {"batch", a.batch},
          {"bucket_mb", a.bucket_mb},
          {"step_ms", per_step * 1e3},
          {"samples_per_s", double(a.batch) / per_step}};
}

nlohmann::json allreduce(const Arguments& a, rt::Job& job) {
  rt::Communicator& world = job.world();
  const int64_t n = a.floats > 0 ? a.floats : parameter_count(a.widths);
  // Zeros stay zeros however often they are summed, so every pass adds the same numbers.
  std::vector<float> values(size_t(n), 0.0f);
  rt::TensorView tensor(values.data(), DLDevice{kDLCPU, 0}, graft_shape{1, {n}});
  const graft_comm_api* api = rt::comm_api();
  graft_comm* comm = rt::comm_handle(world);
  auto graft_blocking = [&] {
    rt::throw_if_failed(api->all_reduce(comm, tensor.get(), GRAFT_REDUCE_SUM, "bench"),
                        "all_reduce");
  };
  auto graft_started = [&] {
    graft_request* request = nullptr;
    rt::throw_if_failed(
        api->all_reduce_start(comm, tensor.get(), GRAFT_REDUCE_SUM, "bench", &request),
        "all_reduce_start");
    rt::throw_if_failed(api->wait(comm, request), "wait");
  };
  auto plain_mpi = [&] {
    if (MPI_Allreduce(MPI_IN_PLACE, values.data(), int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
      throw rt::Failure("MPI_Allreduce failed");
  };
  // Alternated, best of each: other processes only ever slow a run down.
  double best_graft = 1e30, best_started = 1e30, best_mpi = 1e30;
  for (int r = 0; r < a.repeats; ++r) {
    best_graft = std::min(best_graft, seconds_per_step(world, a.seconds, graft_blocking));
    best_started = std::min(best_started, seconds_per_step(world, a.seconds, graft_started));
    best_mpi = std::min(best_mpi, seconds_per_step(world, a.seconds, plain_mpi));
  }
  const double bytes = double(n) * sizeof(float);
  return {{"event", "allreduce"},
          {"ranks", world.size()},
          {"bytes", bytes},
          {"graft_ms", best_graft * 1e3},
          {"graft_start_wait_ms", best_started * 1e3},
          {"mpi_ms", best_mpi * 1e3},
          {"graft_gb_per_s", bytes / best_graft / 1e9},
          {"graft_start_wait_gb_per_s", bytes / best_started / 1e9},
          {"mpi_gb_per_s", bytes / best_mpi / 1e9}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments a = parse(argc, argv);
    std::unique_ptr<rt::Job> job = rt::start_job(120);
    if (a.mode == "allreduce") {
      int initialized = 0;
      MPI_Initialized(&initialized);
      if (!initialized) throw rt::UserError("--mode allreduce runs under mpirun -np 2 (or more)");
    }
    const nlohmann::json line = a.mode == "train" ? train(a, *job) : allreduce(a, *job);
    if (job->world().rank() == 0) std::cout << line.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft_bench_dp: %s\n", e.what());
    return 1;
  }
}
