// The world-of-one communicator graft uses without mpirun: collectives are identities, and
// the misuse the MPI communicator rejects is rejected here too, so plain tests catch it.
#include "comm/job.hpp"
#include "comm/local.hpp"
#include "test_support.hpp"

using graft::runtime::LocalCommunicator;
using graft::runtime::UserError;
using graft::test::Tensor;

TEST_CASE("without mpirun the job is a world of one") {
  REQUIRE_FALSE(graft::runtime::launched_by_mpi());
  auto job = graft::runtime::start_job(12);
  CHECK_FALSE(job->distributed());
  CHECK(job->world().rank() == 0);
  CHECK(job->world().size() == 1);
  CHECK(job->timeout() == 12);
  job->set_timeout(3);
  CHECK(job->timeout() == 3);
  CHECK(job->fail(2) == 2);  // nothing to abort: the caller exits with the code
}

TEST_CASE("local collectives leave values as they are, gathers copy") {
  LocalCommunicator c;
  Tensor t({3});
  for (int i = 0; i < 3; ++i) t.f()[i] = 1.5f * i;
  c.all_reduce(*t.get(), GRAFT_REDUCE_SUM, "sum");
  c.all_reduce(*t.get(), GRAFT_REDUCE_AVG, "avg");
  c.all_reduce_start(*t.get(), GRAFT_REDUCE_AVG, "async")->wait();
  c.broadcast(*t.get(), 0, "broadcast");
  for (int i = 0; i < 3; ++i) CHECK(t.f()[i] == 1.5f * i);
  double v[2] = {2.5, -1};
  c.all_reduce_f64(v, 2, GRAFT_REDUCE_AVG, "f64");
  CHECK(v[0] == 2.5);
  CHECK(v[1] == -1);

  Tensor out({3});
  c.all_gather(*t.get(), *out.get(), "gather");
  c.reduce_scatter(*t.get(), *out.get(), GRAFT_REDUCE_SUM, "scatter");
  for (int i = 0; i < 3; ++i) CHECK(out.f()[i] == 1.5f * i);
  c.barrier("barrier");
  graft::runtime::Communicator& child = c.split(5, 0);
  CHECK(child.size() == 1);
  CHECK(&c.split(0, 0) != &child);
}

TEST_CASE("local send and recv name the mistake") {
  LocalCommunicator c;
  Tensor t({1});
  CHECK_THROWS_WITH_AS(c.send(*t.get(), 0, 0, "stage 0 -> 1"),
                       doctest::Contains("cannot exchange messages with itself"), UserError);
  CHECK_THROWS_WITH_AS(c.recv(*t.get(), 1, 0, "stage 1 -> 0"),
                       doctest::Contains("recv 'stage 1 -> 0' with rank 1"), UserError);
  CHECK_THROWS_AS(c.send_start(*t.get(), 0, 0, nullptr), UserError);
  CHECK_THROWS_AS(c.recv_start(*t.get(), 0, 0, nullptr), UserError);
  CHECK_THROWS_WITH_AS(c.broadcast(*t.get(), 1, "params"),
                       doctest::Contains("outside this communicator of 1 rank(s)"), UserError);
  Tensor wrong({2});
  CHECK_THROWS_WITH_AS(c.all_gather(*t.get(), *wrong.get(), "gather"),
                       doctest::Contains("`out` holds 8 bytes, expected 4"), UserError);
  Tensor ints({1}, DLDataType{kDLInt, 32, 1});
  CHECK_THROWS_WITH_AS(c.all_reduce(*ints.get(), GRAFT_REDUCE_SUM, "labels"),
                       doctest::Contains("float32"), UserError);
}

TEST_CASE("the C table on the local world returns statuses") {
  LocalCommunicator c;
  const graft_comm_api* api = graft::runtime::comm_api();
  graft_comm* comm = graft::runtime::comm_handle(c);
  Tensor t({2});
  CHECK(api->all_reduce(comm, t.get(), GRAFT_REDUCE_SUM, nullptr) == nullptr);
  graft_request* request = nullptr;
  CHECK(api->all_reduce_start(comm, t.get(), GRAFT_REDUCE_SUM, "x", &request) == nullptr);
  REQUIRE(request != nullptr);
  CHECK(api->wait(comm, request) == nullptr);
  graft::runtime::StatusPtr s = graft::runtime::take(api->send(comm, t.get(), 0, 0, "self"));
  REQUIRE(s);
  CHECK(s->code == GRAFT_ERR_INVALID_ARGUMENT);
  // An op arrives as an int32_t and is checked at the table, before it is a graft_reduce_op.
  graft::runtime::StatusPtr bad_op = graft::runtime::take(api->all_reduce(comm, t.get(), 9, "op"));
  REQUIRE(bad_op);
  CHECK(bad_op->code == GRAFT_ERR_INVALID_ARGUMENT);
  CHECK(bad_op->message.find("unknown reduce op 9") != std::string::npos);
  graft::runtime::StatusPtr null_comm =
      graft::runtime::take(api->barrier(nullptr, "planning only"));
  REQUIRE(null_comm);
  CHECK(null_comm->message.find("NULL communicator") != std::string::npos);
}
