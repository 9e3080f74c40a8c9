// graft check-plugin through the CLI: every built-in plugin library passes it, and each planted
// bug (a wrong dx, a missing bias gradient, a drifting forward, a foreign ABI, a throwing
// forward) is caught by its check with a FAIL line, exit code 1, and no crash.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "idx_writer.hpp"
#include "sequence_datasets.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::run_graft;

namespace {

std::string fixture(const std::string& variant, const std::string& file = "graft_bad_layer.so") {
  return (fs::path(GRAFT_BINARY_DIR) / "test_fixtures" / variant / file).string();
}

// The output's lines that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& output, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) found.push_back(line);
  return found;
}

// Options for the built-in readers that need files: small IDX, CSV, text and token files
// written here.
std::string dataset_options(const std::string& library, const fs::path& dir) {
  if (library == "graft_idx.so") {
    std::vector<uint8_t> pixels(6 * 4 * 4), labels{0, 1, 2, 3, 4, 5};
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
    for (const char* split : {"train", "t10k"}) {
      graft::test::write_idx_images(dir / (std::string(split) + "-images-idx3-ubyte.gz"), pixels, 6,
                                    4, 4, true);
      graft::test::write_idx_labels(dir / (std::string(split) + "-labels-idx1-ubyte.gz"), labels,
                                    true);
    }
    return "--options 'path = \"" + dir.string() + "\"'";
  }
  if (library == "graft_csv.so") {
    std::ofstream csv(dir / "rows.csv");
    csv << "a,b,label\n";
    for (int i = 0; i < 20; ++i) csv << i * 0.5 << "," << (i % 7) - 3 << "," << i % 3 << "\n";
    return "--options 'path = \"" + (dir / "rows.csv").string() + "\"'";
  }
  if (library == "graft_text.so") {
    std::ofstream text(dir / "lines.txt");
    for (int i = 0; i < 20; ++i) text << "line " << i << ": caf\u00e9 \u4e2d\n";
    return "--options 'path = \"" + (dir / "lines.txt").string() + "\"'";
  }
  if (library == "graft_tokens.so") {
    std::vector<uint16_t> ids(400);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint16_t>(i * 101 % 50257);
    graft::test::write_llmc_tokens(dir / "tokens.bin", ids);
    return "--options 'path = \"" + (dir / "tokens.bin").string() + "\"'";
  }
  return "";
}

}  // namespace

TEST_CASE("check-plugin passes every built-in plugin library") {
  const fs::path dir = graft::test::temp_dir("check_plugin_builtin");
  std::vector<fs::path> libraries;
  for (const auto& item : fs::directory_iterator(GRAFT_TEST_PLUGIN_DIR))
    if (item.path().extension() == ".so") libraries.push_back(item.path());
  std::sort(libraries.begin(), libraries.end());
  REQUIRE(libraries.size() >= 8);
  for (const fs::path& library : libraries) {
    const std::string file = library.filename().string();
    CAPTURE(file);
    auto r = run_graft("check-plugin " + library.string() + " " + dataset_options(file, dir));
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    CHECK(lines_starting(r.output, "FAIL").empty());
    CHECK(lines_starting(r.output, "PASS  library " + file + "  abi  ABI 1.").size() == 1);
    CHECK(r.output.find(" 0 failed") != std::string::npos);
    // Every plugin was checked beyond its options: at least one more line passed for each.
    const size_t passed = lines_starting(r.output, "PASS").size();
    const size_t plugins = lines_starting(r.output, "PASS  ").size() -
                           lines_starting(r.output, "PASS  library").size();
    CHECK(passed >= 3);
    CHECK(plugins >= 2);
  }
}

TEST_CASE("check-plugin --name checks one plugin of a library") {
  const std::string activations =
      (fs::path(GRAFT_TEST_PLUGIN_DIR) / "graft_activations.so").string();
  auto r = run_graft("check-plugin " + activations + " --name softmax");
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(lines_starting(r.output, "PASS  activation softmax  gradient").size() == 1);
  CHECK(r.output.find("activation relu") == std::string::npos);
}

TEST_CASE("check-plugin on linear: every kind of check, a chosen option, --options and --json") {
  const std::string linear = (fs::path(GRAFT_TEST_PLUGIN_DIR) / "graft_linear.so").string();
  auto r = run_graft("check-plugin " + linear);
  REQUIRE(r.exit_code == 0);
  for (const char* check :
       {"abi", "options", "gradient", "determinism", "dx_over_output", "save_load", "learns"})
    CHECK_MESSAGE(r.output.find("  " + std::string(check) + "  ") != std::string::npos, check);
  CHECK(r.output.find("units = 8 (required; chosen by the check)") != std::string::npos);
  CHECK(r.output.find("on (8,) and (4, 8) and (3, 8, 8)") != std::string::npos);
  CHECK(r.output.find("2 tensors (72 values)") != std::string::npos);  // W (8, 8) and b (8,)

  r = run_graft("check-plugin " + linear + " --options 'units = 16' --json");
  REQUIRE(r.exit_code == 0);
  const nlohmann::json results = nlohmann::json::parse(r.output);
  REQUIRE(results.is_array());
  bool saw_save_load = false, saw_learns = false;
  for (const auto& item : results) {
    for (const char* key : {"plugin", "kind", "check", "passed", "skipped", "value", "message"})
      CHECK_MESSAGE(item.contains(key), key);
    CHECK(item["passed"].get<bool>());
    if (item["check"] == "options") CHECK(item["message"] == "");  // units was given
    if (item["check"] == "save_load") {
      saw_save_load = true;
      CHECK(item["value"].get<std::string>().find("(144 values)") != std::string::npos);
    }
    if (item["check"] == "learns") {
      saw_learns = true;
      CHECK(item["value"].get<std::string>().find("needs 5x") != std::string::npos);
    }
  }
  CHECK(saw_save_load);
  CHECK(saw_learns);
}

TEST_CASE("check-plugin passes the fixture layer without a bug") {
  auto r = run_graft("check-plugin " + fixture("correct"));
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(lines_starting(r.output, "PASS  layer bad_correct  gradient").size() == 1);
}

TEST_CASE("check-plugin catches a backward whose dx is wrong by a factor") {
  auto r = run_graft("check-plugin " + fixture("dx_factor"));
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  layer bad_dx_factor  gradient");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("dx[") != std::string::npos);
  CHECK(failed[0].find("grad of weight") == std::string::npos);  // only dx is wrong
}

TEST_CASE("check-plugin catches a backward that ignores the bias") {
  auto r = run_graft("check-plugin " + fixture("no_bias_gradient"));
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  layer bad_no_bias_gradient  gradient");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("grad of bias") != std::string::npos);
  CHECK(failed[0].find("dx[") == std::string::npos);
}

TEST_CASE("check-plugin catches a forward that is not deterministic") {
  auto r = run_graft("check-plugin " + fixture("nondeterministic"));
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  layer bad_nondeterministic  determinism");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("forward gave different outputs") != std::string::npos);
}

TEST_CASE("check-plugin catches a layer flagged DX_OVER_OUTPUT that reads y after writing dx") {
  auto r = run_graft("check-plugin " + fixture("dx_over_output"));
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  layer bad_dx_over_output  dx_over_output");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("GRAFT_ENTRY_DX_OVER_OUTPUT") != std::string::npos);
  CHECK(failed[0].find("a different dx") != std::string::npos);
  // The same layer, unflagged, has no such line; every built-in flagged layer passes it.
  CHECK(run_graft("check-plugin " + fixture("correct")).output.find("dx_over_output") ==
        std::string::npos);
  for (const char* name : {"graft_dropout.so", "graft_flatten.so"}) {
    auto ok = run_graft("check-plugin " + (fs::path(GRAFT_TEST_PLUGIN_DIR) / name).string());
    CHECK_MESSAGE(lines_starting(ok.output, "PASS  layer").size() >= 1, ok.output);
    CHECK_MESSAGE(ok.output.find("  dx_over_output  ") != std::string::npos, ok.output);
    CHECK_MESSAGE(ok.output.find("FAIL") == std::string::npos, ok.output);
  }
}

TEST_CASE("check-plugin reports an ABI mismatch as a FAIL with the loader's reason") {
  auto r = run_graft("check-plugin " + fixture("abi_major", "graft_fixture.so"));
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  library graft_fixture.so  abi");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("ABI 99." + std::to_string(GRAFT_ABI_MINOR)) != std::string::npos);
  CHECK(failed[0].find("rebuild the plugin") != std::string::npos);
}

TEST_CASE(
    "check-plugin reports a forward that throws, with the plugin's name, and does not crash") {
  auto r = run_graft("check-plugin " + fixture("throws"));
  CHECK(r.exit_code == 1);  // not 128 + a signal
  auto failed = lines_starting(r.output, "FAIL  layer bad_throws");
  REQUIRE_MESSAGE(failed.size() >= 4, r.output);  // gradient, determinism, save_load, learns
  for (const std::string& line : failed) {
    CHECK(line.find("layer 'bad_throws'") != std::string::npos);
    CHECK(line.find("forward is broken on purpose (fixture)") != std::string::npos);
  }
  CHECK(r.output.find("graft_bad_layer.so: 2 checks passed") != std::string::npos);
}

TEST_CASE("check-plugin: usage errors exit 2, a required path it cannot choose fails the options") {
  const std::string linear = (fs::path(GRAFT_TEST_PLUGIN_DIR) / "graft_linear.so").string();
  auto r = run_graft("check-plugin /no/such/graft_x.so");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("no such file") != std::string::npos);
  r = run_graft("check-plugin " + linear + " --name linera");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("did you mean 'linear'?") != std::string::npos);
  r = run_graft("check-plugin " + linear + " --options 'units = '");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--options is not valid TOML") != std::string::npos);
  r = run_graft("check-plugin " + linear + " --options 'unit = 3'");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("did you mean 'units'?") != std::string::npos);

  const std::string csv = (fs::path(GRAFT_TEST_PLUGIN_DIR) / "graft_csv.so").string();
  r = run_graft("check-plugin " + csv);
  CHECK(r.exit_code == 1);
  auto failed = lines_starting(r.output, "FAIL  dataset csv  options");
  REQUIRE_MESSAGE(failed.size() == 1, r.output);
  CHECK(failed[0].find("give one with --options 'path = ...'") != std::string::npos);
}
