// Every shipped config trains end to end through the CLI (on subsets small enough for CI) and
// leaves config.toml, metrics.jsonl and checkpoints as DESIGN.md §7 says.
#include <set>

#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::config_path;
using graft::test::metric_events;
using graft::test::run_graft;

TEST_CASE("fashion_mlp trains on a subset and writes its run folder") {
  fs::path out = graft::test::temp_dir("integration_fashion");
  auto r = run_graft("train " + config_path("fashion_mlp.toml") + " --set data.limit=4000" +
                     " --set run.epochs=3 --set run.log_every=20 --set run.progress=plain" +
                     " --set run.output_dir=" + out.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const fs::path run = out / "fashion_mlp";
  CHECK(fs::exists(run / "config.toml"));
  auto evals = metric_events(run / "metrics.jsonl", "eval");
  REQUIRE(evals.size() == 3);
  CHECK(evals.back()["split"] == "test");
  CHECK(evals.back()["accuracy"].get<double>() > 0.70);  // 4000 samples, 3 epochs; chance is 0.1
  auto trains = metric_events(run / "metrics.jsonl", "train");
  REQUIRE(trains.size() >= 5);
  CHECK(trains.back()["loss"].get<double>() < trains.front()["loss"].get<double>());
  for (const char* key : {"step", "epoch", "loss", "lr", "samples_per_s", "seconds"})
    CHECK(trains.front().contains(key));
  // keep = 2 in the config: the newest two epochs' checkpoints remain, each complete.
  int complete = 0;
  for (const auto& f : fs::directory_iterator(run / "checkpoints"))
    if (f.path().extension() == ".json") {
      ++complete;
      CHECK(fs::exists(fs::path(f.path()).replace_extension(".safetensors")));
    }
  CHECK(complete == 2);
  // The resolved config shows defaults the user never wrote.
  std::ifstream in(run / "config.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("limit = 4000") != std::string::npos);
  CHECK(text.find("beta1") != std::string::npos);  // adam's default, filled in
}

TEST_CASE("eval of a checkpoint reproduces the run's last test accuracy") {
  fs::path out = graft::test::temp_dir("integration_eval");
  const std::string common = config_path("fashion_mlp.toml") + " --set data.limit=2000" +
                             " --set run.output_dir=" + out.string();
  auto r = run_graft("train " + common + " --set run.epochs=1 --set run.progress=none");
  REQUIRE(r.exit_code == 0);
  auto evals = metric_events(out / "fashion_mlp" / "metrics.jsonl", "eval");
  REQUIRE(evals.size() == 1);
  auto e = run_graft("eval " + common + " --checkpoint " + (out / "fashion_mlp").string());
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  char expected[32];
  std::snprintf(expected, sizeof expected, "accuracy %.4f", evals[0]["accuracy"].get<double>());
  CHECK(e.output.find(expected) != std::string::npos);
}

TEST_CASE("sine_regression learns sin(x)") {
  fs::path out = graft::test::temp_dir("integration_sine");
  auto r = run_graft("train " + config_path("sine_regression.toml") +
                     " --set run.progress=none --set run.output_dir=" + out.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto evals = metric_events(out / "sine_regression" / "metrics.jsonl", "eval");
  REQUIRE(!evals.empty());
  // sin on [-pi, pi] has variance 0.5: learning nothing scores ~0.5.
  CHECK(evals.back()["loss"].get<double>() < 0.005);
}

TEST_CASE("csv_classification learns the iris species") {
  fs::path out = graft::test::temp_dir("integration_csv");
  auto r = run_graft("train " + config_path("csv_classification.toml") +
                     " --set run.progress=none --set run.output_dir=" + out.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto evals = metric_events(out / "csv_classification" / "metrics.jsonl", "eval");
  REQUIRE(!evals.empty());
  CHECK(evals.back()["accuracy"].get<double>() >= 0.9);
}

TEST_CASE("validate prints the model and trains nothing") {
  fs::path out = graft::test::temp_dir("integration_validate");
  auto r = run_graft("validate " + config_path("fashion_mlp.toml") +
                     " --set run.output_dir=" + out.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("valid") != std::string::npos);
  CHECK(r.output.find("401920") != std::string::npos);  // 784 * 512 + 512
  CHECK(r.output.find("parameters 535818") != std::string::npos);
  CHECK(!fs::exists(out / "fashion_mlp" / "metrics.jsonl"));
}

TEST_CASE("plugins --json lists every built-in plugin with its options") {
  auto r = run_graft("plugins --json");
  REQUIRE(r.exit_code == 0);
  auto list = nlohmann::json::parse(r.output);
  std::set<std::string> names;
  for (const auto& p : list)
    names.insert(p["kind"].get<std::string>() + "/" + p["name"].get<std::string>());
  for (const char* n :
       {"layer/linear", "layer/dropout", "layer/flatten", "activation/relu", "activation/softmax",
        "loss/cross_entropy", "loss/bce_with_logits", "optimizer/adamw", "dataset/idx",
        "dataset/csv", "dataset/synthetic", "strategy/single"})
    CHECK(names.count(n) == 1);
  for (const auto& p : list)
    if (p["name"] == "linear") {
      bool has_units = false;
      for (const auto& o : p["options"]) has_units |= o["name"] == "units" && o["required"] == true;
      CHECK(has_units);
    }
  // Integer ranges read as integers, not as 1.07374e+09.
  auto text = run_graft("plugins");
  REQUIRE(text.exit_code == 0);
  CHECK(text.output.find("[1, 1073741824]") != std::string::npos);
  CHECK(text.output.find("e+09") == std::string::npos);
}
