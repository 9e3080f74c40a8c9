// Splitting a model into pipeline stages divides its memory: on 2 stages of a 784-4096-4096-10
// MLP with adam, stages = [0, 0, 1, 2], each rank plans parameters, gradients and optimizer
// state for its own layers only (rank 0 about 16% of the model, rank 1 the rest), and the two
// still train together.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

#include "comm/job.hpp"
#include "graft/random.h"
#include "model/tensor_view.hpp"
#include "session/session.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace graft::runtime;

TEST_CASE("a pipeline stage plans and holds only its own layers' parameters") {
  REQUIRE_MESSAGE(launched_by_mpi(), "run this test under mpirun -np 2");
  std::unique_ptr<Job> job = start_job(120);
  const int rank = job->world().rank();
  REQUIRE(job->world().size() == 2);
  constexpr int64_t kBatch = 64, kFeatures = 784, kHidden = 4096, kClasses = 10;
  const fs::path dir = graft::test::temp_dir("stage_memory_r" + std::to_string(rank));
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"m\"\nseed = 3\nsteps = 1\nthreads = 1\n"
                         "progress = \"none\"\noutput_dir = \""
                      << (dir / "runs").string()
                      << "\"\n[data]\nreader = \"synthetic\"\nkind = \"blobs\"\n"
                         "features = 784\nclasses = 10\nsamples = 64\ntest_samples = 4\n"
                         "batch_size = 64\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4096\n"
                         "activation = \"relu\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4096\n"
                         "activation = \"relu\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 10\n"
                         "[loss]\ntype = \"cross_entropy\"\n[optimizer]\ntype = \"adam\"\n"
                         "[parallel]\nstrategy = \"pipeline\"\nstages = [0, 0, 1, 2]\n";
  SessionOptions options;
  options.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
  options.open_test_split = false;
  options.write_outputs = false;
  options.job = job.get();
  Session session(load_config(file, {}), options);
  const Model& model = *session.model;

  const size_t first = kFeatures * kHidden + kHidden;
  const size_t rest = kHidden * kHidden + kHidden + kHidden * kClasses + kClasses;
  const size_t mine = rank == 0 ? first : rest;
  CHECK(double(first) / double(first + rest) == doctest::Approx(0.16).epsilon(0.01));
  CHECK(model.parameter_count() == mine);
  const Model::MemorySplit split = model.planned_memory();
  CHECK(split.parameters == mine * sizeof(float));
  CHECK(split.gradients == mine * sizeof(float));
  CHECK(split.optimizer_state == 2 * mine * sizeof(float));  // adam's two moments
  CHECK(model.planned_fixed_bytes() == 4 * mine * sizeof(float));

  // The two stages train together: one step, the loss on the last stage.
  const auto [begin, end] = session.strategy->batch_rows(kBatch, /*training=*/true);
  const int64_t rows = std::max<int64_t>(end - begin, 1);
  std::vector<float> x(size_t(rows * kFeatures));
  std::vector<int32_t> y(static_cast<size_t>(rows));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = graft_random_uniform(2, 0, uint64_t(begin * kFeatures) + i) - 0.5f;
  for (size_t r = 0; r < y.size(); ++r) y[r] = int32_t((begin + int64_t(r)) % kClasses);
  TensorView xv(x.data(), DLDevice{kDLCPU, 0}, end - begin, graft_shape{1, {kFeatures}});
  TensorView yv(y.data(), DLDevice{kDLCPU, 0}, end - begin, graft_shape{0, {}},
                DLDataType{kDLInt, 32, 1});
  graft_exec_ctx ctx = session.context(true);
  ctx.global_batch = kBatch;
  ctx.row_offset = begin;
  const graft_step_result result =
      session.strategy->train_step(*session.model, ctx, *xv.get(), *yv.get());
  CHECK(result.rows > 0);
  CHECK(std::isfinite(result.loss_sum));
  job.reset();
}
