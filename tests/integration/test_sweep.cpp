// graft sweep as a user runs it: every combination of the grids trains as its own run, the
// table is sorted by the metric, a second sweep skips what finished, an interrupted run (no
// marker) is the only one run again, and a bad key fails before anything trains.
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::has;
using graft::test::occurrences;
using graft::test::run_graft;

TEST_CASE("a sweep trains every combination, tables them best first, and resumes") {
  const fs::path dir = graft::test::temp_dir("sweep");
  const std::string config =
      (graft::test::source_dir() / "configs" / "sine_regression.toml").string();
  const std::string sweep = "sweep " + config +
                            " --grid optimizer.lr=0.001,0.01 --grid 'model.layers[0].units=8,16'" +
                            " --set run.epochs=2 --set 'run.output_dir=\"" + dir.string() + "\"'";
  auto first = run_graft(sweep + " --parallel 2");
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  CHECK(has(first.output, "4 runs, 0 finished before, 4 to run, 2 at once"));
  CHECK(occurrences(first.output, "finished sine_regression-") == 4);
  for (const char* name : {"sine_regression-lr=0.001-units=8", "sine_regression-lr=0.01-units=16"})
    CHECK(fs::exists(dir / name / "metrics.jsonl"));

  // The CSV: a header and four rows, sorted by test loss, lowest first.
  std::ifstream csv(dir / "sine_regression-sweep.csv");
  std::string header;
  std::getline(csv, header);
  CHECK(header == "optimizer.lr,model.layers[0].units,test_loss,train_loss,steps,run");
  std::vector<double> losses;
  for (std::string line; std::getline(csv, line);) {
    const size_t a = line.find(',', line.find(',') + 1);
    losses.push_back(std::stod(line.substr(a + 1)));
  }
  REQUIRE(losses.size() == 4);
  for (size_t i = 1; i < losses.size(); ++i) CHECK(losses[i - 1] <= losses[i]);
  CHECK(fs::exists(dir / "sine_regression-sweep.md"));

  auto again = run_graft(sweep);
  REQUIRE_MESSAGE(again.exit_code == 0, again.output);
  CHECK(has(again.output, "4 finished before, 0 to run"));
  CHECK(!has(again.output, "started"));

  // A run stopped before its end has no marker: only it runs again.
  fs::remove(dir / "sine_regression-lr=0.01-units=8" / "sweep_done");
  auto resumed = run_graft(sweep);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(has(resumed.output, "3 finished before, 1 to run"));
  CHECK(occurrences(resumed.output, "started  ") == 1);
  CHECK(has(resumed.output, "started  sine_regression-lr=0.01-units=8"));
  CHECK(occurrences(resumed.output, "| sine_regression-") == 4);
}

TEST_CASE("a sweep with a key the config does not have fails before any run starts") {
  const fs::path dir = graft::test::temp_dir("sweep_errors");
  const std::string config =
      (graft::test::source_dir() / "configs" / "sine_regression.toml").string();
  auto typo =
      run_graft("sweep " + config + " --grid optimizer.lrr=0.1,0.2 --set 'run.output_dir=\"" +
                dir.string() + "\"'");
  CHECK(typo.exit_code == 2);
  CHECK(has(typo.output, "did you mean 'lr'"));
  CHECK(!has(typo.output, "started"));
  auto grid = run_graft("sweep " + config + " --grid optimizer.lr");
  CHECK(grid.exit_code == 2);
  CHECK(has(grid.output, "expected KEY=V1,V2,..."));
  auto none = run_graft("sweep " + config);
  CHECK(none.exit_code == 2);
  CHECK(has(none.output, "needs at least one --grid"));
}
