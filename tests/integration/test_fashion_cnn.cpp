// configs/fashion_cnn.toml end to end on a Fashion-MNIST subset: the CNN (conv2d, batch_norm,
// max_pool2d, flatten, linear, dropout) trains through the CLI, learns, and validates.
#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::config_path;
using graft::test::metric_events;
using graft::test::run_graft;

TEST_CASE("fashion_cnn trains on a subset and learns well above chance") {
  fs::path out = graft::test::temp_dir("integration_fashion_cnn");
  auto r = run_graft("train " + config_path("fashion_cnn.toml") + " --set data.limit=2000" +
                     " --set run.epochs=1 --set run.log_every=4 --set run.progress=plain" +
                     " --set run.output_dir=" + out.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const fs::path run = out / "fashion_cnn";
  auto evals = metric_events(run / "metrics.jsonl", "eval");
  REQUIRE(evals.size() == 1);
  // 16 steps on 2000 images. Chance is 0.1; the test accuracy stays well below the training
  // one this early, as batch_norm's running statistics (momentum 0.1) still lag the batches.
  const double accuracy = evals.back()["accuracy"].get<double>();
  MESSAGE("test accuracy after one epoch on 2000 images: " << accuracy);
  CHECK(accuracy > 0.25);
  auto trains = metric_events(run / "metrics.jsonl", "train");
  REQUIRE(trains.size() >= 3);
  // From about ln(10) = 2.3 at the start.
  CHECK(trains.back()["loss"].get<double>() < 0.5 * trains.front()["loss"].get<double>());
}

TEST_CASE("fashion_cnn validates: every layer's shape, from (1, 28, 28) to 10 classes") {
  auto r = run_graft("validate " + config_path("fashion_cnn.toml"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* shape :
       {"(32, 28, 28)", "(32, 14, 14)", "(64, 14, 14)", "(64, 7, 7)", "(3136,)", "(128,)", "(10,)"})
    CHECK(r.output.find(shape) != std::string::npos);
}
