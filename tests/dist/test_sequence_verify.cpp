// A GPT (attention, positional embeddings, per-position linears, residual blocks) trains to
// single's losses and parameters under data_parallel, pipeline (blocks as stages),
// tensor_parallel (each block split as a pair: attention by heads, the MLP as Megatron's
// linears) and mesh layouts of all three axes with ZeRO: `graft verify` at its default
// tolerance (1e-5 relative) over 20 steps.
#include <string>

#include "mpirun.hpp"
#include "test_support.hpp"
#include "tiny_gpt.hpp"

using graft::test::has;

TEST_CASE("a GPT matches single under every strategy and mesh layout") {
  const auto dir = graft::test::temp_dir("sequence_verify");
  const std::string config = graft::test::write_tiny_gpt(dir).string();
  const std::string graft = std::string(GRAFT_EXECUTABLE);
  auto two = graft::test::mpirun(2, graft + " verify " + config +
                                        " --strategies single,data_parallel,pipeline,"
                                        "tensor_parallel --steps 20");
  CHECK_MESSAGE(two.exit_code == 0, two.output);
  CHECK(has(two.output, "tensor_parallel"));
  auto four = graft::test::mpirun(
      4,
      graft + " verify " + config +
          " --layouts 2x2x1:z1:1f1b,4x1x1:z3,2x1x2,1x2x2:1f1b,2x1x2:z3 --steps 20",
      300);
  CHECK_MESSAGE(four.exit_code == 0, four.output);
  CHECK(has(four.output, "mesh 2x1x2 z3"));
}

// Tied across stages (pipeline, mesh 2x2x1) each stage keeps a copy of the table and the
// strategy sums the two gradients; within a rank (the rest) it is one tensor. ZeRO with a tie
// across stages is refused: its gradients are parts by the time the copies would be summed.
TEST_CASE("a GPT with its output projection tied to its embedding matches single everywhere") {
  const auto dir = graft::test::temp_dir("sequence_verify_tied");
  const std::string config = graft::test::write_tiny_gpt(dir, "", /*tied=*/true).string();
  const std::string graft = std::string(GRAFT_EXECUTABLE);
  auto two = graft::test::mpirun(2, graft + " verify " + config +
                                        " --strategies single,data_parallel,pipeline,"
                                        "tensor_parallel --steps 20");
  CHECK_MESSAGE(two.exit_code == 0, two.output);
  CHECK(has(two.output, "pipeline"));
  auto four = graft::test::mpirun(
      4, graft + " verify " + config + " --layouts 2x2x1:1f1b,1x2x2,4x1x1:z1,2x1x2 --steps 20",
      300);
  CHECK_MESSAGE(four.exit_code == 0, four.output);
  CHECK(has(four.output, "mesh 1x2x2"));
  auto zero = graft::test::mpirun(
      4, graft + " train " + config + " --set parallel.strategy=\"mesh\" --set parallel.data=2 " +
             "--set parallel.pipeline=2 --set parallel.zero=1");
  CHECK(zero.exit_code != 0);
  CHECK(has(zero.output, "tie.weight"));
  CHECK(has(zero.output, "zero = 0"));
}

TEST_CASE("a GPT's blocks are split by heads, and heads a layout cannot split are named") {
  const auto dir = graft::test::temp_dir("sequence_split");
  const std::string config = graft::test::write_tiny_gpt(dir).string();
  auto placed = graft::test::run_graft("validate " + config +
                                       " --world 2 --set parallel.strategy=\"tensor_parallel\"");
  CHECK_MESSAGE(placed.exit_code == 0, placed.output);
  CHECK(has(placed.output, "2 residual (pair 1/2), 3 residual (pair 1/2)"));
  CHECK(has(placed.output, "2 residual (pair 2/2), 3 residual (pair 2/2)"));
  auto uneven = graft::test::mpirun(4, std::string(GRAFT_EXECUTABLE) + " train " + config +
                                           " --set parallel.strategy=\"tensor_parallel\"");
  CHECK(uneven.exit_code != 0);
  CHECK(has(uneven.output, "heads = 2 does not split into 4"));
}
