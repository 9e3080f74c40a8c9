// The host's CPU threads for loops outside OpenBLAS (host->parallel_for): optimizer updates,
// gradient zeroing, bias gradients. OpenBLAS keeps its own threads for gemm; these workers
// sleep while it runs, so the two never compete for the cores for long.
#pragma once

#include <cstdint>

namespace graft::runtime::cpu {

using RangeBody = void (*)(void* user, int64_t begin, int64_t end);

// Runs body(user, begin, end) over contiguous ranges covering [0, n): at most one per thread,
// each at least `grain` long (rounded to whole cache lines of floats), the first on the calling
// thread. Returns when all have run. Runs serially when one thread is set, when n < 2 * grain,
// or when the threads are already busy (a nested call, or a call from another thread).
void parallel_for(int64_t n, int64_t grain, RangeBody body, void* user);

// F(begin, end) as above; F must not throw (the bodies run on other threads).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  parallel_for(
      n, grain, [](void* user, int64_t b, int64_t e) { (*static_cast<F*>(user))(b, e); }, &f);
}

// The number of threads parallel_for uses (the caller included); set with set_cpu_threads.
void set_parallel_threads(int threads);

}  // namespace graft::runtime::cpu
