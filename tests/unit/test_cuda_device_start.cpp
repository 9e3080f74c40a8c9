// [run] device = "cuda" where it cannot run is a clear error before anything trains: a build
// without the CUDA module, a machine without a GPU (this one), and a model with a plugin that
// ships no CUDA kernels, each naming the reason and the fix.
#include <fstream>

#include "device/cuda_loader.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;

TEST_CASE("starting the CUDA device without a GPU or a CUDA build says which, and the fix") {
  std::string message;
  try {
    const rt::cuda::Device& gpu = rt::start_cuda(rt::cuda::Options{});
    MESSAGE("a GPU is present here: " << gpu.describe() << " (tests/gpu covers it)");
    return;
  } catch (const rt::UserError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("[run] device = \"cuda\"") != std::string::npos);
  CHECK(message.find("device = \"cpu\"") != std::string::npos);  // the fix
  if (rt::cuda_built())
    CHECK((message.find("no CUDA device is present") != std::string::npos ||
           message.find("does not load") != std::string::npos));
  else
    CHECK(message.find("this build of graft has no CUDA device") != std::string::npos);
}

TEST_CASE("a cuda config whose plugins have no CUDA kernels names them before training") {
  const auto dir = graft::test::temp_dir("cuda_config");
  const auto config = dir / "cuda.toml";
  std::ofstream(config) << "[run]\nname = \"c\"\ndevice = \"cuda\"\nsteps = 1\n"
                           "output_dir = \""
                        << (dir / "runs").string()
                        << "\"\n"
                           "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 4\n"
                           "classes = 2\nsamples = 8\ntest_samples = 4\nbatch_size = 4\n"
                           "[[model.layers]]\ntype = \"bad_correct\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 2\n"
                           "[loss]\ntype = \"cross_entropy\"\n[optimizer]\ntype = \"sgd\"\n";
  // A plugin built without CUDA_SOURCES (a test fixture: every built-in one has kernels).
  const auto run = graft::test::run_graft("validate " + config.string() + " --plugin-dir " +
                                          GRAFT_BINARY_DIR "/test_fixtures/correct");
  INFO(run.output);
  CHECK(run.exit_code == 2);
  CHECK(run.output.find(config.string() + ": [run] device = \"cuda\": these plugins have no "
                                          "CUDA kernels") != std::string::npos);
  // The fixture has no kernels in any build; linear, the loss and the optimizer have them in
  // a CUDA build and are listed too in a CPU-only one.
  CHECK(run.output.find("[[model.layers]] #0 (layer 'bad_correct' from graft_bad_layer.so)") !=
        std::string::npos);
  CHECK(run.output.find("use device = \"cpu\"") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "runs" / "c" / "metrics.jsonl"));
}

TEST_CASE("graft validate says how many of a config's plugins have CUDA kernels") {
  const auto run = graft::test::run_graft("validate " + std::string(GRAFT_SOURCE_DIR) +
                                          "/configs/fashion_mlp.toml");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  // 3 linear, 2 dropout, cross_entropy and adam: all with kernels in a CUDA build.
  if (rt::cuda_built())
    CHECK(run.output.find("CUDA kernels: 7 of 7 plugins\n") != std::string::npos);
  else
    CHECK(run.output.find("CUDA kernels: 0 of 7 plugins (none in linear, dropout, "
                          "cross_entropy, adam)") != std::string::npos);
}
