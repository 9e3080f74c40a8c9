// Every config of configs/ trains on the GPU to the losses it trains to on the CPU: the same
// command with --set run.device="cuda", a few steps, each logged loss compared. Then the GPU's
// own paths: a checkpoint resumed on the GPU (one written on the CPU too) continues with the
// uninterrupted run's losses, and a NaN names the layer. Parallel configs need mpirun and a GPU
// per rank; they are skipped (with a message) where either is missing.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "run_files.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kSteps = 12;
// Float32 sums in another order (cuBLAS, the kernels' reductions) drift apart a little per step.
constexpr double kTolerance = 2e-3;

int visible_gpus() {
  FILE* pipe = popen("nvidia-smi -L 2>/dev/null", "r");
  if (!pipe) return 0;
  int lines = 0;
  for (int c; (c = std::fgetc(pipe)) != EOF;) lines += c == '\n';
  pclose(pipe);
  return lines;
}

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// The Fashion-MNIST files, moved with a carried build (run_on_gpu.sh) when the Debian
// package is not installed.
std::string data_override(const fs::path& config) {
  const char* moved = std::getenv("GRAFT_TEST_FASHION_MNIST");
  std::ifstream in(config);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!moved || !*moved || text.find("fashion-mnist") == std::string::npos) return "";
  return " --set 'data.path=\"" + std::string(moved) + "\"'";
}

struct Run {
  std::vector<double> losses;
  double eval_loss = 0.0;
  std::string output;
};

Run train(const fs::path& config, const std::string& device, const fs::path& out,
          const std::string& extra = "") {
  const std::string name = device + "_" + config.stem().string();
  const auto result = graft::test::run_graft(
      "train " + config.string() + data_override(config) + " --set run.epochs=0 --set run.steps=" +
      std::to_string(kSteps) + " --set run.log_every=1 --set run.progress='\"none\"'" +
      " --set run.name='\"" + name + "\"' --set run.output_dir='\"" + out.string() + "\"'" +
      " --set run.device='\"" + device + "\"'" + extra);
  Run run;
  run.output = result.output;
  INFO(device << " " << config << ":\n" << result.output);
  REQUIRE(result.exit_code == 0);
  for (const auto& j : graft::test::metric_events(out / name / "metrics.jsonl", "train"))
    run.losses.push_back(j.at("loss").get<double>());
  const auto evals = graft::test::metric_events(out / name / "metrics.jsonl", "eval");
  if (!evals.empty()) run.eval_loss = evals.back().at("loss").get<double>();
  return run;
}

void same_losses(const Run& gpu, const Run& cpu) {
  REQUIRE(gpu.losses.size() == cpu.losses.size());
  REQUIRE(!cpu.losses.empty());
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(gpu.losses[i] - cpu.losses[i]) <= kTolerance * std::fabs(cpu.losses[i]));
  }
  CHECK(std::fabs(gpu.eval_loss - cpu.eval_loss) <= kTolerance * std::fabs(cpu.eval_loss));
}

}  // namespace

TEST_CASE("every config trains on cuda to the losses it trains to on cpu") {
  const fs::path out = graft::test::temp_dir("gpu_configs");
  const std::set<std::string> parallel = {"fashion_mlp_data_parallel", "fashion_mlp_mesh",
                                          "fashion_mlp_pipeline", "fashion_mlp_tensor_parallel"};
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(graft::test::source_dir() / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    const std::string stem = entry.path().stem().string();
    if (parallel.count(stem)) continue;  // the next test case
    CAPTURE(stem);
    same_losses(train(entry.path(), "cuda", out), train(entry.path(), "cpu", out));
    ++compared;
  }
  CHECK(compared >= 4);
}

TEST_CASE("the parallel configs on one GPU per rank match single on the GPU") {
  if (visible_gpus() < 2 || !have_mpirun()) {
    MESSAGE("skipped: needs mpirun and 2 GPUs (this machine: "
            << visible_gpus() << " GPU(s), " << (have_mpirun() ? "" : "no ") << "mpirun)");
    return;
  }
  const fs::path out = graft::test::temp_dir("gpu_parallel_configs");
  const fs::path configs = graft::test::source_dir() / "configs";
  const Run single = train(configs / "fashion_mlp.toml", "cuda", out);
  for (const char* name :
       {"fashion_mlp_data_parallel", "fashion_mlp_pipeline", "fashion_mlp_tensor_parallel"}) {
    CAPTURE(name);
    const fs::path config = configs / (std::string(name) + ".toml");
    const std::string run_name = std::string("nccl_") + name;
    const auto result = std::system(
        ("mpirun --oversubscribe --allow-run-as-root -np 2 " +
         std::string(std::getenv("GRAFT_TEST_EXECUTABLE") ? std::getenv("GRAFT_TEST_EXECUTABLE")
                                                          : GRAFT_EXECUTABLE) +
         " train " + config.string() + data_override(config) +
         " --set run.epochs=0 --set run.steps=" + std::to_string(kSteps) +
         " --set run.log_every=1 --set run.progress='\"none\"'" + " --set run.name='\"" + run_name +
         "\"' --set run.output_dir='\"" + out.string() + "\"' --set run.device='\"cuda\"'")
            .c_str());
    REQUIRE(result == 0);
    Run parallel_run;
    for (const auto& j : graft::test::metric_events(out / run_name / "metrics.jsonl", "train"))
      parallel_run.losses.push_back(j.at("loss").get<double>());
    const auto evals = graft::test::metric_events(out / run_name / "metrics.jsonl", "eval");
    if (!evals.empty()) parallel_run.eval_loss = evals.back().at("loss").get<double>();
    same_losses(parallel_run, single);
  }
}

// The mesh on two GPUs, each axis on NCCL sub-communicators of the device communicator: data
// (with ZeRO's reduce-scatters and all-gathers on device memory, levels 1-3), pipeline and
// tensor, against single on one GPU, through graft verify.
TEST_CASE("mesh layouts on two GPUs train as single does") {
  if (visible_gpus() < 2 || !have_mpirun()) {
    MESSAGE("skipped: needs mpirun and 2 GPUs (this machine: "
            << visible_gpus() << " GPU(s), " << (have_mpirun() ? "" : "no ") << "mpirun)");
    return;
  }
  const fs::path config = graft::test::source_dir() / "configs" / "fashion_mlp.toml";
  const auto result = std::system(
      ("mpirun --oversubscribe --allow-run-as-root -np 2 " +
       std::string(std::getenv("GRAFT_TEST_EXECUTABLE") ? std::getenv("GRAFT_TEST_EXECUTABLE")
                                                        : GRAFT_EXECUTABLE) +
       " verify " + config.string() + data_override(config) +
       " --set run.device='\"cuda\"' --steps 20 --layouts "
       "2x1x1,2x1x1:z1,2x1x1:z2,2x1x1:z3,1x2x1,1x2x1:gpipe,1x1x2")
          .c_str());
  CHECK(result == 0);
}

namespace {

// fashion_mlp for kSteps in two halves: the first on `first_device`, the rest resumed from its
// checkpoint on `second_device`. A constant rate: a schedule would see a shorter first run.
std::vector<double> in_halves(const fs::path& out, const std::string& name,
                              const std::string& first_device, const std::string& second_device) {
  const fs::path config = graft::test::source_dir() / "configs" / "fashion_mlp.toml";
  const std::string common = " train " + config.string() + data_override(config) +
                             " --set optimizer.schedule.type=constant --set run.epochs=0"
                             " --set run.log_every=1 --set run.progress='\"none\"'"
                             " --set run.name='\"" +
                             name + "\"' --set run.output_dir='\"" + out.string() + "\"'";
  const auto first =
      graft::test::run_graft(common + " --set run.steps=" + std::to_string(kSteps / 2) +
                             " --set run.device='\"" + first_device + "\"'");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto second = graft::test::run_graft(
      common + " --set run.steps=" + std::to_string(kSteps) +
      " --set checkpoint.resume='\"latest\"' --set run.device='\"" + second_device + "\"'");
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  std::vector<double> losses;
  for (const auto& j : graft::test::metric_events(out / name / "metrics.jsonl", "train"))
    losses.push_back(j.at("loss").get<double>());
  return losses;
}

}  // namespace

TEST_CASE("a run resumed from a checkpoint on the GPU continues with the same losses") {
  const fs::path out = graft::test::temp_dir("gpu_resume");
  const Run whole = train(graft::test::source_dir() / "configs" / "fashion_mlp.toml", "cuda", out,
                          " --set optimizer.schedule.type=constant");
  // GPU then GPU (adam's moments go down and up too): the same kernels repeat the bits.
  const std::vector<double> gpu = in_halves(out, "gpu_halves", "cuda", "cuda");
  REQUIRE(gpu.size() == whole.losses.size());
  for (size_t i = 0; i < gpu.size(); ++i) CHECK(gpu[i] == whole.losses[i]);
  // CPU then GPU: a checkpoint holds whole tensors whatever the device that wrote it.
  const std::vector<double> moved = in_halves(out, "cpu_gpu_halves", "cpu", "cuda");
  REQUIRE(moved.size() == whole.losses.size());
  for (size_t i = 0; i < moved.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(moved[i] - whole.losses[i]) <= kTolerance * std::fabs(whole.losses[i]));
  }
}

TEST_CASE("a NaN on the GPU stops training naming the step and the layer") {
  const fs::path out = graft::test::temp_dir("gpu_nan");
  const fs::path config = graft::test::source_dir() / "configs" / "sine_regression.toml";
  const auto run =
      graft::test::run_graft("train " + config.string() +
                             " --set optimizer.lr=1e30 --set run.epochs=0 --set run.steps=50"
                             " --set run.progress='\"none\"' --set run.output_dir='\"" +
                             out.string() + "\"' --set run.device='\"cuda\"'");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output.find("the loss is") != std::string::npos);
  CHECK(run.output.find("was the first to go non-finite") != std::string::npos);
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
