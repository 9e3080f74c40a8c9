// The mesh trains as single does: `mpirun -np N graft verify --layouts` over a model whose
// Megatron pairs sit inside each pipeline stage, for every pair of axes and the triple, both
// schedules, and ZeRO 1, 2 and 3 with units of ~130 floats (many units, padding in most). verify
// fails (exit 1) when a layout's losses or parameters after 20 steps differ from single's by more
// than relative 1e-5; clipping by the global norm is on, so the norm's sums over the groups
// (and, under ZeRO, over the data ranks' parts) are checked too. The full matrix (every
// factorization of 4 and 8 ranks) is the bench test bench/mesh_verify_matrix.
#include <fstream>

#include "mpirun.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

// 7 top-level layers: pipeline 2 balances them as layers 0..2 and 3..6, and each stage holds
// one pair (0-2 and 3-4) that tensor 2 splits; dropout runs on parts between them.
fs::path write_config(const fs::path& dir) {
  const fs::path file = dir / "config.toml";
  std::ofstream(file) << "[run]\nname = \"r\"\nseed = 5\nthreads = 1\nprogress = \"none\"\n"
                         "clip_grad_norm = 0.5\n"
                         "output_dir = \""
                      << dir.string()
                      << "\"\n[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 12\n"
                         "classes = 4\nsamples = 400\ntest_samples = 50\nbatch_size = 24\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 16\n"
                         "[[model.layers]]\ntype = \"relu\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 12\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 8\nactivation = \"tanh\"\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 10\n"
                         "[[model.layers]]\ntype = \"dropout\"\np = 0.2\n"
                         "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                         "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                         "[parallel]\nstrategy = \"mesh\"\nbucket_mb = 0.0005\nmicro_batches = 3\n";
  return file;
}

graft::test::MpiRun verify(int ranks, const fs::path& config, const std::string& layouts) {
  return graft::test::mpirun(ranks,
                             std::string(GRAFT_EXECUTABLE) + " verify " + config.string() +
                                 " --plugin-dir " GRAFT_TEST_PLUGIN_DIR " --steps 20 --layouts " +
                                 layouts,
                             600);
}

void check_passes(const graft::test::MpiRun& r, int layouts) {
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(graft::test::occurrences(r.output, "  PASS") == layouts);
  CHECK(graft::test::occurrences(r.output, "FAIL") == 0);
}

}  // namespace

TEST_CASE("every pair of axes on 4 ranks, with both schedules and ZeRO 1-3, trains as single") {
  const fs::path dir = graft::test::temp_dir("dist_mesh_verify_4");
  const fs::path config = write_config(dir);
  check_passes(verify(4, config,
                      "2x2x1,2x2x1:z1:gpipe,2x2x1:z2,2x2x1:z3,2x1x2,2x1x2:z1,2x1x2:z2,2x1x2:z3,"
                      "1x2x2:1f1b,1x2x2:gpipe,4x1x1:z1,4x1x1:z2,4x1x1:z3:gpipe"),
               13);
}

TEST_CASE("data x pipeline x tensor on 8 ranks, with and without ZeRO, trains as single") {
  const fs::path dir = graft::test::temp_dir("dist_mesh_verify_8");
  const fs::path config = write_config(dir);
  check_passes(verify(8, config, "2x2x2,2x2x2:z1,2x2x2:z2:gpipe,2x2x2:z3,2x2x2:z3:gpipe"), 5);
}
