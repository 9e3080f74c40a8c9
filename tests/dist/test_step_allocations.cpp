// A training step of each parallel strategy allocates no memory, as a single one does
// (tests/unit/test_model.cpp): after two warm-up steps, data_parallel (gradient buckets reduced
// on the MPI reduce thread), pipeline (a send and a receive per micro-batch) and tensor_parallel
// (a pair with dropout on the parts) make no C++ allocation on any rank (operator new is counted
// for this executable; MPI's own C allocations are not graft's to plan).
#include <fstream>
#include <vector>

#include "comm/job.hpp"
#include "count_allocations.hpp"
#include "graft/random.h"
#include "model/tensor_view.hpp"
#include "session/session.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

using graft::test::g_allocations;

namespace fs = std::filesystem;
using namespace graft::runtime;

TEST_CASE("parallel training steps allocate nothing once warmed up") {
  REQUIRE_MESSAGE(launched_by_mpi(), "run this test under mpirun -np N");
  std::unique_ptr<Job> job = start_job(60);
  const int rank = job->world().rank();
  constexpr int64_t kBatch = 64, kFeatures = 32;
  for (const char* strategy_name : {"data_parallel", "pipeline", "tensor_parallel"}) {
    const std::string name = strategy_name;
    CAPTURE(name);
    const fs::path dir = graft::test::temp_dir(std::string("allocations_") + strategy_name + "_r" +
                                               std::to_string(rank));
    const fs::path file = dir / "config.toml";
    std::ofstream(file) << "[run]\nname = \"a\"\nseed = 3\nsteps = 1\nthreads = 1\n"
                           "progress = \"none\"\noutput_dir = \""
                        << (dir / "runs").string()
                        << "\"\n[data]\nreader = \"synthetic\"\nkind = \"blobs\"\n"
                           "features = 32\nclasses = 4\nsamples = 64\ntest_samples = 4\n"
                           "batch_size = 64\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 48\n"
                           "[[model.layers]]\ntype = \"relu\"\n"
                           "[[model.layers]]\ntype = \"dropout\"\np = 0.1\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                           "[loss]\ntype = \"cross_entropy\"\n[optimizer]\ntype = \"adam\"\n"
                           "[parallel]\nstrategy = \""
                        << strategy_name << "\"\n"
                        << (std::string(strategy_name) == "data_parallel"
                                ? "bucket_mb = 0.001\n"  // a bucket per layer: several in flight
                                : "");
    SessionOptions options;
    options.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
    options.open_test_split = false;
    options.write_outputs = false;
    options.job = job.get();
    Session session(load_config(file, {}), options);
    const auto [begin, end] = session.strategy->batch_rows(kBatch, /*training=*/true);
    const int64_t rows = end - begin;
    std::vector<float> x(static_cast<size_t>(std::max<int64_t>(rows, 1) * kFeatures));
    std::vector<int32_t> y(static_cast<size_t>(std::max<int64_t>(rows, 1)));
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = graft_random_uniform(2, 0, uint64_t(begin * kFeatures) + i) - 0.5f;
    for (size_t r = 0; r < y.size(); ++r) y[r] = int32_t((begin + int64_t(r)) % 4);
    TensorView xv(x.data(), DLDevice{kDLCPU, 0}, rows, graft_shape{1, {kFeatures}});
    TensorView yv(y.data(), DLDevice{kDLCPU, 0}, rows, graft_shape{0, {}},
                  DLDataType{kDLInt, 32, 1});
    graft_exec_ctx ctx = session.context(true);
    ctx.global_batch = kBatch;
    ctx.row_offset = begin;
    auto step = [&](int64_t s) {
      ctx.step = s;
      const graft_step_result result =
          session.strategy->train_step(*session.model, ctx, *xv.get(), *yv.get());
      return result.loss_sum / double(result.rows);
    };
    const double first = step(0);
    step(1);  // warm-up: OpenBLAS's buffers, the request free lists
    const long before = g_allocations.load();
    double last = first;
    for (int64_t s = 2; s < 30; ++s) last = step(s);
    CHECK(g_allocations.load() - before == 0);
    CHECK(last < first);  // it trained
  }
  job.reset();
}
