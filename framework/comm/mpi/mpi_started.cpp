// The collectives ZeRO starts and leaves running (reduce_scatter_start, all_gather_start): on the
// reducer's thread as blocking calls where MPI allows threads (reducer.hpp says why), else MPI's
// non-blocking forms, advanced by the watchdog's probing while the caller computes.
#include "comm/mpi/mpi_detail.hpp"

namespace graft::runtime::mpi {
using namespace detail;

namespace {
// The early test after posting: a finished operation completes its request at once.
void test_now(MpiRequest& request) {
  int flag = 0;
  MPI_Test(&request.request, &flag, MPI_STATUS_IGNORE);
  if (!flag) return;
  request.done();
  request.unstage();
  if (request.average) divide(request.average, request.average_n, request.average_size);
  request.average = nullptr;
}
}  // namespace

std::unique_ptr<CommRequest> MpiCommunicator::reduce_scatter_start(const DLTensor& in,
                                                                   DLTensor& out,
                                                                   graft_reduce_op op,
                                                                   const char* what) {
  const char* call = "reduce_scatter_start";
  const int64_t in_n = float32_count(in, call, what);
  const int64_t out_n = float32_count(out, call, what);
  if (in_n != out_n * size_)
    throw UserError(comm_call(call, what) + ": `in` holds " + std::to_string(in_n) +
                    " floats, expected size() x `out` = " + std::to_string(size_) + " x " +
                    std::to_string(out_n));
  auto* out_data = static_cast<float*>(tensor_bytes_at(out));
  const auto* in_data = static_cast<const float*>(tensor_bytes_at(in));
  const bool own_part = out_data == in_data + out_n * rank_;
  if (!own_part && overlap(in_data, size_t(in_n) * 4, out_data, size_t(out_n) * 4))
    throw UserError(comm_call(call, what) + ": `out` overlaps `in` but is not this rank's part");
  const int count = mpi_count(out_n, call, what);
  mpi_count(in_n, call, what);
  const OpRecord record = collective(call, what);
  if (reducer_)
    return reducer_->start_reduce_scatter(const_cast<float*>(in_data), out_data, count,
                                          op == GRAFT_REDUCE_AVG, record);
  auto request = std::make_unique<MpiRequest>(watchdog_, record, &members_);
  float* target = out_data;
  if (own_part) {
    request->staging.resize(size_t(out_n));
    request->staged_to = out_data;
    target = request->staging.data();
  }
  if (op == GRAFT_REDUCE_AVG) {
    request->average = out_data;
    request->average_n = out_n;
    request->average_size = size_;
  }
  MPI_CHECK(MPI_Ireduce_scatter_block(in_data, target, count, MPI_FLOAT, MPI_SUM, comm_,
                                      &request->request),
            describe(record));
  test_now(*request);
  return request;
}

std::unique_ptr<CommRequest> MpiCommunicator::all_gather_start(const DLTensor& in, DLTensor& out,
                                                               const char* what) {
  const char* call = "all_gather_start";
  const size_t part = dense_host_bytes(in, call, what);
  const size_t total = dense_host_bytes(out, call, what);
  if (total != part * size_t(size_))
    throw UserError(comm_call(call, what) + ": `out` holds " + std::to_string(total) +
                    " bytes, expected size() x `in` = " + std::to_string(size_) + " x " +
                    std::to_string(part));
  const int bytes = mpi_count(static_cast<int64_t>(part), call, what);
  char* out_data = static_cast<char*>(tensor_bytes_at(out));
  const void* in_data = tensor_bytes_at(in);
  const bool in_place = in_data == out_data + part * size_t(rank_);
  if (!in_place && overlap(in_data, part, out_data, total))
    throw UserError(comm_call(call, what) + ": `in` overlaps `out` but is not this rank's part");
  const OpRecord record = collective(call, what);
  if (reducer_) return reducer_->start_all_gather(in_data, out_data, bytes, record);
  auto request = std::make_unique<MpiRequest>(watchdog_, record, &members_);
  MPI_CHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : in_data, bytes, MPI_BYTE, out_data, bytes,
                           MPI_BYTE, comm_, &request->request),
            describe(record));
  test_now(*request);
  return request;
}

}  // namespace graft::runtime::mpi
