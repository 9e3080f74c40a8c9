// A GPT (attention, positional embeddings, per-position linears, residual blocks) trains to
// single's losses and parameters under data_parallel, pipeline (blocks as stages) and the mesh
// with ZeRO: `graft verify` at its default tolerance (1e-5 relative) over 20 steps.
#include <string>

#include "mpirun.hpp"
#include "test_support.hpp"
#include "tiny_gpt.hpp"

TEST_CASE("a GPT matches single under data_parallel, pipeline and mesh layouts") {
  const auto dir = graft::test::temp_dir("sequence_verify");
  const std::string config = graft::test::write_tiny_gpt(dir).string();
  auto two = graft::test::mpirun(2, std::string(GRAFT_EXECUTABLE) + " verify " + config +
                                        " --strategies single,data_parallel,pipeline --steps 20");
  CHECK_MESSAGE(two.exit_code == 0, two.output);
  CHECK(graft::test::has(two.output, "data_parallel"));
  auto four = graft::test::mpirun(4,
                                  std::string(GRAFT_EXECUTABLE) + " verify " + config +
                                      " --layouts 2x2x1,2x2x1:z1:1f1b,4x1x1:z2,4x1x1:z3 --steps 20",
                                  300);
  CHECK_MESSAGE(four.exit_code == 0, four.output);
  CHECK(graft::test::has(four.output, "mesh 4x1x1 z3"));
}
