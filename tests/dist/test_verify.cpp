// `graft verify` as a user runs it: mpirun -np 2 starts it, rank 0 alone prints the table, and
// the exit code says whether every strategy matched single within the tolerance. It must pass
// data_parallel at 1e-5, fail it at 1e-12 (the ranks' partial sums reassociate single's, which
// float32 rounding shows), and fail a strategy that really differs (data_parallel with
// per-rank batch_norm statistics), so its comparison is known to see differences.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mpirun.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

// Blobs and an MLP with dropout; `parallel` and `layers` add lines to those tables.
fs::path write_config(const std::string& test, const std::string& parallel,
                      const std::string& layer = "") {
  const fs::path dir = graft::test::temp_dir(test);
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"v\"\nseed = 3\nsteps = 50\nthreads = 1\n"
                         "output_dir = \""
                      << (dir / "runs").string()
                      << "\"\n"
                         "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 6\n"
                         "classes = 3\nsamples = 300\ntest_samples = 30\nbatch_size = 30\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 32\nactivation = \"relu\"\n"
                      << layer
                      << "[[model.layers]]\ntype = \"dropout\"\np = 0.1\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 3\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                         "[parallel]\nstrategy = \"data_parallel\"\n"
                      << parallel;
  return file;
}

// The words of the table line that starts with `strategy`, or none.
std::vector<std::string> table_line(const std::string& output, const std::string& strategy) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(strategy + " ", 0) != 0) continue;
    std::istringstream words(line);
    std::vector<std::string> out;
    for (std::string w; words >> w;) out.push_back(w);
    return out;
  }
  return {};
}

graft::test::MpiRun verify(const fs::path& config, const std::string& flags) {
  return graft::test::mpirun(2, std::string(GRAFT_EXECUTABLE) + " verify " + config.string() +
                                    " --plugin-dir " GRAFT_TEST_PLUGIN_DIR " " + flags);
}

}  // namespace

TEST_CASE("graft verify passes data_parallel against single, and rank 0 alone reports") {
  const fs::path config = write_config("verify_pass", "bucket_mb = 0.001\n");
  const auto run = verify(config, "--strategies single,data_parallel --steps 8");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(graft::test::occurrences(run.output, "element diff") == 1);  // one table: rank 0's
  CHECK(graft::test::occurrences(run.output, "PASS") == 1);
  const auto words = table_line(run.output, "data_parallel");
  REQUIRE(words.size() >= 6);
  CHECK(words[1] == "2");  // ranks
  CHECK(std::stod(words[2]) <= 1e-5);
  CHECK(std::stod(words[3]) <= 1e-5);
  CHECK(std::stod(words[3]) > 0.0);  // float32 reassociation shows: the comparison sees it
  CHECK(words[5] == "PASS");
  CHECK(run.output.find("FAIL") == std::string::npos);
  // Nothing was written: verify leaves no run folders behind.
  CHECK(!fs::exists(config.parent_path() / "runs" / "v" / "metrics.jsonl"));
}

TEST_CASE("graft verify fails data_parallel at a tolerance below float32 rounding") {
  const fs::path config = write_config("verify_tight", "");
  const auto run = verify(config, "--strategies data_parallel --steps 8 --tolerance 1e-12");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(graft::test::occurrences(run.output, "FAIL") == 1);
  CHECK(run.output.find("single") != std::string::npos);  // the reference is always there
}

TEST_CASE("graft verify fails a strategy that is not equivalent") {
  // Each rank normalises with its own rows' statistics: allowed by the option, but not single.
  const fs::path config = write_config("verify_batch_norm", "allow_local_batch_norm = true\n",
                                       "[[model.layers]]\ntype = \"batch_norm\"\n");
  const auto run = verify(config, "--strategies single,data_parallel --steps 8");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(graft::test::occurrences(run.output, "FAIL") == 1);
}

TEST_CASE("graft verify refuses bad arguments") {
  const fs::path config = write_config("verify_usage", "");
  auto run = graft::test::run_graft("verify " + config.string() + " --steps 0");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("--steps") != std::string::npos);
  run = graft::test::run_graft("verify " + config.string() + " --strategies single,no_such");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("no_such") != std::string::npos);
}
