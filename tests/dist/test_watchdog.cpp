// The watchdog and failure handling, each case a real MPI job run under a time limit: a rank
// that stalls, waits for a message that never comes, exits, crashes or fails ends the job
// within seconds, with a message saying which rank and where, and no rank left waiting.
#include "mpirun.hpp"
#include "test_support.hpp"

using graft::test::mpirun;
using graft::test::occurrences;

namespace {
graft::test::MpiRun job(int ranks, const std::string& mode) {
  graft::test::MpiRun run = mpirun(ranks, std::string(GRAFT_WATCHDOG_JOB) + " " + mode, 60);
  INFO("mode ", mode, " on ", ranks, " ranks, exit ", run.exit_code, " after ", run.seconds,
       " s:\n", run.output);
  CHECK(run.exit_code != 124);  // the time limit did not have to end it
  return run;
}
}  // namespace

TEST_CASE("a well-behaved job ends cleanly") {
  auto run = job(3, "ok");
  CHECK(run.exit_code == 0);
  CHECK(occurrences(run.output, " done\n") == 3);
}

TEST_CASE("a rank that stalls outside MPI is named, with its last collective") {
  auto run = job(3, "stall");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);  // timeout 2 s + 2 s asking + start-up, not rank 1's 60 s
  // One report, from the lowest waiting rank, though ranks 0 and 2 both waited.
  CHECK(occurrences(run.output, "graft: watchdog on rank") == 1);
  CHECK(run.output.find("graft: watchdog on rank 0: waited") != std::string::npos);
  CHECK(run.output.find("in all_reduce_f64 #3 'loss sums' on world, more than [parallel] "
                        "timeout_s = 2.0 s") != std::string::npos);
  CHECK(run.output.find("ranks that have not joined: 1\n") != std::string::npos);
  CHECK(run.output.find("rank 1: in no collective or receive (busy") != std::string::npos);
  CHECK(run.output.find("last completed: all_reduce_f64 #2 'first' on world") != std::string::npos);
  CHECK(run.output.find("rank 2: waiting") != std::string::npos);
}

TEST_CASE("a hang on a mesh group names the group, and ranks by their place on the mesh") {
  auto run = job(4, "group");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);
  CHECK(occurrences(run.output, "graft: watchdog on rank") == 1);
  CHECK(run.output.find("graft: watchdog on rank 3 (data 1, pipeline 0, tensor 1): waited") !=
        std::string::npos);
  CHECK(run.output.find("in all_reduce_f64 #1 'gradient bucket 2' on the data group, more than") !=
        std::string::npos);
  CHECK(run.output.find("ranks that have not joined: 1 (data 0, pipeline 0, tensor 1)\n") !=
        std::string::npos);
  CHECK(run.output.find("rank 1 (data 0, pipeline 0, tensor 1): in no collective") !=
        std::string::npos);
}

TEST_CASE("a receive whose sender never sends names the sender") {
  auto run = job(2, "recv");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);
  CHECK(run.output.find("in recv from rank 1 'stage 1 -> 0 gradients' on world") !=
        std::string::npos);
  CHECK(run.output.find("ranks that have not joined: 1\n") != std::string::npos);
}

TEST_CASE("ranks in different collectives are reported as a mismatch") {
  auto run = job(2, "mismatch");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);
  CHECK(run.output.find("ranks that have not joined: 1\n") != std::string::npos);
  CHECK(run.output.find("in a different collective with the same number: 1 (") !=
        std::string::npos);
  CHECK(run.output.find("rank 1: waiting") != std::string::npos);
  CHECK(run.output.find("in barrier #3 'step end' on world") != std::string::npos);
}

TEST_CASE("a rank that exits or crashes takes the job down") {
  for (const char* mode : {"exit", "abort"}) {
    auto run = job(3, mode);
    INFO(run.output);
    CHECK(run.exit_code != 0);
    CHECK(run.seconds < 20);
    if (std::string(mode) == "exit")  // graft's exit hook names the rank
      CHECK(run.output.find("graft: rank 1 of 3 is exiting while the job runs") !=
            std::string::npos);
    else  // mpirun does
      CHECK(run.output.find("process rank 1 with PID") != std::string::npos);
    CHECK(run.output.find(" done\n") == std::string::npos);
  }
}

TEST_CASE("a rank that fails alone prints its error and aborts the waiting ranks") {
  auto run = job(3, "fail");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);
  CHECK(run.output.find("graft watchdog-test (rank 1 of 3): failed: rank 1 failed on purpose") !=
        std::string::npos);
}

TEST_CASE("a rank that fails with an operation in flight still reports and ends the job") {
  auto run = job(3, "fail_in_flight");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 20);
  CHECK(run.output.find("graft watchdog-test (rank 1 of 3): failed: rank 1 failed with a bucket "
                        "in flight") != std::string::npos);
}

TEST_CASE("when every rank fails alike, each prints its error and the job exits with its code") {
  auto run = job(3, "fail_all");
  INFO(run.output);
  CHECK(run.exit_code == 2);
  CHECK(run.seconds < 20);
  for (int r = 0; r < 3; ++r)
    CHECK(run.output.find("graft watchdog-test (rank " + std::to_string(r) +
                          " of 3): error: the same mistake on every rank") != std::string::npos);
  CHECK(run.output.find("MPI_ABORT") == std::string::npos);  // ended cleanly, not aborted
}

TEST_CASE("a bad [parallel] table under mpirun graft train: the error on every rank, exit 2") {
  const std::string config = std::string(GRAFT_SOURCE_DIR) + "/configs/sine_regression.toml";
  const std::string out = graft::test::temp_dir("dist_bad_parallel").string();
  for (const char* set : {"parallel.timeout_s=-1", "parallel.timeout_seconds=5"}) {
    auto run = mpirun(2,
                      std::string(GRAFT_EXECUTABLE) + " train " + config +
                          " --set run.output_dir=" + out + " --set " + set,
                      60);
    INFO(set, ": exit ", run.exit_code, "\n", run.output);
    CHECK(run.exit_code == 2);
    CHECK(run.seconds < 20);
    for (int r = 0; r < 2; ++r)
      CHECK(run.output.find("graft train (rank " + std::to_string(r) + " of 2): error:") !=
            std::string::npos);
    CHECK(run.output.find("[parallel]") != std::string::npos);
  }
}
