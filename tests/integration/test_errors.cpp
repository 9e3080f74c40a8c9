// Bad input through the CLI: each gets one clear message naming the file, key or line and the
// fix, exit code 2 (the user's to fix) or 1 (failed while training), and never a crash.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>

#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::config_path;
using graft::test::run_graft;

namespace {
fs::path write_config(const fs::path& dir, const std::string& text) {
  fs::path file = dir / "run.toml";
  std::ofstream(file) << text;
  return file;
}

const char* const kSmallRun = R"([run]
name = "small"
epochs = 1
progress = "none"

[data]
reader = "synthetic"
kind = "sine"
samples = 256
batch_size = 32

[[model.layers]]
type = "linear"
units = 16
activation = "tanh"

[[model.layers]]
type = "linear"
units = 1

[loss]
type = "mse"
)";
}  // namespace

TEST_CASE("a typo in a plugin's key names file, line, column and the right key") {
  fs::path dir = graft::test::temp_dir("errors_typo");
  fs::path file = write_config(
      dir, std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\nlr = 0.1\nmomentun = 0.9\n");
  auto r = run_graft("train " + file.string() + " --set run.output_dir=" + dir.string());
  CHECK(r.exit_code == 2);
  CHECK(r.output.find(file.string() + ":27:1") != std::string::npos);
  CHECK(r.output.find("unknown key 'momentun'") != std::string::npos);
  CHECK(r.output.find("did you mean 'momentum'?") != std::string::npos);
}

TEST_CASE("a wrong type names the key and the expected type") {
  fs::path dir = graft::test::temp_dir("errors_type");
  fs::path file = write_config(
      dir, std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\nmomentum = \"high\"\n");
  auto r = run_graft("validate " + file.string() + " --set run.output_dir=" + dir.string());
  CHECK(r.exit_code == 2);
  CHECK(r.output.find(file.string() + ":26:12") != std::string::npos);
  CHECK(r.output.find("momentum: expected a number, got a string") != std::string::npos);
}

TEST_CASE("a missing config file") {
  auto r = run_graft("train /nonexistent/run.toml");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("/nonexistent/run.toml") != std::string::npos);
  CHECK(r.output.find("not found") != std::string::npos);
}

TEST_CASE("an unknown layer lists the known ones") {
  fs::path dir = graft::test::temp_dir("errors_layer");
  std::string text = kSmallRun;
  text.replace(text.find("type = \"linear\"\nunits = 1\n"), 15, "type = \"linaer\"");
  fs::path file = write_config(dir, text + "\n[optimizer]\ntype = \"sgd\"\n");
  auto r = run_graft("validate " + file.string() + " --set run.output_dir=" + dir.string());
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("unknown layer 'linaer'") != std::string::npos);
  CHECK(r.output.find("did you mean 'linear'?") != std::string::npos);
  CHECK(r.output.find("dropout") != std::string::npos);
}

TEST_CASE("a truncated data set names the file") {
  fs::path dir = graft::test::temp_dir("errors_idx");
  fs::path data = dir / "data";
  fs::create_directories(data);
  for (const char* name : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}) {
    std::ofstream f(data / name, std::ios::binary);
    const unsigned char header[16] = {0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28};
    f.write(reinterpret_cast<const char*>(header), 16);
    f << std::string(1000, '\0');  // far fewer than 100 images
  }
  for (const char* name : {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"}) {
    std::ofstream f(data / name, std::ios::binary);
    const unsigned char header[8] = {0, 0, 8, 1, 0, 0, 0, 100};
    f.write(reinterpret_cast<const char*>(header), 8);
    f << std::string(100, '\1');
  }
  auto r = run_graft("validate " + config_path("fashion_mlp.toml") +
                     " --set data.path=" + data.string() + " --set run.output_dir=" + dir.string());
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("train-images-idx3-ubyte") != std::string::npos);
  CHECK(r.output.find("truncated") != std::string::npos);
}

TEST_CASE("a plugin built against another SDK major is refused by name") {
  fs::path dir = graft::test::temp_dir("errors_abi");
  fs::path plugins = fs::path(GRAFT_BINARY_DIR) / "test_fixtures" / "abi_major";
  auto r = run_graft("validate " + config_path("sine_regression.toml") + " --plugin-dir " +
                     plugins.string() + " --set run.output_dir=" + dir.string());
  CHECK(r.exit_code == 2);
  CHECK(r.output.find((plugins / "graft_fixture.so").string()) != std::string::npos);
  CHECK(r.output.find("rebuild the plugin") != std::string::npos);
}

TEST_CASE("a NaN loss stops training naming the step and the layer, keeping checkpoints") {
  fs::path dir = graft::test::temp_dir("errors_nan");
  fs::path file = write_config(dir, std::string(kSmallRun) +
                                        "\n[optimizer]\ntype = \"sgd\"\nlr = 1e30\n"
                                        "\n[checkpoint]\nevery = 1\nkeep = 10\n");
  auto r = run_graft("train " + file.string() + " --set run.output_dir=" + dir.string());
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("step ") != std::string::npos);
  const bool names_value =
      r.output.find("NaN") != std::string::npos || r.output.find("infinite") != std::string::npos;
  CHECK(names_value);
  CHECK(r.output.find("layer") != std::string::npos);
  CHECK(r.output.find("optimizer.lr") != std::string::npos);
  // Checkpoints written before the bad step are complete; nothing half-written remains.
  fs::path checkpoints = dir / "small" / "checkpoints";
  REQUIRE(fs::exists(checkpoints / "step_1.json"));
  for (const auto& f : fs::directory_iterator(checkpoints))
    CHECK(f.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("a damaged checkpoint is a clear error for eval") {
  fs::path dir = graft::test::temp_dir("errors_checkpoint");
  fs::path file = write_config(dir, std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\n");
  auto r = run_graft("train " + file.string() + " --set run.output_dir=" + dir.string());
  REQUIRE(r.exit_code == 0);
  fs::path checkpoints = dir / "small" / "checkpoints";
  fs::path tensors = graft::test::metric_events(dir / "small" / "metrics.jsonl", "train").empty()
                         ? fs::path()
                         : checkpoints / "step_8.safetensors";
  REQUIRE(fs::exists(tensors));
  fs::resize_file(tensors, fs::file_size(tensors) / 2);
  auto e = run_graft("eval " + file.string() + " --checkpoint " + tensors.string() +
                     " --set run.output_dir=" + dir.string());
  CHECK(e.exit_code == 2);
  CHECK(e.output.find(tensors.string()) != std::string::npos);
  CHECK(e.output.find("damaged") != std::string::npos);

  // A field of the wrong type in step_N.json is said so, not called missing.
  const fs::path meta = checkpoints / "step_8.json";
  std::string text;
  {
    std::ifstream in(meta);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string step = "\"step\": 8,";
  const size_t at = text.find(step);
  REQUIRE(at != std::string::npos);
  std::ofstream(meta, std::ios::trunc) << text.replace(at, step.size(), "\"step\": \"8\",");
  auto m = run_graft("eval " + file.string() + " --checkpoint " + tensors.string() +
                     " --set run.output_dir=" + dir.string());
  INFO(m.output);
  CHECK(m.exit_code == 2);
  CHECK(m.output.find(meta.string() + ": field \"step\" is \"8\", not a non-negative integer") !=
        std::string::npos);
  CHECK(m.output.find("lacks") == std::string::npos);
}

TEST_CASE("a batch of a billion rows: validate reports its memory, train refuses it unallocated") {
  fs::path dir = graft::test::temp_dir("errors_huge_batch");
  // 4096 floats a row in the first layer alone: terabytes at this batch on any machine.
  fs::path file = write_config(dir, std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\n");
  const std::string common =
      file.string() + " --set data.batch_size=1000000000" +
      " --set model.layers.0.units=4096 --set run.output_dir=" + dir.string();
  const auto start = std::chrono::steady_clock::now();
  auto v = run_graft("validate " + common);
  INFO(v.output);
  CHECK(v.exit_code == 0);
  CHECK(v.output.find("memory planned at batch 1000000000: ") != std::string::npos);
  CHECK(v.output.find(" TiB (parameters") != std::string::npos);
  CHECK(v.output.find("warning: train and eval would refuse this") != std::string::npos);

  auto t = run_graft("train " + common);
  INFO(t.output);
  CHECK(t.exit_code == 2);
  CHECK(t.output.find("[data] batch_size = 1000000000: the model's buffers for 1000000000 rows "
                      "need ") != std::string::npos);
  CHECK(t.output.find("but this machine has ") != std::string::npos);
  CHECK(t.output.find("lower batch_size, or keep it and set [run] gradient_accumulation") !=
        std::string::npos);
  CHECK(!fs::exists(dir / "small" / "metrics.jsonl"));
  // Nothing of the batch was allocated: both commands return at once.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("bad usage exits 2 with help") {
  CHECK(run_graft("").exit_code == 2);
  CHECK(run_graft("frobnicate").exit_code == 2);
  auto r = run_graft("train");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--help") != std::string::npos);
  CHECK(run_graft("train --help").exit_code == 0);
}

TEST_CASE("a shape error names the config line of the layer") {
  fs::path dir = graft::test::temp_dir("errors_shape");
  // A layer_norm over 2 axes of the linear's (16,) output, which has one.
  std::string text = std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\n";
  const size_t at = text.find("[[model.layers]]\ntype = \"linear\"\nunits = 1\n\n");
  text.insert(at, "[[model.layers]]\ntype = \"layer_norm\"\nnormalized_dims = 2\n\n");
  const auto line = std::count(text.begin(), text.begin() + std::ptrdiff_t(at), '\n') + 1;
  fs::path file = write_config(dir, text);
  auto r = run_graft("validate " + file.string());
  CHECK(r.exit_code == 2);
  CHECK_MESSAGE(r.output.find(file.string() + ":" + std::to_string(line) +
                              ":1: [[model.layers]] #1") != std::string::npos,
                r.output);
}

TEST_CASE("a plugin folder that holds no plugins is an error naming it and where it was given") {
  fs::path dir = graft::test::temp_dir("errors_plugin_folder");
  fs::path file = write_config(dir, std::string(kSmallRun) + "\n[optimizer]\ntype = \"sgd\"\n");
  auto missing = run_graft("validate " + file.string() + " --plugin-dir " + (dir / "no").string());
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("--plugin-dir: plugin folder '" + (dir / "no").string() +
                            "' does not exist") != std::string::npos);
  // A build folder: the libraries are one level down, in plugins/.
  auto build = run_graft("plugins --plugin-dir " + std::string(GRAFT_BINARY_DIR));
  CHECK(build.exit_code == 2);
  CHECK(build.output.find("does: pass that folder") != std::string::npos);
  // In the config: the message names the line of [plugins] paths.
  std::ofstream(file, std::ios::app) << "\n[plugins]\npaths = [\"empty\"]\n";
  fs::create_directories(dir / "empty");
  auto empty = run_graft("validate " + file.string());
  CHECK(empty.exit_code == 2);
  CHECK_MESSAGE(empty.output.find(file.string() + ":28:10: [plugins] paths: plugin folder") !=
                    std::string::npos,
                empty.output);
  CHECK(empty.output.find("holds no plugin libraries (graft_*.so)") != std::string::npos);
}
