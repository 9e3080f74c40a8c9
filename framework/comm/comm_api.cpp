// graft_comm_api over Communicator: plugins call C, exceptions never cross the ABI, so every
// entry turns a throw into a graft_status the strategy can return to the host.
#include "comm/communicator.hpp"
#include "device/host_api.hpp"
#include "util/guarded.hpp"

namespace graft::runtime {
namespace {

Communicator& self(graft_comm* c) {
  if (!c)
    throw UserError(
        "graft_comm_api called with a NULL communicator (graft_world.comm is "
        "NULL when the world is only being planned)");
  return from_handle(c);
}

template <typename T>
T& deref(T* p, const char* call, const char* argument) {
  if (!p) throw UserError(std::string(call) + ": " + argument + " is NULL");
  return *p;
}

graft_request* handle(std::unique_ptr<CommRequest> r) {
  return reinterpret_cast<graft_request*>(r.release());
}

int32_t api_rank(const graft_comm* c) {
  return c ? from_handle(const_cast<graft_comm*>(c)).rank() : 0;
}
int32_t api_size(const graft_comm* c) {
  return c ? from_handle(const_cast<graft_comm*>(c)).size() : 1;
}

graft_status* api_all_reduce(graft_comm* c, DLTensor* t, int32_t op, const char* what) {
  return guarded([&] {
    self(c).all_reduce(deref(t, "all_reduce", "t"), checked_reduce_op(op, "all_reduce", what),
                       what);
  });
}
graft_status* api_all_reduce_start(graft_comm* c, DLTensor* t, int32_t op, const char* what,
                                   graft_request** request) {
  return guarded([&] {
    deref(request, "all_reduce_start", "request") = handle(self(c).all_reduce_start(
        deref(t, "all_reduce_start", "t"), checked_reduce_op(op, "all_reduce_start", what), what));
  });
}
graft_status* api_wait(graft_comm*, graft_request* request) {
  return guarded([&] {
    // Freed even when the wait throws: the request is over either way.
    std::unique_ptr<CommRequest> r(
        reinterpret_cast<CommRequest*>(&deref(request, "wait", "request")));
    r->wait();
  });
}
graft_status* api_all_reduce_f64(graft_comm* c, double* values, int64_t n, int32_t op,
                                 const char* what) {
  return guarded([&] {
    if (n < 0) throw UserError(comm_call("all_reduce_f64", what) + ": negative count");
    if (n > 0) deref(values, "all_reduce_f64", "values");
    self(c).all_reduce_f64(values, n, checked_reduce_op(op, "all_reduce_f64", what), what);
  });
}
graft_status* api_broadcast(graft_comm* c, DLTensor* t, int32_t root, const char* what) {
  return guarded([&] { self(c).broadcast(deref(t, "broadcast", "t"), root, what); });
}
graft_status* api_all_gather(graft_comm* c, const DLTensor* in, DLTensor* out, const char* what) {
  return guarded([&] {
    self(c).all_gather(deref(in, "all_gather", "in"), deref(out, "all_gather", "out"), what);
  });
}
graft_status* api_reduce_scatter(graft_comm* c, const DLTensor* in, DLTensor* out, int32_t op,
                                 const char* what) {
  return guarded([&] {
    self(c).reduce_scatter(deref(in, "reduce_scatter", "in"), deref(out, "reduce_scatter", "out"),
                           checked_reduce_op(op, "reduce_scatter", what), what);
  });
}
graft_status* api_send(graft_comm* c, const DLTensor* t, int32_t peer, int32_t tag,
                       const char* what) {
  return guarded([&] { self(c).send(deref(t, "send", "t"), peer, tag, what); });
}
graft_status* api_recv(graft_comm* c, DLTensor* t, int32_t peer, int32_t tag, const char* what) {
  return guarded([&] { self(c).recv(deref(t, "recv", "t"), peer, tag, what); });
}
graft_status* api_send_start(graft_comm* c, const DLTensor* t, int32_t peer, int32_t tag,
                             const char* what, graft_request** request) {
  return guarded([&] {
    deref(request, "send_start", "request") =
        handle(self(c).send_start(deref(t, "send_start", "t"), peer, tag, what));
  });
}
graft_status* api_recv_start(graft_comm* c, DLTensor* t, int32_t peer, int32_t tag,
                             const char* what, graft_request** request) {
  return guarded([&] {
    deref(request, "recv_start", "request") =
        handle(self(c).recv_start(deref(t, "recv_start", "t"), peer, tag, what));
  });
}
graft_status* api_barrier(graft_comm* c, const char* what) {
  return guarded([&] { self(c).barrier(what); });
}
graft_status* api_split(graft_comm* c, int32_t color, int32_t key, graft_comm** out) {
  return guarded([&] { deref(out, "split", "out") = comm_handle(self(c).split(color, key)); });
}

graft_status* api_reduce_scatter_start(graft_comm* c, const DLTensor* in, DLTensor* out, int32_t op,
                                       const char* what, graft_request** request) {
  const char* call = "reduce_scatter_start";
  return guarded([&] {
    deref(request, call, "request") = handle(self(c).reduce_scatter_start(
        deref(in, call, "in"), deref(out, call, "out"), checked_reduce_op(op, call, what), what));
  });
}
graft_status* api_all_gather_start(graft_comm* c, const DLTensor* in, DLTensor* out,
                                   const char* what, graft_request** request) {
  const char* call = "all_gather_start";
  return guarded([&] {
    deref(request, call, "request") =
        handle(self(c).all_gather_start(deref(in, call, "in"), deref(out, call, "out"), what));
  });
}

const graft_comm_api kApi = {
    sizeof(graft_comm_api),
    api_rank,
    api_size,
    api_all_reduce,
    api_all_reduce_start,
    api_wait,
    api_all_reduce_f64,
    api_broadcast,
    api_all_gather,
    api_reduce_scatter,
    api_send,
    api_recv,
    api_send_start,
    api_recv_start,
    api_barrier,
    api_split,
    api_reduce_scatter_start,
    api_all_gather_start,
};

}  // namespace

const graft_comm_api* comm_api() { return &kApi; }

}  // namespace graft::runtime
