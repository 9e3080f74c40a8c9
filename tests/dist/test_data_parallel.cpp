// data_parallel against `single` under mpirun -np 2 and 4, in process: each rank trains the
// same config alone under single (the reference) and together with the others under
// data_parallel, with dropout (masks keyed by global row) and adam, tiny gradient buckets (so
// many all-reduces overlap backward), gradient accumulation, and batches the world size does
// not divide — down to a short last batch that leaves a rank without rows.
// Equivalence: after 20 steps every step's loss and every parameter agree within a relative
// 1e-5 (float32; the ranks' partial sums only reassociate single's), and every rank holds
// bit-identical parameters. Bad layouts are clear errors.
#include <cmath>
#include <cstring>
#include <fstream>

#include "checkpoint/parameters_gather.hpp"
#include "comm/job.hpp"
#include "test_support.hpp"
#include "train/trainer.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using namespace graft::runtime;

namespace {

constexpr double kTolerance = 1e-5;

// One job per process (MPI starts once); it ends (barrier, MPI_Finalize) after the tests.
Job& job() {
  static std::unique_ptr<Job> j = [] {
    REQUIRE_MESSAGE(launched_by_mpi(), "run this test under mpirun -np N");
    return start_job(60);
  }();
  return *j;
}

// Blobs in 8 features, 4 classes; a 5-layer MLP with dropout. `extra` adds or overrides keys
// of [run], [data] and [parallel] (TOML lines after each header).
fs::path write_config(const std::string& test, const std::string& run_extra,
                      const std::string& data_extra, const std::string& parallel_extra,
                      const std::string& layers_extra = "") {
  const fs::path dir = graft::test::temp_dir(test + "_r" + std::to_string(job().world().rank()));
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"r\"\nseed = 5\nsteps = 20\nthreads = 1\n"
                         "progress = \"none\"\noutput_dir = \""
                      << (dir / "runs").string() << "\"\n"
                      << run_extra
                      << "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 8\n"
                         "classes = 4\ntest_samples = 70\n"
                      << data_extra
                      << "[[model.layers]]\ntype = \"linear\"\nunits = 24\nactivation = \"relu\"\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.2\n"
                      << layers_extra
                      << "[[model.layers]]\ntype = \"linear\"\nunits = 16\n"
                         "[[model.layers]]\ntype = \"tanh\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                         "[checkpoint]\nenabled = false\n"
                         "[parallel]\nstrategy = \"data_parallel\"\n"
                      << parallel_extra;
  return file;
}

struct Trained {
  std::vector<double> losses;
  std::vector<float> parameters;
  EvalSummary eval;
  int32_t world = 1;
};

// Trains the config: under single alone on this rank (no job), or under its own strategy with
// the whole job. Only rank 0 of the job writes files.
Trained run_training(const fs::path& config, bool single) {
  std::vector<std::string> overrides;
  if (single) overrides = {"parallel.strategy=single", "run.name=single"};
  Config c = load_config(config, overrides);
  if (single) c.root["parallel"].as_table()->erase("bucket_mb");
  SessionOptions o;
  o.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
  if (!single) o.job = &job();
  o.write_outputs = !single && job().world().rank() == 0;
  Session session(std::move(c), o);
  Trained t;
  t.world = session.world;
  graft::runtime::train(session, [&](int64_t, double loss) { t.losses.push_back(loss); });
  t.eval = evaluate(session, *session.test_set);
  const float* p = session.model->parameter_data();
  t.parameters.assign(p, p + session.model->parameter_count());
  return t;
}

// Relative differences as graft verify measures them (largest over steps; over the parameter
// vector, largest difference over largest value).
void check_equivalent(const Trained& dp, const Trained& single) {
  REQUIRE(dp.world == job().world().size());
  REQUIRE(dp.losses.size() == single.losses.size());
  REQUIRE(dp.losses.size() == 20);
  for (size_t s = 0; s < dp.losses.size(); ++s) {
    CAPTURE(s);
    CHECK(std::fabs(dp.losses[s] - single.losses[s]) <= kTolerance * std::fabs(single.losses[s]));
  }
  CHECK(single.losses.back() < single.losses.front());  // it learned: the test is not vacuous
  REQUIRE(dp.parameters.size() == single.parameters.size());
  double largest = 0, scale = 0;
  for (size_t i = 0; i < dp.parameters.size(); ++i) {
    largest = std::max(largest, std::fabs(double(dp.parameters[i]) - single.parameters[i]));
    scale = std::max(scale, std::fabs(double(single.parameters[i])));
  }
  CHECK(largest <= kTolerance * scale);
  double loss_diff = 0;
  for (size_t s = 0; s < dp.losses.size(); ++s)
    loss_diff = std::max(loss_diff, std::fabs(dp.losses[s] - single.losses[s]) / single.losses[s]);
  if (job().world().rank() == 0)
    MESSAGE("relative differences after 20 steps: loss " << loss_diff << ", parameters "
                                                         << largest / scale);
  // Every rank returns the whole test split's sums.
  CHECK(dp.eval.rows == 70);
  CHECK(std::fabs(dp.eval.loss - single.eval.loss) <= kTolerance * single.eval.loss);
  REQUIRE(dp.eval.metrics.size() == 1);
  CHECK(dp.eval.metrics[0].second == doctest::Approx(single.eval.metrics[0].second).epsilon(1e-9));

  // The same update on every rank: rank 0's parameters, bit for bit.
  std::vector<float> rank0 = dp.parameters;
  int64_t n = int64_t(rank0.size());
  DLTensor view{};
  view.data = rank0.data();
  view.device = DLDevice{kDLCPU, 0};
  view.ndim = 1;
  view.dtype = DLDataType{kDLFloat, 32, 1};
  view.shape = &n;
  job().world().broadcast(view, 0, "rank 0's parameters");
  CHECK(std::memcmp(rank0.data(), dp.parameters.data(), rank0.size() * sizeof(float)) == 0);
}

// The message of the error a session of this config stops with (every rank sees it).
std::string session_error(const fs::path& config) {
  SessionOptions o;
  o.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
  o.job = &job();
  o.write_outputs = false;
  try {
    Session session(load_config(config, {}), o);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("data_parallel trains as single: adam, dropout, many small buckets") {
  // 0.0002 MiB = 210 bytes: buckets [4, 5), [2, 4) and [0, 2) (the parameterless layers join
  // the next bucket down), so two all-reduces overlap the backward of the layers below them.
  const fs::path config =
      write_config("dp_buckets", "", "samples = 640\nbatch_size = 32\n", "bucket_mb = 0.0002\n");
  check_equivalent(run_training(config, false), run_training(config, true));
}

TEST_CASE("data_parallel trains as single: one bucket, a batch the world does not divide") {
  // 30 rows: 15 + 15 on 2 ranks, 7 + 8 + 7 + 8 on 4; 500 samples end each epoch with 20.
  const fs::path config = write_config("dp_uneven", "", "samples = 500\nbatch_size = 30\n", "");
  check_equivalent(run_training(config, false), run_training(config, true));
}

TEST_CASE("data_parallel with gradient accumulation, down to a rank without rows") {
  // Micro-batches of each rank's rows; 20 steps of 30 rows cross an epoch of 483 samples,
  // whose last batch has 3 rows: on 4 ranks rank 0 has none and still joins every bucket.
  const fs::path config = write_config("dp_accumulate", "gradient_accumulation = 3\n",
                                       "samples = 483\nbatch_size = 30\n", "bucket_mb = 0.001\n");
  check_equivalent(run_training(config, false), run_training(config, true));
}

TEST_CASE("a batch smaller than the world, and batch_norm, are clear errors") {
  const int n = job().world().size();
  const fs::path small = write_config(
      "dp_small_batch", "", "samples = 64\nbatch_size = " + std::to_string(n - 1) + "\n", "");
  const std::string message = session_error(small);
  CHECK(message.find("[data] batch_size = " + std::to_string(n - 1)) != std::string::npos);
  CHECK(message.find("[parallel]") != std::string::npos);
  CHECK(message.find("at least " + std::to_string(n)) != std::string::npos);

  const std::string bn_layer = "[[model.layers]]\ntype = \"batch_norm\"\n";
  const fs::path bn =
      write_config("dp_batch_norm", "", "samples = 64\nbatch_size = 16\n", "", bn_layer);
  const std::string refused = session_error(bn);
  CHECK(refused.find("batch_norm") != std::string::npos);
  CHECK(refused.find("allow_local_batch_norm = true") != std::string::npos);
  const fs::path allowed =
      write_config("dp_batch_norm_allowed", "", "samples = 64\nbatch_size = 16\n",
                   "allow_local_batch_norm = true\n", bn_layer);
  CHECK(session_error(allowed).empty());
}
