// A small MPI job that misbehaves on purpose, for test_watchdog.cpp: run as
// `mpirun -np N test_watchdog_job MODE`. Every mode first completes a barrier and an
// all-reduce, so reports have a "last completed" to name; then rank 1 misbehaves.
#include <chrono>
#include <cstdlib>
#include <thread>

#include "cli/common.hpp"
#include "parallel/mesh.hpp"

using graft::runtime::Communicator;
using graft::runtime::Job;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "ok";
  return graft::cli::run_job_command("watchdog-test", [&](Job& job) {
    job.set_timeout(2);  // what [parallel] timeout_s = 2 does
    Communicator& world = job.world();
    const int rank = world.rank();
    double value = 1;
    world.barrier("warm-up");
    world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "first");
    const auto stall = [] { std::this_thread::sleep_for(std::chrono::seconds(60)); };

    if (mode == "stall") {  // rank 1 computes "forever" outside MPI
      if (rank == 1) stall();
      world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "loss sums");
    } else if (mode == "recv") {  // rank 0 waits for a message rank 1 never sends
      float x = 0;
      int64_t shape[1] = {1};
      DLTensor t{&x, {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, shape, nullptr, 0};
      if (rank == 0) world.recv(t, 1, 5, "stage 1 -> 0 gradients");
      if (rank == 1) stall();
    } else if (mode == "exit") {  // rank 1 leaves without a word
      if (rank == 1) std::exit(3);
      world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "after exit");
    } else if (mode == "abort") {  // rank 1 crashes
      if (rank == 1) std::abort();
      world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "after abort");
    } else if (mode == "fail") {  // rank 1 fails as training can, while the others wait
      if (rank == 1) throw graft::runtime::Failure("rank 1 failed on purpose");
      world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "waiting for rank 1");
    } else if (mode == "fail_in_flight") {  // rank 1 fails with an all-reduce it started
      float x = 1;
      int64_t shape[1] = {1};
      DLTensor t{&x, {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, shape, nullptr, 0};
      if (rank != 1) std::this_thread::sleep_for(std::chrono::seconds(3));  // computing
      auto request = world.all_reduce_start(t, GRAFT_REDUCE_SUM, "gradient bucket 0");
      if (rank == 1) throw graft::runtime::Failure("rank 1 failed with a bucket in flight");
      request->wait();
      world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "loss sums");
    } else if (mode == "mismatch") {  // a strategy bug: rank 1 calls another collective
      if (rank == 1)
        world.barrier("step end");
      else
        world.all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "loss sums");
    } else if (mode == "group") {  // 4 ranks, data 2 x tensor 2: rank 1 stalls, its data
                                   // group partner (rank 3) waits on that group alone
      graft::runtime::MeshShape shape;
      shape.degree = {2, 1, 2};
      graft::runtime::Mesh mesh(shape, rank, &world);
      job.set_rank_labels(graft::runtime::rank_labels(shape));
      if (rank == 1) stall();
      mesh.axis(GRAFT_AXIS_DATA)->all_reduce_f64(&value, 1, GRAFT_REDUCE_SUM, "gradient bucket 2");
      if (rank != 3) stall();         // so that rank 3's report is the only one
    } else if (mode == "fail_all") {  // every rank finds the same mistake, as with a bad config
      throw graft::runtime::UserError("the same mistake on every rank");
    }
    std::printf("rank %d done\n", rank);
    return 0;
  });
}
