// A small pool of worker threads for host->parallel_for. A job is split into one part per
// thread; the caller runs part 0, then claims every part no worker has claimed yet, so a
// worker that is slow to wake (or preempted on a busy machine) costs nothing but its wake-up:
// the caller runs its part instead of waiting. After a job a worker spins briefly (the
// optimizer posts one job per parameter tensor, back to back) and then sleeps on a futex, so
// it does not hold a core while OpenBLAS runs its gemms.
#include "device/cpu/cpu_parallel.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace graft::runtime::cpu {

namespace {

constexpr int64_t kLineFloats = 16;                    // one 64-byte cache line
constexpr auto kSpin = std::chrono::microseconds(10);  // a worker's wait before sleeping

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

class Pool {
 public:
  explicit Pool(int threads) : pid_(getpid()), parts_(size_t(std::max(threads, 1))) {
    for (int w = 1; w < threads; ++w) workers_.emplace_back([this, w] { work(size_t(w)); });
  }
  ~Pool() {
    quit_.store(true);
    posted_.fetch_add(1, std::memory_order_release);
    posted_.notify_all();
    for (auto& t : workers_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return int(parts_.size()); }

  // False (nothing run) when the pool is busy or belongs to the parent of a forked process.
  bool run(int64_t n, int64_t part, int parts, RangeBody body, void* user) {
    if (getpid() != pid_) return false;
    bool idle = false;
    if (!busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) return false;
    uint32_t job = posted_.load(std::memory_order_relaxed) + 1;
    if (job == 0) job = 1;  // 0 is every part's "never claimed"
    body_ = body;
    user_ = user;
    n_ = n;
    part_ = part;
    for (size_t w = size_t(parts); w < parts_.size(); ++w) {  // parts this job does not have
      parts_[w].claimed.store(job, std::memory_order_relaxed);
      parts_[w].finished.store(job, std::memory_order_relaxed);
    }
    posted_.store(job, std::memory_order_release);
    posted_.notify_all();
    body(user, 0, std::min(n, part));
    for (size_t w = 1; w < size_t(parts); ++w)
      if (claim(w, job)) run_part(w, job);
    // Parts a worker claimed: wait for them, yielding if its thread was preempted.
    for (size_t w = 1; w < size_t(parts); ++w)
      for (int spins = 0; parts_[w].finished.load(std::memory_order_acquire) != job; ++spins) {
        if (spins < 4096)
          relax();
        else
          std::this_thread::yield();
      }
    busy_.store(false, std::memory_order_release);
    return true;
  }

 private:
  struct alignas(64) Part {
    std::atomic<uint32_t> claimed{0}, finished{0};  // the last job that claimed / finished it
  };

  // Whoever claims part w of `job` first runs it: the job's worker, or the caller.
  bool claim(size_t w, uint32_t job) {
    uint32_t last = parts_[w].claimed.load(std::memory_order_acquire);
    return last != job &&
           parts_[w].claimed.compare_exchange_strong(last, job, std::memory_order_acq_rel);
  }
  // The job's fields cannot change before part w is finished, since run() waits for it.
  void run_part(size_t w, uint32_t job) {
    const int64_t begin = int64_t(w) * part_;
    const int64_t end = std::min(n_, begin + part_);
    if (begin < end) body_(user_, begin, end);
    parts_[w].finished.store(job, std::memory_order_release);
  }

  void work(size_t w) {
    uint32_t seen = 0;
    for (;;) {
      const auto deadline = std::chrono::steady_clock::now() + kSpin;
      uint32_t job = posted_.load(std::memory_order_acquire);
      for (int i = 0; job == seen; ++i) {
        relax();
        job = posted_.load(std::memory_order_acquire);
        if (job == seen && (i & 63) == 63 && std::chrono::steady_clock::now() > deadline) {
          posted_.wait(seen, std::memory_order_acquire);
          job = posted_.load(std::memory_order_acquire);
        }
      }
      seen = job;
      if (quit_.load()) return;
      if (claim(w, job)) run_part(w, job);
    }
  }

  const pid_t pid_;
  std::vector<Part> parts_;  // [0] unused: the caller runs part 0
  std::vector<std::thread> workers_;
  std::atomic<uint32_t> posted_{0};  // the latest job's number; workers sleep on it
  std::atomic<bool> busy_{false}, quit_{false};
  // The job, written before posted_ (release) and read after (acquire).
  RangeBody body_ = nullptr;
  void* user_ = nullptr;
  int64_t n_ = 0, part_ = 0;
};

std::mutex g_pool_mutex;
std::atomic<int> g_threads{0};  // 0: not set, all cores
std::unique_ptr<Pool> g_pool;
std::atomic<Pool*> g_current{nullptr};

int wanted_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : int(std::max(1u, std::thread::hardware_concurrency()));
}

Pool* pool() {
  if (Pool* p = g_current.load(std::memory_order_acquire)) return p;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<Pool>(wanted_threads());
  g_current.store(g_pool.get(), std::memory_order_release);
  return g_pool.get();
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, RangeBody body, void* user) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, kLineFloats);
  const int threads = wanted_threads();
  const int parts = int(std::min<int64_t>(threads, n / grain));
  if (parts >= 2) {
    // Parts of whole cache lines, so no two threads write one line.
    int64_t part = (n + parts - 1) / parts;
    part = (part + kLineFloats - 1) / kLineFloats * kLineFloats;
    Pool* p = pool();
    if (p->threads() >= parts && p->run(n, part, parts, body, user)) return;
  }
  body(user, 0, n);
}

void set_parallel_threads(int threads) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_threads.store(threads > 0 ? threads : 0);
  if (g_pool && g_pool->threads() == wanted_threads()) return;
  // Called between runs (session start, benchmark setup), never during a parallel_for. The
  // workers start here, so that the training step itself creates no thread.
  g_current.store(nullptr, std::memory_order_release);
  g_pool.reset();
  if (wanted_threads() > 1) {
    g_pool = std::make_unique<Pool>(wanted_threads());
    g_current.store(g_pool.get(), std::memory_order_release);
  }
}

}  // namespace graft::runtime::cpu
