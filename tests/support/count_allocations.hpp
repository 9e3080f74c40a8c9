// Counts every C++ allocation of a test executable, plugins included, by replacing the global
// operator new. Include it in exactly one source file of the executable (it defines them).
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace graft::test {
inline std::atomic<long> g_allocations{0};
}  // namespace graft::test

// Neither side is inlined: GCC would otherwise see malloc() reach operator delete, or a visible
// free() paired with operator new, and warn (-Wmismatched-new-delete), not knowing they belong
// together.
[[gnu::noinline]] void* operator new(std::size_t n) {
  graft::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
