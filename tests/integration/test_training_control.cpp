// Training control through the CLI on small synthetic runs: a model with a residual block
// trains and `graft validate` shows its inner layers; gradient accumulation reproduces the
// whole-batch run with less memory; early stopping ends a run, says why, and counts across a
// resume.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>

#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::metric_events;
using graft::test::run_graft;

namespace {

// Four Gaussian blobs in 6 dimensions; linear 32 -> residual(linear 32 relu, dropout,
// linear 32) -> linear 4.
const char* const kResidualRun = R"([run]
name = "residual"
seed = 11
epochs = 4
log_every = 1
progress = "none"

[data]
reader = "synthetic"
kind = "blobs"
features = 6
classes = 4
spread = 3.0
samples = 512
test_samples = 256
batch_size = 32

[[model.layers]]
type = "linear"
units = 32
activation = "relu"

[[model.layers]]
type = "residual"

[[model.layers.layers]]
type = "linear"
units = 32
activation = "relu"

[[model.layers.layers]]
type = "dropout"
p = 0.2

[[model.layers.layers]]
type = "linear"
units = 32

[[model.layers]]
type = "linear"
units = 4

[loss]
type = "cross_entropy"

[optimizer]
type = "adam"
lr = 0.01
)";

fs::path write_config(const fs::path& dir) {
  fs::path file = dir / "run.toml";
  std::ofstream(file) << kResidualRun;
  return file;
}

std::string train(const fs::path& dir, const std::string& sets) {
  auto r = run_graft("train " + (dir / "run.toml").string() +
                     " --set run.output_dir=" + (dir / "runs").string() + " " + sets);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return r.output;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a residual block trains from the config and validate shows its inner layers") {
  fs::path dir = graft::test::temp_dir("integration_residual");
  write_config(dir);
  auto v = run_graft("validate " + (dir / "run.toml").string());
  INFO(v.output);
  REQUIRE(v.exit_code == 0);
  // Inner layers indented under their block, which counts their parameters (2 * (32*32 + 32)).
  CHECK(contains(v.output, "  1  residual         (32,)                   2112\n"));
  CHECK(contains(v.output, "       linear         (32,)                   1056\n"));
  CHECK(contains(v.output, "       dropout        (32,)                      0\n"));
  CHECK(contains(v.output, "  2  linear           (4,)                     132\n"));

  train(dir, "");
  const fs::path run = dir / "runs" / "residual";
  auto evals = metric_events(run / "metrics.jsonl", "eval");
  REQUIRE(evals.size() == 4);
  CHECK(evals.back()["accuracy"].get<double>() > 0.9);  // chance is 0.25
  auto trains = metric_events(run / "metrics.jsonl", "train");
  CHECK(trains.back()["loss"].get<double>() < 0.5 * trains.front()["loss"].get<double>());
  // The checkpoint names follow the nesting, and the saved config loads and evaluates it.
  auto e = run_graft("eval " + (run / "config.toml").string() + " --checkpoint " + run.string());
  INFO(e.output);
  CHECK(e.exit_code == 0);
  char expected[32];
  std::snprintf(expected, sizeof expected, "accuracy %.4f", evals.back()["accuracy"].get<double>());
  CHECK(contains(e.output, expected));
  std::ifstream saved(run / "config.toml");
  std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  CHECK(contains(text, "[[model.layers.layers]]"));
}

TEST_CASE("gradient accumulation reproduces the whole-batch run with a quarter of the rows") {
  fs::path dir = graft::test::temp_dir("integration_accumulation");
  write_config(dir);
  train(dir, "--set run.name=whole --set run.epochs=2");
  train(dir, "--set run.name=split --set run.epochs=2 --set run.gradient_accumulation=4");
  auto whole = metric_events(dir / "runs" / "whole" / "metrics.jsonl", "train");
  auto split = metric_events(dir / "runs" / "split" / "metrics.jsonl", "train");
  REQUIRE(whole.size() == 32);  // 512 / 32 steps per epoch, logged every step
  REQUIRE(split.size() == whole.size());
  // Same batches, same dropout masks: only the order of the sums differs (float rounding,
  // growing slowly with Adam's steps), so each loss agrees to 1e-4 relative.
  for (size_t i = 0; i < whole.size(); ++i) {
    CAPTURE(i);
    CHECK(split[i]["loss"].get<double>() ==
          doctest::Approx(whole[i]["loss"].get<double>()).epsilon(1e-4));
  }
  auto e1 = metric_events(dir / "runs" / "whole" / "metrics.jsonl", "eval");
  auto e4 = metric_events(dir / "runs" / "split" / "metrics.jsonl", "eval");
  REQUIRE(e1.size() == e4.size());
  CHECK(e4.back()["loss"].get<double>() ==
        doctest::Approx(e1.back()["loss"].get<double>()).epsilon(1e-4));

  // Buffers are planned for one micro-batch (8 rows) instead of 32.
  auto v =
      run_graft("validate " + (dir / "run.toml").string() + " --set run.gradient_accumulation=4");
  INFO(v.output);
  CHECK(contains(v.output, "memory planned at batch 8 (batch 32 as 4 micro-batches)"));
  auto too_many =
      run_graft("validate " + (dir / "run.toml").string() + " --set run.gradient_accumulation=33");
  CHECK(too_many.exit_code == 2);
  CHECK(contains(too_many.output,
                 "[run] gradient_accumulation: must not exceed data.batch_size (32)"));
}

TEST_CASE("early stopping ends the run after `patience` evaluations without improvement") {
  fs::path dir = graft::test::temp_dir("integration_early_stopping");
  write_config(dir);
  // No improvement can beat min_delta, so the run stops at the third evaluation (step 30),
  // the best being the first (step 10). Each mode once: loss (min) and accuracy (max).
  for (const char* metric : {"loss", "accuracy"}) {
    CAPTURE(std::string(metric));
    const std::string name = std::string("stop_") + metric;
    std::string output = train(
        dir, "--set run.name=" + name + " --set run.epochs=10" +
                 " --set run.eval_every=10 --set run.early_stopping.metric=" + metric +
                 " --set run.early_stopping.patience=2" + " --set run.early_stopping.min_delta=5");
    INFO(output);
    auto evals = metric_events(dir / "runs" / name / "metrics.jsonl", "eval");
    REQUIRE(evals.size() == 3);
    CHECK(evals.back()["step"] == 30);
    char best[32];
    std::snprintf(best, sizeof best, "best %s %.4f at step 10", metric,
                  evals.front()[metric].get<double>());
    CHECK(contains(output, "early stopping at step 30: test " + std::string(metric) +
                               " has not improved (mode " +
                               (std::string(metric) == "loss" ? "min" : "max")));
    CHECK(contains(output, "for 2 evaluations"));
    CHECK(contains(output, best));
    CHECK(fs::exists(dir / "runs" / name / "checkpoints" / "step_30.json"));
  }
  // A metric the loss does not report names the ones it does.
  auto r = run_graft("validate " + (dir / "run.toml").string() +
                     " --set run.early_stopping.metric=accuracyy");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output,
                 "[run.early_stopping] metric: 'accuracyy' is not reported by loss "
                 "'cross_entropy' (did you mean 'accuracy'?); available: loss, accuracy"));
  // With ordinary settings and a long run, it stops before the end once accuracy stalls.
  std::string output =
      train(dir, "--set run.name=stall --set run.epochs=40 --set run.eval_every=16" +
                     std::string(" --set run.early_stopping.metric=accuracy"));
  INFO(output);
  auto evals = metric_events(dir / "runs" / "stall" / "metrics.jsonl", "eval");
  CHECK(evals.size() < 40);
  CHECK(std::regex_search(output, std::regex("early stopping at step [0-9]+: test accuracy")));
}

TEST_CASE("a resumed run counts the evaluations before its checkpoint towards early stopping") {
  fs::path dir = graft::test::temp_dir("integration_early_stopping_resume");
  write_config(dir);
  // As above the best is the first evaluation (step 10) and the run stops at step 30; here it
  // is interrupted at step 20 (one evaluation without improvement) and resumed.
  const std::string stopping =
      " --set run.name=resumed --set run.eval_every=10 --set run.epochs=0"
      " --set run.early_stopping.patience=2"
      " --set run.early_stopping.min_delta=5"
      " --set checkpoint.every=10";
  train(dir, stopping + " --set run.steps=20");
  const fs::path metrics = dir / "runs" / "resumed" / "metrics.jsonl";
  REQUIRE(metric_events(metrics, "eval").size() == 2);
  std::string output = train(dir, stopping + " --set run.steps=100 --set checkpoint.resume=latest");
  INFO(output);
  auto evals = metric_events(metrics, "eval");
  REQUIRE(evals.size() == 3);  // without the replay it would run on to step 50
  CHECK(evals.back()["step"] == 30);
  char best[48];
  std::snprintf(best, sizeof best, "best loss %.4f at step 10",
                evals.front()["loss"].get<double>());
  CHECK(contains(output, "early stopping at step 30"));
  CHECK(contains(output, best));
  // Resuming the stopped run again trains nothing and says why.
  output = train(dir, stopping + " --set run.steps=100 --set checkpoint.resume=latest");
  CHECK(metric_events(metrics, "eval").size() == 3);
  CHECK(contains(output, "early stopping at step 30"));
  CHECK(contains(output, "nothing more to train"));
}
