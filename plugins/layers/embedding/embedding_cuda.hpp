// embedding's CUDA kernels (embedding_cuda.cu) on embedding_math.hpp's id check. The weight
// gradient gathers: each (table row, element) scans the batch's ids in order, so it is the
// CPU's sum in the CPU's order, without atomics. Each returns NULL, or CUDA's text for a failed
// launch.
#pragma once

#include <cstdint>

namespace graft::embedding::cuda {

// y (count, dim) = the table rows of count ids (zeros for a bad id); *first_bad (one int64 in
// device memory) = the position of the first id that is not an integer in [0, rows), or count.
const char* forward(const float* ids, int64_t count, const float* table, int64_t rows, int64_t dim,
                    float* y, int64_t* first_bad, void* stream);
// grad (rows, dim) += dy (count, dim) of every position whose id names the row, in position
// order; bad ids add nothing.
const char* weight_gradient(const float* ids, int64_t count, const float* dy, int64_t rows,
                            int64_t dim, float* grad, void* stream);

}  // namespace graft::embedding::cuda
