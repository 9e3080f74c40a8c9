// The NCCL watchdog's bookkeeping (comm/nccl/pending_ops.hpp), with fake events in place of
// CUDA's so it runs without a GPU: completed operations hand their events back in order, the
// oldest overdue one is the one reported, the report names it and the fix, and a warmed-up
// record / sweep cycle allocates nothing.
#include "comm/nccl/pending_ops.hpp"
#include "count_allocations.hpp"
#include "test_support.hpp"

namespace nccl = graft::runtime::nccl;
using Clock = nccl::PendingOps<int>::Clock;
using std::chrono::seconds;

namespace {

struct FakeEvent {
  bool done = false;
  int released = 0;
};

nccl::OpRecord op(const char* call, int64_t seq, const char* what, int32_t peer = -1) {
  nccl::OpRecord r;
  r.seq = seq;
  r.peer = peer;
  nccl::copy_text(r.call, sizeof r.call, call);
  nccl::copy_text(r.comm, sizeof r.comm, "world");
  nccl::copy_text(r.what, sizeof r.what, what);
  return r;
}

// Sweeps with the fake events' flags; returns the overdue operation, if any.
std::optional<nccl::PendingOps<FakeEvent>::Overdue> sweep(nccl::PendingOps<FakeEvent>& pending,
                                                          Clock::time_point now, double timeout) {
  return pending.sweep(
      now, timeout, [](FakeEvent* e) { return e->done; }, [](FakeEvent* e) { ++e->released; });
}

}  // namespace

TEST_CASE("operations are described as the MPI watchdog describes them") {
  CHECK(nccl::describe(op("all_reduce", 3, "loss")) == "all_reduce #3 'loss' on world");
  CHECK(nccl::describe(op("send_start", 0, "stage 0 -> 1", 1)) ==
        "send_start to rank 1 'stage 0 -> 1' on world");
  CHECK(nccl::describe(op("recv", 0, "", 2)) == "recv from rank 2 on world");
  nccl::OpRecord cut;
  nccl::copy_text(cut.call, sizeof cut.call, "a call name much longer than twenty-four bytes");
  CHECK(std::string(cut.call) == "a call name much longer");  // 23 bytes and the end
}

TEST_CASE("completed operations give their events back; running ones stay until overdue") {
  nccl::PendingOps<FakeEvent> pending(4);
  FakeEvent a, b, c;
  const Clock::time_point t0 = Clock::now();
  pending.add(&a, op("all_reduce_start", 1, "bucket 0"), t0);
  pending.add(&b, op("all_reduce_start", 2, "bucket 1"), t0 + seconds(1));
  pending.add(&c, op("broadcast", 3, "weights"), t0 + seconds(2));
  CHECK(!sweep(pending, t0 + seconds(3), 10.0));
  CHECK(pending.size() == 3);

  b.done = true;  // streams finish out of order: the collectives' before a send's
  CHECK(!sweep(pending, t0 + seconds(4), 10.0));
  CHECK(b.released == 1);
  CHECK(pending.size() == 2);

  // Both a and c are past 1.5 s; a, queued first, is the one reported.
  const auto overdue = sweep(pending, t0 + seconds(5), 1.5);
  REQUIRE(overdue);
  CHECK(nccl::describe(overdue->op) == "all_reduce_start #1 'bucket 0' on world");
  CHECK(overdue->seconds == doctest::Approx(5.0));
  CHECK(overdue->in_flight == 2);

  a.done = c.done = true;
  CHECK(!sweep(pending, t0 + seconds(100), 1.5));
  CHECK(pending.size() == 0);
  CHECK((a.released == 1 && b.released == 1 && c.released == 1));
}

TEST_CASE("the report names the stuck operation, what waits behind it, and the fix") {
  const std::string text =
      nccl::overdue_report(3, op("all_reduce_start", 12, "gradient bucket 2"), 301.04, 4, 300);
  INFO(text);
  CHECK(text.find("graft: NCCL watchdog on rank 3: all_reduce_start #12 'gradient bucket 2' on "
                  "world has not completed on the GPU after 301.0 s, more than [parallel] "
                  "timeout_s = 300.0 s") == 0);
  CHECK(text.find("3 later NCCL operation(s) of this rank wait behind it") != std::string::npos);
  CHECK(text.find("raise [parallel] timeout_s") != std::string::npos);
  const std::string alone = nccl::overdue_report(0, op("recv", 0, "x", 1), 9, 1, 5);
  CHECK(alone.find("wait behind it") == std::string::npos);
  const std::string async =
      nccl::async_error_report(1, "world (collectives)", "remote process exited");
  CHECK(async.find("rank 1: NCCL reported an asynchronous error on world (collectives): remote "
                   "process exited") != std::string::npos);
}

TEST_CASE("recording and sweeping allocate nothing within the reserved room") {
  nccl::PendingOps<FakeEvent> pending(64);
  std::vector<FakeEvent> events(32);
  const nccl::OpRecord record = op("all_reduce_start", 1, "bucket");
  auto cycle = [&] {
    const Clock::time_point now = Clock::now();
    for (FakeEvent& e : events) {
      e.done = false;
      pending.add(&e, record, now);
    }
    sweep(pending, now, 60.0);
    for (FakeEvent& e : events) e.done = true;
    sweep(pending, now, 60.0);
  };
  cycle();
  const long before = graft::test::g_allocations.load();
  for (int i = 0; i < 20; ++i) cycle();
  CHECK(graft::test::g_allocations.load() - before == 0);
  CHECK(pending.size() == 0);
}
