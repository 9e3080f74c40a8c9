// Requests are made and freed every training step (a bucket's all-reduce, a micro-batch's send):
// deriving from Pooled<T> takes them from a free list that only grows, so once the first steps
// have run, a step allocates no memory (tests/dist/test_*_allocations.cpp count it).
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

namespace graft::runtime::mpi {

template <class T>
class Pooled {
 public:
  static void* operator new(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (bytes == sizeof(T) && free_ && !free_->empty()) {
        void* p = free_->back();
        free_->pop_back();
        return p;
      }
    }
    return ::operator new(bytes);
  }
  static void operator delete(void* p, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes == sizeof(T)) {
      try {
        if (!free_) {
          free_ = new std::vector<void*>();  // kept for the process: requests may outlive MPI
          free_->reserve(kKept);
        }
        if (free_->size() < kKept) {  // the list never grows inside a step
          free_->push_back(p);
          return;
        }
      } catch (...) {
      }
    }
    ::operator delete(p);
  }

 private:
  static constexpr std::size_t kKept = 1024;
  static inline std::mutex mutex_;
  static inline std::vector<void*>* free_ = nullptr;
};

}  // namespace graft::runtime::mpi
