// [checkpoint] resume continues a run so that its losses equal an uninterrupted run's, step for
// step: parameters, optimizer state, step count and data position all come back.
#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::config_path;
using graft::test::metric_events;
using graft::test::run_graft;

TEST_CASE("a run stopped at step 20 and resumed matches the uninterrupted run") {
  fs::path out = graft::test::temp_dir("integration_resume");
  // 1000 samples at batch 64: 16 batches an epoch, so step 20 stops mid-epoch. Dropout and
  // shuffling are on, so the RNG keys and the data order must come back too.
  const std::string common = "train " + config_path("fashion_mlp.toml") +
                             " --set data.limit=1000 --set run.log_every=1 --set run.progress=none"
                             " --set optimizer.schedule.type=constant --set checkpoint.keep=100";
  auto whole =
      run_graft(common + " --set run.epochs=3 --set run.output_dir=" + (out / "whole").string());
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);
  const std::string split_dir = " --set run.output_dir=" + (out / "split").string();
  auto first = run_graft(common + " --set run.epochs=0 --set run.steps=20" + split_dir);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(fs::exists(out / "split" / "fashion_mlp" / "checkpoints" / "step_20.json"));
  auto second =
      run_graft(common + " --set run.epochs=3 --set checkpoint.resume=latest" + split_dir);
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK(second.output.find("resumed from step 20") != std::string::npos);

  auto a = metric_events(out / "whole" / "fashion_mlp" / "metrics.jsonl", "train");
  auto b = metric_events(out / "split" / "fashion_mlp" / "metrics.jsonl", "train");
  REQUIRE(a.size() == 48);
  REQUIRE(b.size() == 48);  // 20 before the stop, appended by the 28 after
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(b[i]["step"] == a[i]["step"]);
    CHECK(b[i]["epoch"] == a[i]["epoch"]);
    CHECK(b[i]["loss"].get<double>() == a[i]["loss"].get<double>());
  }
  auto ea = metric_events(out / "whole" / "fashion_mlp" / "metrics.jsonl", "eval");
  auto eb = metric_events(out / "split" / "fashion_mlp" / "metrics.jsonl", "eval");
  REQUIRE(!ea.empty());
  REQUIRE(!eb.empty());
  CHECK(eb.back()["accuracy"].get<double>() == ea.back()["accuracy"].get<double>());
}
