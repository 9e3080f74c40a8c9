// Checkpoints are layout-independent: a run saved under one strategy and world resumes under
// another with the losses of an uninterrupted `single` run (relative 1e-5: float32, the
// layouts only reassociate sums), because a checkpoint holds whole tensors gathered from
// tensor-parallel parts and pipeline stages. Each run is `mpirun -np N graft train`.
#include <cmath>
#include <fstream>
#include <iterator>

#include "checkpoint/safetensors.hpp"
#include "mpirun.hpp"
#include "run_files.hpp"
#include "test_support.hpp"
#include "tiny_gpt.hpp"

namespace fs = std::filesystem;
using graft::test::metric_events;
using graft::test::mpirun;

namespace {

constexpr double kTolerance = 1e-5;
constexpr int kHalf = 6;  // steps before the checkpoint; as many after it

// The two-pair model of test_tensor_parallel, with shuffling and dropout (so the data position
// and the RNG keys must come back) and a constant learning rate.
fs::path write_config(const fs::path& dir) {
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"r\"\nseed = 21\nsteps = " << 2 * kHalf
                      << "\nthreads = 1\nprogress = \"none\"\nlog_every = 1\noutput_dir = \""
                      << dir.string()
                      << "\"\n"
                         "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 12\n"
                         "classes = 4\nsamples = 400\ntest_samples = 50\nbatch_size = 24\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 16\n"
                         "[[model.layers]]\ntype = \"relu\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 12\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 8\nactivation = \"tanh\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 10\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.2\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                         "[checkpoint]\nevery = "
                      << kHalf << "\nkeep = 100\n";
  return file;
}

// `graft train` of the config on `ranks` ranks as run `name` under `strategy`.
void train(const fs::path& config, int ranks, const std::string& name, const std::string& strategy,
           const std::string& extra = "") {
  const auto r =
      mpirun(ranks, std::string(GRAFT_EXECUTABLE) + " train " + config.string() +
                        " --plugin-dir " GRAFT_TEST_PLUGIN_DIR " --set run.name=" + name +
                        " --set parallel.strategy=" + strategy + extra);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

std::vector<double> losses(const fs::path& run) {
  std::vector<double> out;
  for (const auto& e : metric_events(run / "metrics.jsonl", "train"))
    out.push_back(e["loss"].get<double>());
  return out;
}

bool close(double got, double want) {
  return std::fabs(got - want) <= kTolerance * std::max(1.0, std::fabs(want));
}

// Every tensor of two checkpoints (parameters and optimizer state) agrees within tolerance,
// relative to the tensor's largest value.
void check_same_tensors(const fs::path& a, const fs::path& b) {
  const auto x = graft::runtime::read_safetensors(a);
  const auto y = graft::runtime::read_safetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  // Named, not structured, bindings: doctest's CAPTURE takes them into a lambda, which
  // clang 14 (the sanitizer builds) does not allow for structured bindings.
  for (const auto& named : x.tensors) {
    const std::string& name = named.first;
    const auto& tensor = named.second;
    CAPTURE(name);
    const auto it = y.tensors.find(name);
    REQUIRE(it != y.tensors.end());
    REQUIRE(it->second.shape == tensor.shape);
    double largest = 0.0, scale = 1e-30;
    for (size_t i = 0; i < tensor.values.size(); ++i) {
      largest = std::max(largest, std::fabs(double(tensor.values[i]) - it->second.values[i]));
      scale = std::max(scale, std::fabs(double(tensor.values[i])));
    }
    CHECK(largest <= kTolerance * scale);
  }
}

// The resumed run logs steps kHalf+1 .. 2 kHalf; they must be the uninterrupted run's.
void check_resumed(const fs::path& resumed, const std::vector<double>& whole) {
  const std::vector<double> after = losses(resumed);
  REQUIRE(whole.size() == size_t(2 * kHalf));
  REQUIRE(after.size() == size_t(kHalf));
  for (int s = 0; s < kHalf; ++s) {
    CAPTURE(s + kHalf + 1);
    CHECK(close(after[size_t(s)], whole[size_t(s + kHalf)]));
  }
}

std::string resume_from(const fs::path& run) {
  return " --set checkpoint.resume=" +
         (run / "checkpoints" / ("step_" + std::to_string(kHalf) + ".safetensors")).string();
}

}  // namespace

TEST_CASE("a tensor_parallel checkpoint on 2 ranks resumes under data_parallel on 4 and single") {
  const fs::path dir = graft::test::temp_dir("dist_checkpoint_tp");
  const fs::path config = write_config(dir);
  train(config, 1, "whole", "single");
  const std::vector<double> whole = losses(dir / "whole");
  train(config, 2, "tp", "tensor_parallel", " --set run.steps=" + std::to_string(kHalf));
  // The gathered whole tensors are the ones `single` holds at that step, state included.
  const std::string step = "step_" + std::to_string(kHalf) + ".safetensors";
  check_same_tensors(dir / "whole" / "checkpoints" / step, dir / "tp" / "checkpoints" / step);
  const std::vector<double> before = losses(dir / "tp");
  REQUIRE(before.size() == size_t(kHalf));
  for (int s = 0; s < kHalf; ++s) CHECK(close(before[size_t(s)], whole[size_t(s)]));

  train(config, 4, "dp", "data_parallel", resume_from(dir / "tp"));
  check_resumed(dir / "dp", whole);
  train(config, 1, "single", "single", resume_from(dir / "tp"));
  check_resumed(dir / "single", whole);
}

TEST_CASE(
    "a pipeline checkpoint on 2 stages resumes under tensor_parallel on 4, single and "
    "pipeline") {
  const fs::path dir = graft::test::temp_dir("dist_checkpoint_pipeline");
  const fs::path config = write_config(dir);
  train(config, 1, "whole", "single");
  const std::vector<double> whole = losses(dir / "whole");
  // Each stage's parameters live only on its rank: the checkpoint fetches them.
  train(config, 2, "pipeline", "pipeline", " --set run.steps=" + std::to_string(kHalf));
  const std::string step = "step_" + std::to_string(kHalf) + ".safetensors";
  check_same_tensors(dir / "whole" / "checkpoints" / step, dir / "pipeline" / "checkpoints" / step);
  train(config, 4, "tp", "tensor_parallel", resume_from(dir / "pipeline"));
  check_resumed(dir / "tp", whole);
  train(config, 1, "single", "single", resume_from(dir / "pipeline"));
  check_resumed(dir / "single", whole);
  // Each stage keeps only its own layers' tensors of the whole checkpoint.
  train(config, 2, "again", "pipeline", resume_from(dir / "pipeline"));
  check_resumed(dir / "again", whole);
}

// The mesh: a checkpoint of data 2 x pipeline 2 x tensor 2 with ZeRO-3 (each data rank keeps
// its parts of the parameters and optimizer state; stages and tensor parts as above) holds
// single's whole tensors, and resumes under single, tensor 4, data 4 with ZeRO 1 and 2, and
// the mesh again.
TEST_CASE("a mesh checkpoint (data 2 x pipeline 2 x tensor 2, zero 3) moves between layouts") {
  const fs::path dir = graft::test::temp_dir("dist_checkpoint_mesh");
  const fs::path config = write_config(dir);
  train(config, 1, "whole", "single");
  const std::vector<double> whole = losses(dir / "whole");
  const auto mesh = [](int d, int p, int t, int z) {
    return " --set parallel.data=" + std::to_string(d) +
           " --set parallel.pipeline=" + std::to_string(p) +
           " --set parallel.tensor=" + std::to_string(t) +
           " --set parallel.zero=" + std::to_string(z);
  };
  train(config, 8, "mesh", "mesh", mesh(2, 2, 2, 3) + " --set run.steps=" + std::to_string(kHalf));
  const std::string step = "step_" + std::to_string(kHalf) + ".safetensors";
  check_same_tensors(dir / "whole" / "checkpoints" / step, dir / "mesh" / "checkpoints" / step);
  train(config, 1, "single", "single", resume_from(dir / "mesh"));
  check_resumed(dir / "single", whole);
  train(config, 4, "tp4", "mesh", mesh(1, 1, 4, 0) + resume_from(dir / "mesh"));
  check_resumed(dir / "tp4", whole);
  train(config, 4, "dp4", "mesh", mesh(4, 1, 1, 1) + resume_from(dir / "mesh"));
  check_resumed(dir / "dp4", whole);
  train(config, 4, "dp4_z2", "mesh", mesh(4, 1, 1, 2) + resume_from(dir / "mesh"));
  check_resumed(dir / "dp4_z2", whole);
  // And back: a checkpoint saved under data 4 with ZeRO-1 resumes under the mesh with ZeRO-3.
  train(config, 4, "dp4_half", "mesh",
        mesh(4, 1, 1, 1) + " --set run.steps=" + std::to_string(kHalf));
  train(config, 8, "back", "mesh", mesh(2, 2, 2, 3) + resume_from(dir / "dp4_half"));
  check_resumed(dir / "back", whole);
}

// A GPT whose blocks are split by heads (attention's fused qkv weight is split along its last
// of three axes) over 2 tensor ranks and 2 stages saves single's whole tensors and resumes
// under single and data_parallel.
TEST_CASE("a GPT checkpoint (pipeline 2 x tensor 2, split by heads) moves between layouts") {
  const fs::path dir = graft::test::temp_dir("dist_checkpoint_gpt");
  const fs::path config = graft::test::write_tiny_gpt(
      dir, "[checkpoint]\nevery = " + std::to_string(kHalf) + "\nkeep = 100\n");
  const std::string steps = " --set run.steps=" + std::to_string(2 * kHalf) +
                            " --set run.log_every=1 --set run.progress=\"none\"";
  const fs::path runs = dir / "runs";
  train(config, 1, "whole", "single", steps);
  const std::vector<double> whole = losses(runs / "whole");
  train(config, 4, "mesh", "mesh",
        " --set parallel.pipeline=2 --set parallel.tensor=2 --set run.log_every=1 --set "
        "run.progress=\"none\" --set run.steps=" +
            std::to_string(kHalf));
  const std::string step = "step_" + std::to_string(kHalf) + ".safetensors";
  check_same_tensors(runs / "whole" / "checkpoints" / step, runs / "mesh" / "checkpoints" / step);
  train(config, 1, "single", "single", steps + resume_from(runs / "mesh"));
  check_resumed(runs / "single", whole);
  train(config, 2, "dp", "data_parallel", steps + resume_from(runs / "mesh"));
  check_resumed(runs / "dp", whole);
}

// A GPT whose output projection is its token embedding's table (`tie`): over 2 stages each
// keeps a copy, and the checkpoint holds both names with one value, so single resumes it; an
// untied run's checkpoint (two values) is refused by the tied model, which says why.
TEST_CASE("a tied GPT checkpoint moves between pipeline and single; an untied one is refused") {
  const fs::path dir = graft::test::temp_dir("dist_checkpoint_tied");
  const std::string every = "[checkpoint]\nevery = " + std::to_string(kHalf) + "\nkeep = 100\n";
  const fs::path config = graft::test::write_tiny_gpt(dir, every, /*tied=*/true);
  const std::string steps = " --set run.steps=" + std::to_string(2 * kHalf) +
                            " --set run.log_every=1 --set run.progress=\"none\"";
  const fs::path runs = dir / "runs";
  train(config, 1, "whole", "single", steps);
  const std::vector<double> whole = losses(runs / "whole");
  train(config, 2, "stages", "pipeline",
        " --set run.log_every=1 --set run.progress=\"none\" --set run.steps=" +
            std::to_string(kHalf));
  const std::string step = "step_" + std::to_string(kHalf) + ".safetensors";
  check_same_tensors(runs / "whole" / "checkpoints" / step, runs / "stages" / "checkpoints" / step);
  train(config, 1, "single", "single", steps + resume_from(runs / "stages"));
  check_resumed(runs / "single", whole);

  const fs::path untied_dir = dir / "untied";
  fs::create_directories(untied_dir);
  // The same model and layout (transpose_weight), without the tie line.
  const fs::path untied = graft::test::write_tiny_gpt(untied_dir, every, true);
  std::string toml;
  {
    std::ifstream in(untied);
    toml.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t tie = toml.find("tie = ");
  REQUIRE(tie != std::string::npos);
  toml.erase(tie, toml.find('\n', tie) + 1 - tie);
  std::ofstream(untied) << toml;
  train(untied, 1, "untied", "single",
        " --set run.progress=\"none\" --set run.steps=" + std::to_string(kHalf) +
            " --set run.output_dir=\"" + runs.string() + "\"");
  auto refused = graft::test::run_graft("train " + config.string() + " --set run.name=\"r\"" +
                                        resume_from(runs / "untied"));
  INFO(refused.output);
  CHECK(refused.exit_code != 0);
  CHECK(graft::test::has(refused.output, "saved by a model without the tie"));
}
