// tensor_parallel against `single` under mpirun -np 2 and 4, in process: each rank trains the
// same config alone under single (the reference) and together with the others under
// tensor_parallel. The model has two Megatron pairs (linear | relu, dropout on the parts |
// linear, and linear with a fused tanh | linear) and replicated layers around them (dropout, a
// last linear), with adam,
// gradient clipping (the norm summed over parts) and gradient accumulation.
// Equivalence: after 16 steps every step's loss and every whole parameter (gathered from the
// parts) agree within a relative 1e-5 (float32; the parts only reassociate single's sums), and
// every rank holds the same whole parameters. A world that does not divide a pair is an error.
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
constexpr int64_t kSteps = 16;

Job& job() {
  static std::unique_ptr<Job> j = [] {
    REQUIRE_MESSAGE(launched_by_mpi(), "run this test under mpirun -np N");
    return start_job(60);
  }();
  return *j;
}

// Blobs in 12 features, 4 classes. Layers 0 | 1, 2 | 3 and 4 | 5 are the pairs; `hidden` is the
// first pair's width (a multiple of 4 splits on 2 and 4 ranks).
fs::path write_config(const std::string& test, const std::string& run_extra, int hidden = 16) {
  const fs::path dir = graft::test::temp_dir(test + "_r" + std::to_string(job().world().rank()));
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"r\"\nseed = 9\nsteps = " << kSteps
                      << "\nthreads = 1\nprogress = \"none\"\noutput_dir = \""
                      << (dir / "runs").string() << "\"\n"
                      << run_extra
                      << "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 12\n"
                         "classes = 4\nsamples = 400\ntest_samples = 50\nbatch_size = 24\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = "
                      << hidden
                      << "\n"
                         "[[model.layers]]\ntype = \"relu\"\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.3\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 12\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 8\nactivation = \"tanh\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 10\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.2\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                         "[checkpoint]\nenabled = false\n"
                         "[parallel]\nstrategy = \"tensor_parallel\"\n";
  return file;
}

struct Trained {
  std::vector<double> losses;
  std::vector<float> whole;  // every parameter, whole, in the model's order
  std::vector<int32_t> shards;
  EvalSummary eval;
};

Trained run_training(const fs::path& config, bool single) {
  std::vector<std::string> overrides;
  if (single) overrides = {"parallel.strategy=single", "run.name=single"};
  SessionOptions o;
  o.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
  if (!single) o.job = &job();
  o.write_outputs = false;
  Session session(load_config(config, overrides), o);
  Trained t;
  train(session, [&](int64_t, double loss) { t.losses.push_back(loss); });
  t.eval = evaluate(session, *session.test_set);
  for (int64_t i = 0; i < session.model->layer_count(); ++i)
    t.shards.push_back(session.model->layer_shard(i));
  for (const WholeTensor& w : gather_whole_parameters(*session.model, session.comm(), false))
    t.whole.insert(t.whole.end(), w.values.begin(), w.values.end());
  return t;
}

void check_equivalent(const Trained& tp, const Trained& single) {
  const std::vector<int32_t> expected = {GRAFT_SHARD_COLUMN, GRAFT_SHARD_NONE,   GRAFT_SHARD_PART,
                                         GRAFT_SHARD_ROW,    GRAFT_SHARD_COLUMN, GRAFT_SHARD_ROW,
                                         GRAFT_SHARD_NONE,   GRAFT_SHARD_NONE};
  CHECK(tp.shards == expected);
  REQUIRE(tp.losses.size() == size_t(kSteps));
  REQUIRE(single.losses.size() == size_t(kSteps));
  for (size_t s = 0; s < tp.losses.size(); ++s) {
    CAPTURE(s);
    CHECK(std::fabs(tp.losses[s] - single.losses[s]) <= kTolerance * std::fabs(single.losses[s]));
  }
  CHECK(single.losses.back() < single.losses.front());  // it learned: the test is not vacuous
  REQUIRE(tp.whole.size() == single.whole.size());
  double largest = 0, scale = 0;
  for (size_t i = 0; i < tp.whole.size(); ++i) {
    largest = std::max(largest, std::fabs(double(tp.whole[i]) - single.whole[i]));
    scale = std::max(scale, std::fabs(double(single.whole[i])));
  }
  CHECK(largest <= kTolerance * scale);
  CHECK(tp.eval.rows == 50);
  CHECK(std::fabs(tp.eval.loss - single.eval.loss) <= kTolerance * single.eval.loss);

  // Every rank gathered the same whole model: rank 0's, bit for bit.
  std::vector<float> rank0 = tp.whole;
  int64_t n = int64_t(rank0.size());
  DLTensor view{};
  view.data = rank0.data();
  view.device = DLDevice{kDLCPU, 0};
  view.ndim = 1;
  view.dtype = DLDataType{kDLFloat, 32, 1};
  view.shape = &n;
  job().world().broadcast(view, 0, "rank 0's whole parameters");
  CHECK(std::memcmp(rank0.data(), tp.whole.data(), rank0.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("tensor_parallel trains as single: two pairs, adam, dropout inside and outside") {
  const fs::path config = write_config("tp_plain", "");
  check_equivalent(run_training(config, false), run_training(config, true));
}

TEST_CASE("tensor_parallel trains as single with gradient clipping and accumulation") {
  // A clip low enough to act on every step: the norm must be the whole model's.
  const fs::path config =
      write_config("tp_clip", "clip_grad_norm = 0.05\ngradient_accumulation = 3\n");
  check_equivalent(run_training(config, false), run_training(config, true));
}

TEST_CASE("a world that does not divide a pair's features is an error on every rank") {
  const int n = job().world().size();
  const fs::path config = write_config("tp_uneven", "", 2 * n + 1);
  SessionOptions o;
  o.plugin_dirs = {GRAFT_TEST_PLUGIN_DIR};
  o.job = &job();
  o.write_outputs = false;
  std::string message;
  try {
    Session session(load_config(config, {}), o);
  } catch (const UserError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("[[model.layers]] #0 (linear)") != std::string::npos);
  CHECK(message.find("units") != std::string::npos);
  CHECK(message.find(std::to_string(2 * n + 1)) != std::string::npos);
  CHECK(message.find("[parallel]") != std::string::npos);
}
