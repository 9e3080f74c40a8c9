// The pipeline against `single` under mpirun: 2 and 4 stages, gpipe and 1f1b, balanced and
// explicit stages, with dropout (masks keyed by global row) and adam (state per parameter).
// Equivalence: after 12 steps every logged loss, the test evaluation and every parameter of the
// final checkpoint agree within a relative 1e-5 (float32). A bad [parallel] table is a clear
// error (exit 2) printed by every rank.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "checkpoint/safetensors.hpp"
#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::metric_events;

namespace {

struct Run {
  int exit_code;
  std::string output;
  fs::path folder;
};

// A blobs task and a 6-layer MLP: linear | relu | dropout | linear | relu | linear.
fs::path write_config(const fs::path& dir) {
  const fs::path file = dir / "pipeline_equivalence.toml";
  std::ofstream(file) << "[run]\nname = \"r\"\nseed = 11\nsteps = 12\nlog_every = 1\n"
                         "eval_every = 12\nthreads = 1\nprogress = \"none\"\n"
                         "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 8\n"
                         "classes = 4\nsamples = 512\ntest_samples = 64\nbatch_size = 32\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                         "[[model.layers]]\ntype = \"relu\"\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.1\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                         "[[model.layers]]\ntype = \"relu\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n";
  return file;
}

// Runs a shell command; its exit code and combined output.
graft::test::CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

// `graft train` of the config with overrides, under `mpirun -np ranks` when ranks > 0, its
// runs under `out`; the folder is of the run named "r".
Run train(const fs::path& config, const fs::path& out, int ranks, const std::string& sets) {
  const std::string arguments =
      "train " + config.string() + " --set run.output_dir=" + out.string() + " " + sets;
  graft::test::CommandResult r =
      ranks > 0 ? run_command(std::string(GRAFT_MPIEXEC) + " " + GRAFT_MPIEXEC_FLAGS + " -np " +
                              std::to_string(ranks) + " " + GRAFT_EXECUTABLE + " " + arguments)
                : graft::test::run_graft(arguments);
  return {r.exit_code, r.output, out / "r"};
}

double relative(double a, double b) {
  return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-12});
}

// Every train loss, the last evaluation and every tensor of the final checkpoint agree.
void check_same(const Run& reference, const Run& run, double tolerance) {
  const auto a = metric_events(reference.folder / "metrics.jsonl", "train");
  const auto b = metric_events(run.folder / "metrics.jsonl", "train");
  REQUIRE(a.size() == 12);
  REQUIRE(b.size() == a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(relative(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) <= tolerance);
  }
  const auto ea = metric_events(reference.folder / "metrics.jsonl", "eval");
  const auto eb = metric_events(run.folder / "metrics.jsonl", "eval");
  REQUIRE(ea.size() == 1);
  REQUIRE(eb.size() == 1);
  CHECK(relative(ea[0]["loss"].get<double>(), eb[0]["loss"].get<double>()) <= tolerance);
  CHECK(ea[0]["accuracy"].get<double>() == eb[0]["accuracy"].get<double>());

  const fs::path last = fs::path("checkpoints") / "step_12.safetensors";
  const auto pa = graft::runtime::read_safetensors(reference.folder / last);
  const auto pb = graft::runtime::read_safetensors(run.folder / last);
  REQUIRE(pa.tensors.size() == pb.tensors.size());
  int compared = 0;
  // Named, not structured, bindings: doctest's CAPTURE takes them into a lambda, which
  // clang 14 (the sanitizer builds) does not allow for structured bindings.
  for (const auto& named : pa.tensors) {
    const std::string& name = named.first;
    const auto& tensor = named.second;
    CAPTURE(name);
    REQUIRE(pb.tensors.count(name) == 1);
    const auto& other = pb.tensors.at(name);
    REQUIRE(other.shape == tensor.shape);
    // Relative to the tensor's largest magnitude: an element near zero has no scale of its own.
    double largest = 0.0, worst = 0.0;
    for (size_t k = 0; k < tensor.values.size(); ++k) {
      largest = std::max(largest, double(std::fabs(tensor.values[k])));
      worst = std::max(worst, double(std::fabs(tensor.values[k] - other.values[k])));
    }
    CHECK(worst <= tolerance * std::max(largest, 1e-12));
    ++compared;
  }
  CHECK(compared >= 6);  // 3 linears x (weight, bias), plus any optimizer state
}

// The run's strategy events: one per epoch end, idle per stage in [0, 1] and the prediction.
void check_reports(const Run& run, int stages, int micro_batches) {
  const auto events = metric_events(run.folder / "metrics.jsonl", "strategy");
  REQUIRE(!events.empty());
  const auto& e = events.back();
  CHECK(e["strategy"] == "pipeline");
  for (int s = 0; s < stages; ++s) {
    const std::string key = "idle_stage" + std::to_string(s);
    REQUIRE(e.contains(key));
    CHECK(e[key].get<double>() >= 0.0);
    CHECK(e[key].get<double>() <= 1.0);
  }
  CHECK(e["predicted_bubble"].get<double>() ==
        doctest::Approx(double(stages - 1) / double(micro_batches + stages - 1)));
  CHECK(run.output.find("pipeline ") != std::string::npos);  // the line on the console
}

}  // namespace

TEST_CASE("pipeline on 2 and 4 stages, gpipe and 1f1b, trains as single does") {
  const fs::path dir = graft::test::temp_dir("dist_pipeline_equivalence");
  const fs::path config = write_config(dir);
  struct Case {
    int stages;
    const char* schedule;
    int micro;
    std::string extra;  // explicit stages
    std::string both;   // for the reference too
  };
  const Case cases[] = {
      {2, "1f1b", 4, ""},
      {2, "gpipe", 3, "--set parallel.stages=[0,2,3,5]"},  // 32 rows: 11, 11, 10
      {4, "1f1b", 8, ""},
      // Stages 0-2 run one forward more before their first backward.
      {4, "1f1b", 6, "--set parallel.warmup_extra=1"},
      // Clipping by the global norm: the stages' squared norms all-reduced.
      {4, "gpipe", 4, "--set parallel.stages=[0,1,2,3,4,4,5,5]", "--set run.clip_grad_norm=0.05"}};
  // The reference: single with the same micro-batches (run.gradient_accumulation), so both
  // sum the same partial gradients; and once single over whole batches, equal up to the
  // reassociation of the batch sums.
  const Run whole = train(config, dir / "single_whole", 0, "");
  REQUIRE(whole.exit_code == 0);
  for (const Case& c : cases) {
    CAPTURE(c.stages);
    CAPTURE(c.schedule);
    CAPTURE(c.micro);
    const std::string name = std::to_string(c.stages) + c.schedule + std::to_string(c.micro);
    const Run single =
        train(config, dir / ("single_" + name), 0,
              "--set run.gradient_accumulation=" + std::to_string(c.micro) + " " + c.both);
    INFO(single.output);
    REQUIRE(single.exit_code == 0);
    const Run pipeline = train(
        config, dir / ("pipeline_" + name), c.stages,
        "--set parallel.strategy=pipeline --set parallel.schedule=" + std::string(c.schedule) +
            " --set parallel.micro_batches=" + std::to_string(c.micro) + " " + c.extra + " " +
            c.both);
    INFO(pipeline.output);
    REQUIRE(pipeline.exit_code == 0);
    check_same(single, pipeline, 1e-5);
    check_reports(pipeline, c.stages, c.micro);
    if (c.stages == 2 && std::string(c.schedule) == "1f1b") check_same(whole, pipeline, 1e-5);
  }
}

TEST_CASE("a [parallel] table the layers cannot have is an error on every rank") {
  const fs::path dir = graft::test::temp_dir("dist_pipeline_errors");
  const fs::path config = write_config(dir);
  // 6 layers on 7 ranks: more stages than layers.
  const Run many = train(config, dir / "many", 7, "--set parallel.strategy=pipeline");
  INFO(many.output);
  CHECK(many.exit_code == 2);
  CHECK(graft::test::occurrences(many.output, "model has only 6 top-level layers") == 7);
  // Explicit stages for 2 ranks, run on 3.
  const Run wrong = train(config, dir / "wrong", 3,
                          "--set parallel.strategy=pipeline --set parallel.stages=[[0,2],[3,5]]");
  INFO(wrong.output);
  CHECK(wrong.exit_code == 2);
  CHECK(
      graft::test::occurrences(wrong.output,
                               "[parallel] strategy 'pipeline': stages = [[0, 2], [3, 5]] lists 2 "
                               "stages, but the job has 3") == 3);
  // A gap between stages.
  const Run gap = train(config, dir / "gap", 2,
                        "--set parallel.strategy=pipeline --set parallel.stages=[0,1,3,5]");
  INFO(gap.output);
  CHECK(gap.exit_code == 2);
  CHECK(
      graft::test::occurrences(gap.output,
                               "[parallel] strategy 'pipeline': stages = [[0, 1], [3, 5]]: stage 1 "
                               "starts at layer 3, but stage 0 ended at layer 1") == 2);
}

TEST_CASE("configs/fashion_mlp_pipeline.toml trains on 2 stages and reports its bubble") {
  const fs::path dir = graft::test::temp_dir("dist_pipeline_fashion");
  const fs::path config = graft::test::config_path("fashion_mlp_pipeline.toml");
  const Run run = train(config, dir, 2,
                        "--set data.limit=2000 --set run.epochs=1 --set run.progress=plain "
                        "--set run.threads=1");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const fs::path metrics = run.folder.parent_path() / "fashion_mlp_pipeline" / "metrics.jsonl";
  const auto evals = metric_events(metrics, "eval");
  REQUIRE(evals.size() == 1);
  CHECK(evals[0]["accuracy"].get<double>() > 0.5);  // 2000 samples, one epoch: 0.65; chance 0.1
  const auto reports = metric_events(metrics, "strategy");
  REQUIRE(reports.size() == 1);
  CHECK(reports[0]["predicted_bubble"].get<double>() == doctest::Approx(0.2));
  CHECK(run.output.find("pipeline 1f1b, 2 stages x 4 micro-batches, ") != std::string::npos);
  CHECK(run.output.find("steps: idle stage 0 ") != std::string::npos);
  auto placement = graft::test::run_graft("validate " + config.string() + " --world 2");
  INFO(placement.output);
  CHECK(placement.exit_code == 0);
  const std::string& text = placement.output;
  CHECK(text.find("rank 0  stage 0/2, shard 0/1: layers 0 linear, 1 dropout") != text.npos);
  CHECK(text.find("rank 1  stage 1/2, shard 0/1: layers 2 linear, 3 dropout, 4 linear") !=
        text.npos);
}
