// The device mesh from a user's side: a bad degree under `mpirun graft train` fails on every
// rank with the key named and exit 2 (no rank left waiting), and `graft validate --world N`
// prints the mesh and each rank's coordinates.
#include <fstream>
#include <sstream>

#include "mpirun.hpp"
#include "run_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using graft::test::occurrences;

namespace {
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The bytes validate prints after `label` on rank `rank`'s memory line ("optimizer state
// 1.5 MiB"), or -1.
double bytes_after(const std::string& text, int rank, const std::string& label) {
  const size_t line = text.find("\nrank " + std::to_string(rank) + " ");
  if (line == std::string::npos) return -1;
  // In the memory split ("memory 17.9 MiB: parameters 523.3 KiB, gradients ..."), not the
  // count ("parameters 535818,") before it.
  size_t at = text.find(": " + label + " ", line);
  if (at == std::string::npos || text.find(", " + label + " ", line) < at)
    at = text.find(", " + label + " ", line);
  if (at == std::string::npos) return -1;
  at += 2;
  std::istringstream in(text.substr(at + label.size() + 1));
  double value = 0;
  std::string unit;
  in >> value >> unit;
  const double scale = unit.rfind("GiB", 0) == 0   ? 1073741824.0
                       : unit.rfind("MiB", 0) == 0 ? 1048576.0
                       : unit.rfind("KiB", 0) == 0 ? 1024.0
                                                   : 1.0;
  return value * scale;
}
}  // namespace

TEST_CASE("data = 3 on 4 ranks: every rank names [parallel] data and the job exits 2") {
  const std::string config = graft::test::config_path("sine_regression.toml");
  const std::string out = graft::test::temp_dir("dist_mesh_bad_degree").string();
  const auto run = graft::test::mpirun(
      4,
      std::string(GRAFT_EXECUTABLE) + " train " + config + " --set run.output_dir=" + out +
          " --set parallel.strategy=data_parallel" + " --set parallel.data=3",
      60);
  INFO(run.output);
  CHECK(run.exit_code == 2);
  CHECK(run.seconds < 30);
  for (int r = 0; r < 4; ++r)
    CHECK(contains(run.output, "graft train (rank " + std::to_string(r) + " of 4): error: "));
  CHECK(occurrences(run.output,
                    "[parallel] data: data 3 x pipeline 1 x tensor 1 is 3 rank(s), "
                    "but the job has 4") == 4);
  CHECK(!contains(run.output, "MPI_ABORT"));  // every rank failed alike: a clean end
}

TEST_CASE("graft validate --world 4 shows data_parallel as the mesh data 4") {
  const std::string config = graft::test::config_path("sine_regression.toml");
  const auto run = graft::test::run_graft("validate " + config +
                                          " --set parallel.strategy=data_parallel --world 4");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(contains(run.output, "mesh: data 4 (order tensor,data,pipeline), zero 0\n"));
  CHECK(contains(run.output, "placement on 4 rank(s), strategy data_parallel"));
  for (int r = 0; r < 4; ++r)
    CHECK(contains(run.output, "data " + std::to_string(r) + ", pipeline 0, tensor 0; parameters"));
  CHECK(contains(run.output, "memory "));
  CHECK(contains(run.output, ": parameters "));
  CHECK(contains(run.output, ", optimizer state "));
  CHECK(contains(run.output, "moves data "));
}

TEST_CASE("graft validate --world 8 prints a data 2 x pipeline 2 x tensor 2 mesh rank by rank") {
  const fs::path dir = graft::test::temp_dir("dist_mesh_validate");
  const fs::path config = dir / "mesh.toml";
  std::ofstream(config) << "[run]\nname = \"m\"\nsteps = 2\noutput_dir = \"" << dir.string()
                        << "\"\n[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 8\n"
                           "classes = 4\nsamples = 128\ntest_samples = 32\nbatch_size = 32\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                           "[[model.layers]]\ntype = \"relu\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                           "[[model.layers]]\ntype = \"relu\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                           "[loss]\ntype = \"cross_entropy\"\n"
                           "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                           "[parallel]\ndata = 2\npipeline = 2\ntensor = 2\nzero = 1\n";
  const auto run = graft::test::run_graft("validate " + config.string() + " --world 8");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(contains(run.output,
                 "mesh: data 2 x pipeline 2 x tensor 2 (order tensor,data,pipeline), "
                 "zero 1\n"));
  CHECK(contains(run.output, "placement on 8 rank(s), strategy mesh"));
  CHECK(occurrences(run.output, "\nrank ") == 8);
  CHECK(contains(run.output, "data 0, pipeline 0, tensor 1; parameters"));  // rank 1
  CHECK(contains(run.output, "data 0, pipeline 1, tensor 1; parameters"));  // rank 5
  CHECK(contains(run.output, "data 1, pipeline 1, tensor 1; parameters"));  // rank 7
  CHECK(!contains(run.output, "warning: "));  // tensor pairs are consecutive ranks
  // Eight ranks to a node of 2: a tensor group of ranks 0 and 1 still fits; with tensor slowest
  // it does not, and validate says so (the layout stays valid).
  const auto spread = graft::test::run_graft("validate " + config.string() +
                                             " --world 8 --ranks-per-node 2 "
                                             "--set parallel.order=data,pipeline,tensor");
  INFO(spread.output);
  CHECK(spread.exit_code == 0);
  CHECK(contains(spread.output, "warning: 4 tensor group(s) span more than one node of 2 ranks"));
  CHECK(contains(spread.output, "put tensor first in [parallel] order"));
}

TEST_CASE("validate shows ZeRO's split over the data ranks: state at 1, everything at 3") {
  const std::string config = graft::test::config_path("fashion_mlp.toml");
  const auto plain =
      graft::test::run_graft("validate " + config + " --world 4 --set parallel.data=4");
  const auto zero = graft::test::run_graft(
      "validate " + config + " --world 4 --set parallel.data=4 --set parallel.zero=1");
  INFO(plain.output);
  INFO(zero.output);
  REQUIRE(plain.exit_code == 0);
  REQUIRE(zero.exit_code == 0);
  for (int r = 0; r < 4; ++r) {
    const double whole = bytes_after(plain.output, r, "optimizer state");
    const double part = bytes_after(zero.output, r, "optimizer state");
    REQUIRE(whole > 0);
    // A quarter of the state (validate prints 2-3 significant digits; padding adds under a
    // float per part of each unit).
    CHECK(part >= whole / 4 * 0.95);
    CHECK(part <= whole / 4 * 1.05);
    CHECK(bytes_after(zero.output, r, "parameters") >= bytes_after(plain.output, r, "parameters"));
  }
  // zero 3 keeps a quarter of the gradients and parameters too (and windows units gather into).
  const auto three = graft::test::run_graft(
      "validate " + config + " --world 4 --set parallel.data=4 --set parallel.zero=3");
  INFO(three.output);
  REQUIRE(three.exit_code == 0);
  for (int r = 0; r < 4; ++r)
    for (const char* kind : {"parameters", "gradients", "optimizer state"}) {
      CAPTURE(kind);
      const double whole = bytes_after(plain.output, r, kind);
      const double part = bytes_after(three.output, r, kind);
      CHECK(part >= whole / 4 * 0.95);
      CHECK(part <= whole / 4 * 1.05);
    }
  CHECK(contains(three.output, "gather windows "));
}

TEST_CASE("a layout the model cannot have fails on every rank with the key, exit 2, no hang") {
  const std::string config = graft::test::config_path("fashion_mlp.toml");
  const std::string out = graft::test::temp_dir("dist_mesh_bad_layouts").string();
  const std::string base = std::string(GRAFT_EXECUTABLE) + " train " + config +
                           " --set run.steps=1 --set run.epochs=0 --set run.output_dir=" + out;
  struct Case {
    const char* set;
    const char* message;
  };
  // fashion_mlp's pair has 512 hidden features; 3 does not divide them.
  for (const Case& c :
       {Case{" --set parallel.tensor=3", "which do not split into 3 equal tensor-parallel parts"},
        Case{" --set parallel.pipeline=3 --set parallel.zero=3",
             "zero = 3 shards over the data axis, but data is 1: there is nothing to shard over"},
        Case{" --set parallel.strategy=data_parallel --set parallel.zero=1",
             "[parallel] zero: strategy 'data_parallel' shards nothing"}}) {
    CAPTURE(c.set);
    const auto run = graft::test::mpirun(3, base + c.set, 60);
    INFO(run.output);
    CHECK(run.exit_code == 2);
    CHECK(occurrences(run.output, c.message) == 3);
    CHECK(!contains(run.output, "MPI_ABORT"));
  }
}

TEST_CASE("validate warns when a stage's tensor ranks have no pair to split") {
  // fashion_mlp's one pair (linear 256, dropout, linear 10) sits in stage 1 of 2: stage 0's
  // tensor ranks would each compute the whole stage alike.
  const std::string config = graft::test::config_path("fashion_mlp.toml");
  const auto run = graft::test::run_graft(
      "validate " + config +
      " --world 8 --set parallel.data=2 --set parallel.pipeline=2 --set parallel.tensor=2");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(contains(run.output, "warning: tensor = 2, but pipeline stage(s) 0 hold no Megatron pair"));
  // configs/fashion_mlp_mesh.toml places a pair in each stage: no warning.
  const auto mesh =
      graft::test::run_graft("validate " + graft::test::config_path("fashion_mlp_mesh.toml"));
  INFO(mesh.output);
  CHECK(mesh.exit_code == 0);
  CHECK(contains(mesh.output, "mesh: data 2 x pipeline 2 x tensor 2"));
  CHECK(!contains(mesh.output, "warning: "));
}
