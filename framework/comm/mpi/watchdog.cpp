// The watchdog's thread and its report. It polls (a probe every 20 ms) rather than blocking in
// MPI so that it costs nothing measurable while idle, can be stopped, and keeps answering
// other ranks even while its own rank is stuck in a collective or busy outside MPI.
#include "comm/mpi/watchdog.hpp"

#include "comm/communicator.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace graft::runtime::mpi {
namespace {

// Tags on the watchdog's own communicator (a duplicate of MPI_COMM_WORLD), so they never
// match a strategy's messages.
constexpr int kQuery = 1;   // payload: int64 round
constexpr int kReply = 2;   // payload: RankStatus
constexpr int kFailed = 3;  // payload: int32, "this rank failed and printed its error"

constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr auto kProgressPoll = std::chrono::milliseconds(1);  // while operations are in flight
constexpr auto kAskPoll = std::chrono::milliseconds(5);
constexpr double kAskSeconds = 2.0;    // how long a report waits for answers
constexpr double kDeferSeconds = 5.0;  // how long a rank lets a lower one report first

bool same_collective(const OpRecord& a, const OpRecord& b) {
  return a.collective && b.collective && std::strcmp(a.comm, b.comm) == 0 && a.seq == b.seq;
}

// "all_reduce_start" for "wait all_reduce_start": a wait belongs to the call that started it.
const char* started_call(const OpRecord& op) {
  return std::strncmp(op.call, "wait ", 5) == 0 ? op.call + 5 : op.call;
}

// Whether a rank's status shows it has reached collective `op` (or gone past it).
bool joined(const RankStatus& s, const OpRecord& op) {
  auto reached = [&](const OpRecord& r) {
    if (!r.collective || std::strcmp(r.comm, op.comm) != 0) return false;
    return r.seq > op.seq ||
           (r.seq == op.seq && std::strcmp(started_call(r), started_call(op)) == 0);
  };
  return (s.state == RankState::waiting && reached(s.current)) ||
         (s.completed > 0 && reached(s.last));
}

// A rank at the same collective number on the same communicator but in another call: the
// ranks called collectives in different orders, which MPI cannot match.
bool mismatched(const RankStatus& s, const OpRecord& op) {
  return s.state == RankState::waiting && same_collective(s.current, op) &&
         std::strcmp(started_call(s.current), started_call(op)) != 0;
}

std::string seconds_text(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", s);
  return buffer;
}

}  // namespace

std::string describe(const OpRecord& op) {
  std::string out = op.call;
  if (op.collective)
    out += " #" + std::to_string(op.seq);
  else
    out += std::string(std::strstr(op.call, "send") ? " to" : " from") + " rank " +
           std::to_string(op.peer);
  if (op.what[0]) out += std::string(" '") + op.what + "'";
  return out + " on " + comm_label(op.comm);
}

void name_wait(OpRecord& op) {
  char call[sizeof op.call];
  size_t at = 0;
  for (const char* part : {"wait ", static_cast<const char*>(op.call)})
    for (const char* c = part; *c && at + 1 < sizeof call; ++c) call[at++] = *c;
  call[at] = '\0';
  std::memcpy(op.call, call, sizeof call);
}

Watchdog::Watchdog(double timeout_s, bool threads_ok)
    : threads_ok_(threads_ok), timeout_s_(timeout_s) {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_dup(MPI_COMM_WORLD, &control_);
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
  for (MPI_Request& r : reply_requests_)
    if (r != MPI_REQUEST_NULL) {
      MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
  MPI_Comm_free(&control_);
}

void Watchdog::begin(const OpRecord& op, const std::vector<int>* members) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = RankState::waiting;
  since_ = Clock::now();
  current_ = op;
  members_ = members;
}

void Watchdog::end(bool completed) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (completed) {
    last_ = current_;
    ++completed_;
  }
  if (state_ == RankState::waiting) state_ = RankState::between;
  since_ = Clock::now();
  members_ = nullptr;
}

void Watchdog::set_rank_labels(std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  labels_ = std::move(labels);
}

RankStatus Watchdog::snapshot(int64_t round) {
  std::lock_guard<std::mutex> lock(mutex_);
  RankStatus s;
  s.rank = rank_;
  s.state = state_;
  s.round = round;
  s.seconds = std::chrono::duration<double>(Clock::now() - since_).count();
  s.completed = completed_;
  s.current = current_;
  s.last = last_;
  return s;
}

void Watchdog::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(stop_mutex_);
      const auto period = in_flight_.load() > 0 ? kProgressPoll : kPoll;
      if (stop_cv_.wait_for(lock, period, [&] { return stop_; })) return;
    }
    if (threads_ok_) answer_messages();
    const RankStatus self = snapshot(0);
    if (self.state == RankState::waiting && self.seconds > timeout()) report_and_abort(self);
  }
}

// Answers questions and counts failure notices; never blocks (the asker already posted the
// receive for the reply, and the reply is small enough to go eagerly).
void Watchdog::answer_messages() {
  for (;;) {
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kQuery, control_, &flag, &status);
    if (!flag) break;
    int64_t round = 0;
    MPI_Recv(&round, 1, MPI_INT64_T, status.MPI_SOURCE, kQuery, control_, MPI_STATUS_IGNORE);
    RankStatus s = snapshot(round);
    MPI_Send(&s, sizeof s, MPI_BYTE, status.MPI_SOURCE, kReply, control_);
  }
  for (;;) {
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kFailed, control_, &flag, &status);
    if (!flag) break;
    int32_t payload = 0;
    MPI_Recv(&payload, 1, MPI_INT32_T, status.MPI_SOURCE, kFailed, control_, MPI_STATUS_IGNORE);
    failed_notices_.fetch_add(1);
  }
}

std::vector<std::unique_ptr<RankStatus>> Watchdog::ask_all(double seconds) {
  std::vector<std::unique_ptr<RankStatus>> out(size_);
  if (reply_requests_.empty()) {
    reply_requests_.assign(size_, MPI_REQUEST_NULL);
    reply_buffers_.resize(size_);
  }
  ++round_;
  std::vector<MPI_Request> sends;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    // A receive left posted by an earlier question that got no answer stays; a late answer
    // to it is recognised by its round and the receive posted again.
    if (reply_requests_[r] == MPI_REQUEST_NULL)
      MPI_Irecv(&reply_buffers_[r], sizeof(RankStatus), MPI_BYTE, r, kReply, control_,
                &reply_requests_[r]);
    sends.emplace_back();
    MPI_Isend(&round_, 1, MPI_INT64_T, r, kQuery, control_, &sends.back());
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int missing = size_ - 1;
  while (missing > 0 && Clock::now() < deadline) {
    answer_messages();  // the others may be asking us at the same time
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ || out[r] || reply_requests_[r] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      MPI_Test(&reply_requests_[r], &flag, MPI_STATUS_IGNORE);
      if (!flag) continue;
      if (reply_buffers_[r].round == round_) {
        out[r] = std::make_unique<RankStatus>(reply_buffers_[r]);
        --missing;
      } else {
        MPI_Irecv(&reply_buffers_[r], sizeof(RankStatus), MPI_BYTE, r, kReply, control_,
                  &reply_requests_[r]);
      }
    }
    std::this_thread::sleep_for(kAskPoll);
  }
  // Questions to a dead rank never complete; the job ends soon anyway.
  for (MPI_Request& s : sends)
    if (s != MPI_REQUEST_NULL) MPI_Request_free(&s);
  return out;
}

bool Watchdog::agree_failed(double grace_s) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = RankState::failed;
    since_ = Clock::now();
  }
  if (size_ == 1) return true;
  if (!threads_ok_) return false;  // nobody could count the notices
  static const int32_t kPayload = 1;
  std::vector<MPI_Request> sends(size_, MPI_REQUEST_NULL);
  for (int r = 0; r < size_; ++r)
    if (r != rank_) MPI_Isend(&kPayload, 1, MPI_INT32_T, r, kFailed, control_, &sends[r]);
  const auto deadline = Clock::now() + std::chrono::duration<double>(grace_s);
  while (failed_notices_.load() < size_ - 1 && Clock::now() < deadline)
    std::this_thread::sleep_for(kAskPoll);
  const bool all = failed_notices_.load() >= size_ - 1;
  for (MPI_Request& s : sends)
    if (s != MPI_REQUEST_NULL) {
      // When all failed, every rank is still counting notices, so each send completes.
      if (all)
        MPI_Wait(&s, MPI_STATUS_IGNORE);
      else
        MPI_Request_free(&s);
    }
  return all;
}

void Watchdog::report_and_abort(const RankStatus& self) {
  std::vector<std::unique_ptr<RankStatus>> others;
  if (threads_ok_ && size_ > 1) {
    others = ask_all(kAskSeconds);
    // Ranks waiting in the same collective all time out together; the lowest one reports, so
    // the user reads one report. If it has not ended the job after a while, we report.
    bool lower_reports = false;
    for (int r = 0; r < rank_; ++r)
      if (others[r] && others[r]->state == RankState::waiting &&
          same_collective(others[r]->current, self.current))
        lower_reports = true;
    if (lower_reports) {
      const auto until = Clock::now() + std::chrono::duration<double>(kDeferSeconds);
      while (Clock::now() < until) {
        answer_messages();
        std::this_thread::sleep_for(kPoll);
      }
      others = ask_all(kAskSeconds);
    }
  }
  others.resize(size_);
  const RankStatus me = snapshot(0);
  const OpRecord& op = me.current;

  // Who has not joined: the peer of a send/recv, or the members of the collective's
  // communicator whose status does not show they reached it.
  std::vector<int> missing;
  if (!op.collective) {
    missing.push_back(op.peer);
  } else {
    std::vector<int> members;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (members_) members = *members_;
    }
    for (int m : members)
      if (m != rank_ && (!others[m] || !joined(*others[m], op))) missing.push_back(m);
  }
  std::vector<std::string> labels;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    labels = labels_;
  }
  // "5 (data 0, pipeline 1, tensor 1)": a rank by its number and its place on the mesh.
  const auto named = [&](int r) {
    const bool labelled = r >= 0 && size_t(r) < labels.size() && !labels[size_t(r)].empty();
    return std::to_string(r) + (labelled ? " (" + labels[size_t(r)] + ")" : std::string());
  };
  std::string list, mismatch;
  for (int m : missing) {
    list += (list.empty() ? "" : ", ") + named(m);
    if (others[m] && mismatched(*others[m], op))
      mismatch += (mismatch.empty() ? "" : ", ") + named(m);
  }

  std::string text = "graft: watchdog on rank " + named(rank_) + ": waited " +
                     seconds_text(me.seconds) + " in " + describe(op) +
                     ", more than [parallel] timeout_s = " + seconds_text(timeout()) + ".\n";
  text += missing.empty() ? "  every rank of that communicator reached it (a transport stall?)\n"
                          : "  ranks that have not joined: " + list + "\n";
  if (!mismatch.empty())
    text += "  in a different collective with the same number: " + mismatch +
            " (the ranks called collectives in different orders: a bug in the strategy)\n";
  for (int r = 0; r < size_; ++r) {
    const RankStatus* s = r == rank_ ? &me : others[r].get();
    text += "  rank " + named(r) + ": ";
    if (!s) {
      text += threads_ok_ ? "not responding (no answer within 2 s: dead, or its watchdog "
                            "cannot run)\n"
                          : "unknown (MPI did not grant MPI_THREAD_MULTIPLE, so the watchdog "
                            "could not ask)\n";
      continue;
    }
    if (s->state == RankState::waiting)
      text += "waiting " + seconds_text(s->seconds) + " in " + describe(s->current);
    else if (s->state == RankState::failed)
      text += "failed (its error is printed above)";
    else
      text +=
          "in no collective or receive (busy " + seconds_text(s->seconds) + " since its last one)";
    text += "; last completed: " + (s->completed ? describe(s->last) : std::string("none")) + "\n";
  }
  text += "  ending the job; raise [parallel] timeout_s if a step may legitimately take longer\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);  // MPI_Abort does not return; if an MPI ever did, this rank must still end
}

}  // namespace graft::runtime::mpi
