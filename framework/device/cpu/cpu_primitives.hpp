// CPU implementations of the host's compute primitives (OpenBLAS for GEMM, plain loops for
// the rest). host_api.cpp dispatches here for tensors on kDLCPU.
#pragma once

#include "graft/graft.h"

namespace graft::runtime::cpu {

graft_status* gemm(const graft_exec_ctx* ctx, int32_t ta, int32_t tb, float alpha,
                   const DLTensor* a, const DLTensor* b, float beta, DLTensor* c);
graft_status* axpby(const graft_exec_ctx* ctx, float alpha, const DLTensor* x, float beta,
                    DLTensor* y);
graft_status* fill(const graft_exec_ctx* ctx, DLTensor* t, float value);
graft_status* copy(const graft_exec_ctx* ctx, const DLTensor* src, DLTensor* dst);
graft_status* sum_rows(const graft_exec_ctx* ctx, const DLTensor* x, float beta, DLTensor* out);
graft_status* dot(const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y, double* out);
graft_status* fill_uniform(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed, uint64_t stream,
                           uint64_t offset, float low, float high);
graft_status* fill_normal(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed, uint64_t stream,
                          uint64_t offset, float mean, float stddev);

// p[0, n) = 0 on the host's threads; a large block with streaming stores, which skip reading
// the old lines into the cache first (the gradients' zeroing before each step).
void zero(float* p, int64_t n);

}  // namespace graft::runtime::cpu
