// graft::parallel_for: a plugin's loop over [0, n) split across the host's CPU threads
// (host->parallel_for, ABI 1.1). On an older host, or for n < 2 * grain, it runs on the calling
// thread. f(begin, end) must write only its own range's elements; an exception thrown in any
// range is rethrown here after every range has finished.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>

#include "graft/graft.h"

namespace graft {

template <class F>
void parallel_for(const graft_exec_ctx& ctx, int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const graft_host_api* host = ctx.host;
  constexpr size_t kNeeded = offsetof(graft_host_api, parallel_for) + sizeof(host->parallel_for);
  if (!host || host->struct_size < kNeeded || !host->parallel_for || n < 2 * grain) {
    f(int64_t(0), n);
    return;
  }
  struct State {
    F* f = nullptr;
    std::atomic<bool> failed{false};
    std::exception_ptr error;
  } state;
  state.f = &f;
  host->parallel_for(
      &ctx, n, grain,
      [](void* user, int64_t begin, int64_t end) {
        auto* s = static_cast<State*>(user);
        try {
          (*s->f)(begin, end);
        } catch (...) {
          if (!s->failed.exchange(true)) s->error = std::current_exception();
        }
      },
      &state);
  if (state.error) std::rethrow_exception(state.error);
}

}  // namespace graft
