// The NCCL communicator on one GPU: a world of one over the local host communicator. Every
// collective on GPU tensors, its ordering against the compute stream both ways, a started
// all-reduce that leaves the host free, split, host tensors passed through, and no allocation
// once warmed up. Exits 77 (skipped) without a GPU or without the NCCL module.
// (test_nccl_comm_ranks.cpp runs the same across ranks on two GPUs.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <chrono>
#include <cstdlib>

#include "comm/local.hpp"
#include "comm/nccl/nccl_loader.hpp"
#include "count_allocations.hpp"
#include "gpu_support.hpp"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::test::Tensor;

using graft::gpu_test::check_equal;
using graft::gpu_test::filled;

namespace {

std::unique_ptr<rt::LocalCommunicator> g_host;
std::unique_ptr<rt::Communicator> g_comm;  // NCCL over g_host
bool g_user_algo = false;                  // NCCL_ALGO was set before the start

rt::Communicator& comm() { return *g_comm; }

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void ok(graft_status* s, const char* what) { rt::throw_if_failed(s, what); }

// Keeps the compute stream busy for a while (float32 products, TF32 off), so work that does
// not wait for it shows.
struct Busy {
  Busy() : a(Tensor({kSide, kSide})), b(Tensor({kSide, kSide})) {}
  void queue(int products) {
    const graft_exec_ctx ctx = graft::gpu_test::gpu_context();
    for (int i = 0; i < products; ++i)
      ok(rt::host_api()->gemm(&ctx, 0, 0, 1e-4f, &a.tensor, &a.tensor, 0.0f, &b.tensor), "gemm");
  }
  static constexpr int64_t kSide = 4096;
  Gpu a, b;
};

void synchronize() { ok(rt::cuda_device()->synchronize(), "synchronize"); }

}  // namespace

TEST_CASE("a world of one: every collective on GPU tensors gives the inputs back") {
  REQUIRE(comm().size() == 1);
  const Tensor x = filled(
      1000, [](int, int64_t i) { return float(i) * 0.5f - 7.0f; }, 0);
  for (graft_reduce_op op : {GRAFT_REDUCE_SUM, GRAFT_REDUCE_AVG}) {
    Gpu t(x);
    comm().all_reduce(t.tensor, op, "values");
    check_equal(t.host(), x);
    Gpu started(x);
    comm().all_reduce_start(started.tensor, op, "bucket")->wait();
    check_equal(started.host(), x);
    Gpu out(Tensor({1000}));
    comm().reduce_scatter(t.tensor, out.tensor, op, "parts");
    check_equal(out.host(), x);
  }
  Gpu b(x);
  comm().broadcast(b.tensor, 0, "weights");
  check_equal(b.host(), x);
  Gpu in(x), out(Tensor({1000}));
  comm().all_gather(in.tensor, out.tensor, "gathered");
  check_equal(out.host(), x);
  comm().all_gather(out.tensor, out.tensor, "in place");  // `in` is this rank's part of `out`
  check_equal(out.host(), x);
}

TEST_CASE("host tensors and all_reduce_f64 go to the host communicator unchanged") {
  Tensor x = filled(
             4, [](int, int64_t i) { return float(i); }, 0),
         want = x;
  comm().all_reduce(*x.get(), GRAFT_REDUCE_SUM, "host values");
  comm().all_reduce_start(*x.get(), GRAFT_REDUCE_AVG, "host bucket")->wait();
  comm().broadcast(*x.get(), 0, "host weights");
  check_equal(x, want);
  double sums[2] = {1.5, -2.0};
  comm().all_reduce_f64(sums, 2, GRAFT_REDUCE_SUM, "loss sums");
  CHECK(sums[0] == 1.5);
  comm().barrier("barrier");
}

TEST_CASE("misuse is a UserError naming the call") {
  Gpu t(filled(
      8, [](int, int64_t) { return 1.0f; }, 0));
  Tensor host({8});
  Gpu ints(Tensor({8}, DLDataType{kDLInt, 32, 1}));
  CHECK_THROWS_WITH_AS(comm().send(t.tensor, 0, 0, "self"),
                       doctest::Contains("send 'self': rank 0 is this rank itself"), rt::UserError);
  CHECK_THROWS_WITH_AS(comm().all_gather(t.tensor, *host.get(), "mixed"),
                       doctest::Contains("both be in GPU memory or both in host memory"),
                       rt::UserError);
  CHECK_THROWS_WITH_AS(comm().all_reduce(ints.tensor, GRAFT_REDUCE_SUM, "ints"),
                       doctest::Contains("all_reduce 'ints': reductions take float32"),
                       rt::UserError);
  CHECK_THROWS_WITH_AS(comm().broadcast(t.tensor, 1, "root"),
                       doctest::Contains("broadcast 'root': rank 1 is outside"), rt::UserError);
}

TEST_CASE("NCCL waits for the compute stream's work, and the compute stream for NCCL's") {
  Busy busy;
  Gpu in(Tensor({1 << 20})), out(Tensor({1 << 20}));
  const graft_exec_ctx ctx = graft::gpu_test::gpu_context();
  busy.queue(30);
  ok(rt::host_api()->fill(&ctx, &in.tensor, 7.0f), "fill");
  // Were NCCL not to wait for the fill, it would gather zeros; were the copy below (on the
  // compute stream) not to wait for NCCL, it would read `out` before the gather wrote it.
  comm().all_gather(in.tensor, out.tensor, "after the fill");
  check_equal(out.host(), filled(
                              1 << 20, [](int, int64_t) { return 7.0f; }, 0));
}

TEST_CASE("all_reduce_start returns before the GPU is done; wait() orders what follows") {
  Busy busy;
  Gpu t(Tensor({1 << 20}));
  const graft_exec_ctx ctx = graft::gpu_test::gpu_context();
  comm().all_reduce_start(t.tensor, GRAFT_REDUCE_SUM, "warm-up")->wait();
  synchronize();
  const auto begin = Clock::now();
  busy.queue(30);
  ok(rt::host_api()->fill(&ctx, &t.tensor, 3.0f), "fill");
  const auto before_start = Clock::now();
  std::unique_ptr<rt::CommRequest> request =
      comm().all_reduce_start(t.tensor, GRAFT_REDUCE_AVG, "bucket");
  const double start_seconds = since(before_start);
  request->wait();
  const Tensor got = t.host();  // a copy on the compute stream, after the wait
  const double total = since(begin);
  MESSAGE("all_reduce_start took " << start_seconds * 1e3 << " ms of " << total * 1e3 << " ms");
  CHECK(start_seconds < 0.25 * total);
  check_equal(got, filled(
                       1 << 20, [](int, int64_t) { return 3.0f; }, 0));
}

TEST_CASE("split gives a communicator of one that works the same") {
  rt::Communicator& child = comm().split(0, 0);
  CHECK(child.rank() == 0);
  CHECK(child.size() == 1);
  const Tensor x = filled(
      64, [](int, int64_t i) { return float(i); }, 0);
  Gpu t(x);
  child.all_reduce(t.tensor, GRAFT_REDUCE_AVG, "on the split");
  check_equal(t.host(), x);
  CHECK(&comm().split(1, 0) != &child);
}

TEST_CASE("deterministic mode asked NCCL for its ring algorithm unless the user chose one") {
  const char* algo = std::getenv("NCCL_ALGO");
  REQUIRE(algo != nullptr);
  if (!g_user_algo) CHECK(std::string(algo) == "Ring");
}

TEST_CASE("a warmed-up all_reduce_start / wait loop allocates nothing") {
  Gpu t(Tensor({4096}));
  const graft_exec_ctx ctx = graft::gpu_test::gpu_context();
  auto step = [&] {
    ok(rt::host_api()->fill(&ctx, &t.tensor, 1.0f), "fill");
    std::unique_ptr<rt::CommRequest> bucket =
        comm().all_reduce_start(t.tensor, GRAFT_REDUCE_AVG, "bucket");
    comm().all_reduce(t.tensor, GRAFT_REDUCE_SUM, "blocking");
    bucket->wait();
    bucket.reset();
    synchronize();
  };
  for (int i = 0; i < 3; ++i) step();
  const long before = graft::test::g_allocations.load();
  for (int i = 0; i < 50; ++i) step();
  CHECK(graft::test::g_allocations.load() - before == 0);
}

int main(int argc, char** argv) {
  if (!rt::nccl_built()) {
    std::printf(
        "skipped: this build has no NCCL communicator (NCCL was not found when it was "
        "configured)\n");
    return 77;
  }
  try {
    std::printf("GPU: %s\n", rt::start_cuda(rt::cuda::Options{}).describe().c_str());
  } catch (const rt::UserError& e) {
    std::printf("skipped: %s\n", e.what());
    return 77;
  }
  g_user_algo = std::getenv("NCCL_ALGO") != nullptr;
  g_host = std::make_unique<rt::LocalCommunicator>();
  try {
    rt::NcclOptions options;
    options.compute_stream = rt::cuda_device()->stream();
    options.deterministic = true;
    options.timeout_s = 120;
    g_comm = rt::start_nccl(*g_host, options);
  } catch (const std::exception& e) {
    std::printf("FAILED: the NCCL communicator did not start on this GPU: %s\n", e.what());
    return 1;
  }
  doctest::Context context(argc, argv);
  const int code = context.run();
  g_comm.reset();  // before the host communicator it wraps
  return code;
}
