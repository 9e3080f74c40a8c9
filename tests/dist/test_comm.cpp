// The MPI communicator under mpirun -np 2 and 4: every operation against values worked out by
// hand from each rank's inputs, through the C table strategies use as well as the C++ class.
#include <chrono>
#include <cmath>
#include <thread>

#include "comm/job.hpp"
#include "test_support.hpp"

using graft::runtime::Communicator;
using graft::runtime::Job;
using graft::runtime::UserError;
using graft::test::Tensor;

namespace {

// One job per process (MPI starts once); it ends (barrier, MPI_Finalize) after the tests.
Job& job() {
  static std::unique_ptr<Job> j = [] {
    REQUIRE_MESSAGE(graft::runtime::launched_by_mpi(), "run this test under mpirun -np N");
    return graft::runtime::start_job(30);
  }();
  return *j;
}

Communicator& world() { return job().world(); }

Tensor floats(std::initializer_list<float> values) {
  Tensor t({static_cast<int64_t>(values.size())});
  int i = 0;
  for (float v : values) t.f()[i++] = v;
  return t;
}

Tensor filled(int64_t n, float (*value)(int r, int64_t i), int r) {
  Tensor t({n});
  for (int64_t i = 0; i < n; ++i) t.f()[i] = value(r, i);
  return t;
}

}  // namespace

TEST_CASE("the world is what mpirun started") {
  REQUIRE(job().distributed());
  CHECK(world().size() >= 2);
  CHECK(world().rank() >= 0);
  CHECK(world().rank() < world().size());
}

TEST_CASE("all_reduce: sum and average of (r + 1) * (i + 1)") {
  const int r = world().rank(), n = world().size();
  for (graft_reduce_op op : {GRAFT_REDUCE_SUM, GRAFT_REDUCE_AVG}) {
    Tensor t({5});
    for (int i = 0; i < 5; ++i) t.f()[i] = static_cast<float>((r + 1) * (i + 1));
    world().all_reduce(*t.get(), op, "test values");
    // sum over r of (r + 1) = n (n + 1) / 2; every value here is exact in float32.
    const float ranks_sum = n * (n + 1) / 2.0f;
    for (int i = 0; i < 5; ++i) {
      const float expected = ranks_sum * (i + 1) / (op == GRAFT_REDUCE_AVG ? n : 1);
      CHECK(t.f()[i] == expected);
    }
  }
}

TEST_CASE("all_reduce_f64: loss sums in double") {
  const int r = world().rank(), n = world().size();
  double values[3] = {static_cast<double>(r), 0.5 * r, 1e-12};
  world().all_reduce_f64(values, 3, GRAFT_REDUCE_SUM, "loss sums");
  CHECK(values[0] == n * (n - 1) / 2.0);
  CHECK(values[1] == n * (n - 1) / 4.0);
  CHECK(values[2] == doctest::Approx(n * 1e-12).epsilon(1e-12));
  double average[1] = {static_cast<double>(r)};
  world().all_reduce_f64(average, 1, GRAFT_REDUCE_AVG, "mean rank");
  CHECK(average[0] == (n - 1) / 2.0);
  world().all_reduce_f64(nullptr, 0, GRAFT_REDUCE_SUM, "nothing");  // still collective, legal
}

TEST_CASE("broadcast from every root, float32 and int32") {
  const int r = world().rank(), n = world().size();
  for (int root = 0; root < n; ++root) {
    Tensor t({4});
    for (int i = 0; i < 4; ++i) t.f()[i] = r == root ? static_cast<float>(root * 10 + i) : -1.0f;
    world().broadcast(*t.get(), root, "parameters");
    for (int i = 0; i < 4; ++i) CHECK(t.f()[i] == static_cast<float>(root * 10 + i));

    Tensor labels({3}, DLDataType{kDLInt, 32, 1});
    for (int i = 0; i < 3; ++i) labels.i()[i] = r == root ? 1000 * root + i : 0;
    world().broadcast(*labels.get(), root, "labels");
    for (int i = 0; i < 3; ++i) CHECK(labels.i()[i] == 1000 * root + i);
  }
}

TEST_CASE("all_gather: rank k's part lands in part k, also in place") {
  const int r = world().rank(), n = world().size();
  Tensor in({3});
  for (int j = 0; j < 3; ++j) in.f()[j] = static_cast<float>(100 * r + j);
  Tensor out({n, 3});
  world().all_gather(*in.get(), *out.get(), "activations");
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < 3; ++j) CHECK(out.f()[k * 3 + j] == static_cast<float>(100 * k + j));

  // In place: `in` is this rank's own part of `out`.
  Tensor gathered({n * 3});
  for (int j = 0; j < 3; ++j) gathered.f()[r * 3 + j] = static_cast<float>(-7 * r - j);
  int64_t part_shape[1] = {3};
  DLTensor own = *gathered.get();
  own.shape = part_shape;
  own.byte_offset = static_cast<uint64_t>(r) * 3 * sizeof(float);
  world().all_gather(own, *gathered.get(), "in place");
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < 3; ++j) CHECK(gathered.f()[k * 3 + j] == static_cast<float>(-7 * k - j));
}

TEST_CASE("reduce_scatter: rank k receives the reduction of every rank's part k") {
  const int r = world().rank(), n = world().size();
  for (graft_reduce_op op : {GRAFT_REDUCE_SUM, GRAFT_REDUCE_AVG}) {
    Tensor in({n * 2});
    for (int p = 0; p < n; ++p)
      for (int j = 0; j < 2; ++j) in.f()[p * 2 + j] = static_cast<float>((r + 1) * (p * 2 + j + 1));
    Tensor out({2});
    world().reduce_scatter(*in.get(), *out.get(), op, "gradient shards");
    const float ranks_sum = n * (n + 1) / 2.0f;
    for (int j = 0; j < 2; ++j)
      CHECK(out.f()[j] == ranks_sum * (r * 2 + j + 1) / (op == GRAFT_REDUCE_AVG ? n : 1));
  }
}

TEST_CASE("send and recv around the ring, blocking and started") {
  const int r = world().rank(), n = world().size();
  const int next = (r + 1) % n, previous = (r + n - 1) % n;
  // Started sends and receives: no order between ranks is needed.
  Tensor out = floats({static_cast<float>(r), r + 0.5f});
  Tensor in({2});
  auto sent = world().send_start(*out.get(), next, 7, "ring");
  auto received = world().recv_start(*in.get(), previous, 7, "ring");
  received->wait();
  sent->wait();
  CHECK(in.f()[0] == static_cast<float>(previous));
  CHECK(in.f()[1] == previous + 0.5f);

  // Blocking, in the order pipelines use: even ranks send first, odd ranks receive first.
  // A large message (rendezvous, not eager) so a wrong order would deadlock, not pass.
  Tensor big = filled(
      1 << 18, [](int rank, int64_t i) { return rank * 1e6f + i; }, r);
  Tensor got({1 << 18});
  if (n % 2 == 0) {
    const int partner = r % 2 == 0 ? r + 1 : r - 1;
    if (r % 2 == 0) {
      world().send(*big.get(), partner, 3, "stage activations");
      world().recv(*got.get(), partner, 3, "stage gradients");
    } else {
      world().recv(*got.get(), partner, 3, "stage activations");
      world().send(*big.get(), partner, 3, "stage gradients");
    }
    for (int64_t i : {int64_t{0}, int64_t{12345}, int64_t{(1 << 18) - 1}})
      CHECK(got.f()[i] == partner * 1e6f + i);
  }

  // Tags keep messages apart: two messages to the same peer, received in the other order.
  Tensor a = floats({1.0f}), b = floats({2.0f}), ra({1}), rb({1});
  auto sa = world().send_start(*a.get(), next, 10, "tag 10");
  auto sb = world().send_start(*b.get(), next, 11, "tag 11");
  world().recv(*rb.get(), previous, 11, "tag 11");
  world().recv(*ra.get(), previous, 10, "tag 10");
  sa->wait();
  sb->wait();
  CHECK(ra.f()[0] == 1.0f);
  CHECK(rb.f()[0] == 2.0f);
}

TEST_CASE("split into even and odd ranks, with collectives inside each group") {
  const int r = world().rank(), n = world().size();
  const int color = r % 2;
  Communicator& group = world().split(color, r);
  const int group_size = (n - color + 1) / 2;  // ranks color, color + 2, ... below n
  CHECK(group.size() == group_size);
  CHECK(group.rank() == r / 2);

  Tensor t = floats({static_cast<float>(r + 1)});
  group.all_reduce(*t.get(), GRAFT_REDUCE_SUM, "group sum");
  float expected = 0;
  for (int m = color; m < n; m += 2) expected += static_cast<float>(m + 1);
  CHECK(t.f()[0] == expected);

  // Group rank 0 is world rank `color`: its value reaches the whole group.
  Tensor b = floats({group.rank() == 0 ? 42.0f + color : 0.0f});
  group.broadcast(*b.get(), 0, "group broadcast");
  CHECK(b.f()[0] == 42.0f + color);
  group.barrier("group barrier");

  // Key orders the ranks: negative world rank reverses them.
  Communicator& reversed = world().split(color, -r);
  CHECK(reversed.rank() == group_size - 1 - r / 2);
  // A split of a split.
  Communicator& alone = group.split(group.rank(), 0);
  CHECK(alone.size() == 1);
  Tensor c = floats({3.0f});
  alone.all_reduce(*c.get(), GRAFT_REDUCE_SUM, "alone");
  CHECK(c.f()[0] == 3.0f);
  world().barrier("after splits");
}

TEST_CASE("several async all-reduces in flight, waited in reverse order") {
  const int r = world().rank(), n = world().size();
  const int64_t sizes[3] = {1, 1000, 300000};
  std::vector<Tensor> buckets;
  for (int64_t s : sizes)
    buckets.push_back(filled(
        s, [](int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 97)); }, r));
  std::vector<std::unique_ptr<graft::runtime::CommRequest>> requests;
  for (int b = 0; b < 3; ++b)
    requests.push_back(world().all_reduce_start(
        *buckets[b].get(), b == 1 ? GRAFT_REDUCE_AVG : GRAFT_REDUCE_SUM, "gradient bucket"));
  // A blocking collective while they are in flight (backward would compute here).
  double x = 1.0;
  world().all_reduce_f64(&x, 1, GRAFT_REDUCE_SUM, "in between");
  CHECK(x == n);
  for (int b = 2; b >= 0; --b) requests[b]->wait();
  const float ranks_sum = n * (n + 1) / 2.0f;
  for (int b = 0; b < 3; ++b)
    for (int64_t i : {int64_t{0}, sizes[b] / 2, sizes[b] - 1}) {
      const float expected = ranks_sum * static_cast<float>(i % 97) / (b == 1 ? n : 1);
      CHECK(buckets[b].f()[i] == expected);
    }
  // Many in flight while the caller "computes", as data_parallel does during backward; more
  // than the reduce thread's ring holds (64), so starting one waits for room. Each sum is checked.
  constexpr int kBuckets = 80;
  std::vector<Tensor> many;
  for (int b = 0; b < kBuckets; ++b) {
    many.push_back(Tensor({4096}));
    for (int64_t i = 0; i < 4096; ++i) many[b].f()[i] = static_cast<float>((r + 1) * (b + i % 5));
  }
  requests.clear();
  for (int b = 0; b < kBuckets; ++b) {
    requests.push_back(world().all_reduce_start(*many[b].get(), GRAFT_REDUCE_SUM, "bucket"));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  for (auto& request : requests) request->wait();
  for (int b = 0; b < kBuckets; ++b)
    for (int64_t i : {int64_t{0}, int64_t{4095}})
      CHECK(many[b].f()[i] == ranks_sum * static_cast<float>(b + i % 5));

  // A request dropped without wait() is waited for by its destructor (the tensor stays valid).
  Tensor dropped = floats({1.0f});
  world().all_reduce_start(*dropped.get(), GRAFT_REDUCE_SUM, "dropped");
  CHECK(dropped.f()[0] == static_cast<float>(n));
}

TEST_CASE("misuse is an error naming the call, and nothing is sent") {
  const int r = world().rank(), n = world().size();
  Tensor t({2});
  CHECK_THROWS_WITH_AS(world().send(*t.get(), r, 0, "to myself"),
                       doctest::Contains("send 'to myself': rank"), UserError);
  CHECK_THROWS_WITH_AS(world().recv(*t.get(), n, 0, "nobody"),
                       doctest::Contains("outside this communicator"), UserError);
  CHECK_THROWS_WITH_AS(world().broadcast(*t.get(), -1, "bad root"),
                       doctest::Contains("broadcast 'bad root'"), UserError);
  Tensor wrong({n * 3 + 1});
  CHECK_THROWS_WITH_AS(world().all_gather(*t.get(), *wrong.get(), "sizes"),
                       doctest::Contains("expected size() x `in`"), UserError);
  Tensor ints({2}, DLDataType{kDLInt, 32, 1});
  CHECK_THROWS_WITH_AS(world().all_reduce(*ints.get(), GRAFT_REDUCE_SUM, "ints"),
                       doctest::Contains("float32"), UserError);
  CHECK_THROWS_AS(world().split(-1, 0), UserError);
  // A message shorter than the receive buffer: the receiver says how many bytes came.
  const int next = (r + 1) % n, previous = (r + n - 1) % n;
  Tensor small = floats({1.0f, 2.0f}), big({4});
  auto sent = world().send_start(*small.get(), next, 20, "short");
  CHECK_THROWS_WITH_AS(world().recv(*big.get(), previous, 20, "short"),
                       doctest::Contains("received 8 bytes, expected 16"), UserError);
  sent->wait();
  world().barrier("after misuse");
}

TEST_CASE("the C table strategies use: statuses, handles, split") {
  const graft_comm_api* api = graft::runtime::comm_api();
  graft_comm* comm = graft::runtime::comm_handle(world());
  const int n = world().size();
  REQUIRE(api->struct_size == sizeof(graft_comm_api));
  CHECK(api->rank(comm) == world().rank());
  CHECK(api->size(comm) == n);

  Tensor t = floats({1.0f, 2.0f});
  CHECK(api->all_reduce(comm, t.get(), GRAFT_REDUCE_AVG, "c api") == nullptr);
  CHECK(t.f()[0] == 1.0f);
  CHECK(t.f()[1] == 2.0f);
  graft_request* request = nullptr;
  CHECK(api->all_reduce_start(comm, t.get(), GRAFT_REDUCE_SUM, "c api async", &request) == nullptr);
  CHECK(api->wait(comm, request) == nullptr);
  CHECK(t.f()[1] == 2.0f * n);

  graft_comm* half = nullptr;
  CHECK(api->split(comm, world().rank() % 2, 0, &half) == nullptr);
  CHECK(api->size(half) == (n - world().rank() % 2 + 1) / 2);
  CHECK(api->barrier(half, "half") == nullptr);

  // Misuse comes back as a status naming the call; it does not throw through C.
  graft::runtime::StatusPtr s = graft::runtime::take(api->all_reduce(comm, t.get(), 7, "bad op"));
  REQUIRE(s != nullptr);
  CHECK(s->code == GRAFT_ERR_INVALID_ARGUMENT);
  CHECK(s->message.find("all_reduce 'bad op'") != std::string::npos);
}
