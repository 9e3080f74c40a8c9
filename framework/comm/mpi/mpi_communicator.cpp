// MPI calls behind the Communicator interface, each checked and each bracketed by the
// watchdog's begin/end so a report can say what every rank was last doing.
#include "comm/mpi/mpi_communicator.hpp"

#include "comm/mpi/mpi_detail.hpp"

namespace graft::runtime::mpi {
using namespace detail;

void check(int code, const std::string& context, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Failure(context + ": MPI error: " + std::string(text, length) + " (" + file + ":" +
                std::to_string(line) + ")");
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string name, Watchdog& watchdog)
    : comm_(comm), name_(std::move(name)), watchdog_(watchdog) {
  // Errors come back as codes we turn into exceptions with context, not MPI's abort.
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  MPI_Group group, world_group;
  MPI_Comm_group(comm_, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> ranks(size_);
  for (int i = 0; i < size_; ++i) ranks[i] = i;
  members_.resize(size_);
  MPI_Group_translate_ranks(group, size_, ranks.data(), world_group, members_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  void* upper = nullptr;
  int found = 0;
  MPI_Comm_get_attr(comm_, MPI_TAG_UB, &upper, &found);
  if (found) tag_upper_bound_ = *static_cast<int*>(upper);
  oversubscribed();  // decided once, collectively, while every rank is here
  // Made here, where every rank already is in a collective (init or split), rather than at
  // the first all_reduce_start, where a rank that is late to it would stall the others early.
  if (watchdog_.threads_ok()) reducer_ = std::make_unique<Reducer>(comm_, watchdog_, &members_);
}

MpiCommunicator::~MpiCommunicator() {
  children_.clear();
  reducer_.reset();
  MPI_Comm_free(&comm_);
}

OpRecord MpiCommunicator::collective(const char* call, const char* what) {
  OpRecord op;
  op.seq = ++collectives_;
  op.collective = 1;
  copy_text(op.call, sizeof op.call, call);
  copy_text(op.comm, sizeof op.comm, name_.c_str());
  copy_text(op.what, sizeof op.what, what);
  return op;
}

OpRecord MpiCommunicator::point_to_point(const char* call, int32_t peer, int32_t tag,
                                         const char* what) {
  check_other_peer(peer, rank_, size_, call, what);
  check_tag(tag, call, what);
  OpRecord op;
  op.peer = members_[peer];
  copy_text(op.call, sizeof op.call, call);
  copy_text(op.comm, sizeof op.comm, name_.c_str());
  copy_text(op.what, sizeof op.what, what);
  return op;
}

void MpiCommunicator::check_tag(int32_t tag, const char* call, const char* what) const {
  if (tag < 0 || tag > tag_upper_bound_)
    throw UserError(comm_call(call, what) + ": tag " + std::to_string(tag) + " is outside 0.." +
                    std::to_string(tag_upper_bound_));
}

void MpiCommunicator::all_reduce(DLTensor& t, graft_reduce_op op, const char* what) {
  const int n = mpi_count(float32_count(t, "all_reduce", what), "all_reduce", what);
  auto* data = static_cast<float*>(tensor_bytes_at(t));
  const OpRecord record = collective("all_reduce", what);
  watched(watchdog_, record, &members_, [&] {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, comm_), describe(record));
  });
  if (op == GRAFT_REDUCE_AVG) divide(data, n, size_);
}

std::unique_ptr<CommRequest> MpiCommunicator::all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                               const char* what) {
  const int n = mpi_count(float32_count(t, "all_reduce_start", what), "all_reduce_start", what);
  auto* data = static_cast<float*>(tensor_bytes_at(t));
  const OpRecord record = collective("all_reduce_start", what);
  if (reducer_) {
    return reducer_->start(data, n, op == GRAFT_REDUCE_AVG, record);
  }
  auto request = std::make_unique<MpiRequest>(watchdog_, record, &members_);
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, comm_, &request->request),
            describe(record));
  if (op == GRAFT_REDUCE_AVG) {
    request->average = data;
    request->average_n = n;
    request->average_size = size_;
  }
  // Non-blocking collectives advance only inside MPI calls: one test now gets the first
  // round of messages moving while the caller goes back to computing.
  int flag = 0;
  MPI_Test(&request->request, &flag, MPI_STATUS_IGNORE);
  if (flag) {
    request->done();
    if (request->average) divide(request->average, request->average_n, request->average_size);
    request->average = nullptr;
  }
  return request;
}

void MpiCommunicator::all_reduce_f64(double* values, int64_t n, graft_reduce_op op,
                                     const char* what) {
  if (n < 0) throw UserError(comm_call("all_reduce_f64", what) + ": negative count");
  const int count = mpi_count(n, "all_reduce_f64", what);
  const OpRecord record = collective("all_reduce_f64", what);
  watched(watchdog_, record, &members_, [&] {
    if (oversubscribed()) {  // a pipeline's end-of-step sums: stages wait here for the last
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, comm_, &request),
                describe(record));
      MPI_CHECK(wait_for(request, MPI_STATUS_IGNORE), describe(record));
      return;
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, comm_),
              describe(record));
  });
  if (op == GRAFT_REDUCE_AVG) divide(values, n, size_);
}

void MpiCommunicator::broadcast(DLTensor& t, int32_t root, const char* what) {
  check_peer(root, size_, "broadcast", what);
  const int bytes =
      mpi_count(static_cast<int64_t>(dense_host_bytes(t, "broadcast", what)), "broadcast", what);
  const OpRecord record = collective("broadcast", what);
  watched(watchdog_, record, &members_, [&] {
    MPI_CHECK(MPI_Bcast(tensor_bytes_at(t), bytes, MPI_BYTE, root, comm_), describe(record));
  });
}

void MpiCommunicator::all_gather(const DLTensor& in, DLTensor& out, const char* what) {
  const size_t part = dense_host_bytes(in, "all_gather", what);
  const size_t total = dense_host_bytes(out, "all_gather", what);
  if (total != part * size_)
    throw UserError(comm_call("all_gather", what) + ": `out` holds " + std::to_string(total) +
                    " bytes, expected size() x `in` = " + std::to_string(size_) + " x " +
                    std::to_string(part));
  const int bytes = mpi_count(static_cast<int64_t>(part), "all_gather", what);
  char* out_data = static_cast<char*>(tensor_bytes_at(out));
  const void* in_data = tensor_bytes_at(in);
  // `in` may already be this rank's part of `out` (MPI_IN_PLACE); any other overlap would be
  // read while written.
  const bool in_place = in_data == out_data + part * rank_;
  if (!in_place && overlap(in_data, part, out_data, total))
    throw UserError(comm_call("all_gather", what) +
                    ": `in` overlaps `out` but is not this "
                    "rank's part of it");
  const OpRecord record = collective("all_gather", what);
  watched(watchdog_, record, &members_, [&] {
    MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : in_data, bytes, MPI_BYTE, out_data, bytes,
                            MPI_BYTE, comm_),
              describe(record));
  });
}

void MpiCommunicator::reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                                     const char* what) {
  const int64_t in_n = float32_count(in, "reduce_scatter", what);
  const int64_t out_n = float32_count(out, "reduce_scatter", what);
  if (in_n != out_n * size_)
    throw UserError(comm_call("reduce_scatter", what) + ": `in` holds " + std::to_string(in_n) +
                    " floats, expected size() x `out` = " + std::to_string(size_) + " x " +
                    std::to_string(out_n));
  auto* out_data = static_cast<float*>(tensor_bytes_at(out));
  const void* in_data = tensor_bytes_at(in);
  if (overlap(in_data, in_n * 4, out_data, out_n * 4))
    throw UserError(comm_call("reduce_scatter", what) + ": `in` and `out` overlap");
  const int count = mpi_count(out_n, "reduce_scatter", what);
  mpi_count(in_n, "reduce_scatter", what);
  const OpRecord record = collective("reduce_scatter", what);
  watched(watchdog_, record, &members_, [&] {
    MPI_CHECK(MPI_Reduce_scatter_block(in_data, out_data, count, MPI_FLOAT, MPI_SUM, comm_),
              describe(record));
  });
  if (op == GRAFT_REDUCE_AVG) divide(out_data, out_n, size_);
}

void MpiCommunicator::send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  const OpRecord record = point_to_point("send", peer, tag, what);
  const int bytes =
      mpi_count(static_cast<int64_t>(dense_host_bytes(t, "send", what)), "send", what);
  watched(watchdog_, record, &members_, [&] {
    MPI_CHECK(MPI_Send(tensor_bytes_at(t), bytes, MPI_BYTE, peer, tag, comm_), describe(record));
  });
}

void MpiCommunicator::recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  post_recv(t, peer, tag, what, true)->wait();
}

std::unique_ptr<CommRequest> MpiCommunicator::send_start(const DLTensor& t, int32_t peer,
                                                         int32_t tag, const char* what) {
  const OpRecord record = point_to_point("send", peer, tag, what);
  const int bytes =
      mpi_count(static_cast<int64_t>(dense_host_bytes(t, "send_start", what)), "send_start", what);
  auto request = std::make_unique<MpiRequest>(watchdog_, record, &members_);
  MPI_CHECK(MPI_Isend(tensor_bytes_at(t), bytes, MPI_BYTE, peer, tag, comm_, &request->request),
            describe(record));
  return request;
}

std::unique_ptr<CommRequest> MpiCommunicator::recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                                         const char* what) {
  return post_recv(t, peer, tag, what, false);
}

// A receive is always posted non-blocking: the length check after it arrives is in one place.
std::unique_ptr<CommRequest> MpiCommunicator::post_recv(DLTensor& t, int32_t peer, int32_t tag,
                                                        const char* what, bool blocking) {
  const OpRecord record = point_to_point("recv", peer, tag, what);
  const int bytes =
      mpi_count(static_cast<int64_t>(dense_host_bytes(t, "recv", what)), "recv", what);
  auto request = std::make_unique<MpiRequest>(watchdog_, record, &members_, blocking);
  request->expected_bytes = bytes;
  // A longer message than `t` is an error MPI reports as truncation; a shorter one is caught
  // by the count check in wait().
  MPI_CHECK(MPI_Irecv(tensor_bytes_at(t), bytes, MPI_BYTE, peer, tag, comm_, &request->request),
            describe(record) + " (" + std::to_string(bytes) + " bytes expected)");
  return request;
}

void MpiCommunicator::barrier(const char* what) {
  const OpRecord record = collective("barrier", what);
  watched(watchdog_, record, &members_, [&] { MPI_CHECK(MPI_Barrier(comm_), describe(record)); });
}

Communicator& MpiCommunicator::split(int32_t color, int32_t key, const std::string& name) {
  if (color < 0)
    throw UserError("split: color " + std::to_string(color) + " is negative; colors are >= 0");
  const OpRecord record = collective("split", nullptr);
  MPI_Comm child = MPI_COMM_NULL;
  watched(watchdog_, record, &members_,
          [&] { MPI_CHECK(MPI_Comm_split(comm_, color, key, &child), describe(record)); });
  ++splits_;
  const std::string child_name = !name.empty() ? name
                                               : name_ + "/split" + std::to_string(splits_) +
                                                     "[color " + std::to_string(color) + "]";
  children_.push_back(std::make_unique<MpiCommunicator>(child, child_name, watchdog_));
  return *children_.back();
}

}  // namespace graft::runtime::mpi
