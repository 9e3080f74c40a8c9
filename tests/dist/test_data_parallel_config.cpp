// configs/fashion_mlp_data_parallel.toml as a user runs it, `mpirun -np 2 graft train`: the
// trainer hands each rank its rows (the prefetching loader included), rank 0 alone writes the
// run folder and prints, and the model learns as single's would.
#include "mpirun.hpp"
#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::metric_events;

TEST_CASE("configs/fashion_mlp_data_parallel.toml trains on 2 ranks; rank 0 alone reports") {
  const fs::path dir = graft::test::temp_dir("dist_data_parallel_fashion");
  const std::string config = graft::test::config_path("fashion_mlp_data_parallel.toml");
  // 2000 samples, batches of 64: 31 full and a short one of 16 (8 rows on each rank).
  const auto run = graft::test::mpirun(
      2, std::string(GRAFT_EXECUTABLE) + " train " + config + " --set run.output_dir=" +
             dir.string() + " --set data.limit=2000 --set run.epochs=1 --set run.log_every=8 " +
             "--set run.progress=plain --set run.threads=1");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(graft::test::occurrences(run.output, "graft train: ") == 1);
  CHECK(graft::test::occurrences(run.output, "on 2 rank(s)") == 1);
  CHECK(graft::test::occurrences(run.output, "trained 32 steps") == 1);
  CHECK(graft::test::occurrences(run.output, "step 8 epoch 0 loss") == 1);

  const fs::path run_dir = dir / "fashion_mlp_data_parallel";
  CHECK(fs::exists(run_dir / "config.toml"));
  CHECK(fs::exists(run_dir / "checkpoints" / "step_32.json"));
  const auto trains = metric_events(run_dir / "metrics.jsonl", "train");
  REQUIRE(trains.size() == 4);  // steps 8, 16, 24, 32: one rank wrote them
  CHECK(trains.back()["step"] == 32);
  CHECK(trains.back()["loss"].get<double>() < trains.front()["loss"].get<double>());
  const auto evals = metric_events(run_dir / "metrics.jsonl", "eval");
  REQUIRE(evals.size() == 1);
  CHECK(evals[0]["accuracy"].get<double>() > 0.5);  // one epoch of 2000 samples; chance 0.1
}
