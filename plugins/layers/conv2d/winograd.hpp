// The tile transforms of Winograd's F(2x2, 3x3) (Lavin and Gray 2016) and their adjoints, as
// GRAFT_HD functions: a 3x3 convolution as 16 products per 2x2 output tile instead of 36.
#pragma once

#include "graft/random.h"  // GRAFT_HD

namespace graft::conv::winograd {

// For a 4x4 input tile d and a 3x3 kernel g, the 2x2 output tile of the correlation
// y[i][j] = sum_uv d[i+u][j+v] g[u][v] is Y = A^T [(G g G^T) * (B^T d B)] A, with * element-wise:
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// Summed over input channels, the 16 element-wise products become 16 matrix products.
// Backward uses the adjoints: dM = A dY A^T, dU = dM * V, dV = dM * U, dg = G^T dU G and
// dd = B dV B^T.
// Every tile is row-major (tile[r * width + c]).

// The four one-dimensional maps, x of length 4 (or 3 for G, 2 for A^T's adjoint).
GRAFT_HD inline void apply_bt(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride];
  out[0] = x0 - x2;
  out[out_stride] = x1 + x2;
  out[2 * out_stride] = x2 - x1;
  out[3 * out_stride] = x1 - x3;
}
GRAFT_HD inline void apply_b(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride];
  out[0] = x0;
  out[out_stride] = x1 - x2 + x3;
  out[2 * out_stride] = x1 + x2 - x0;
  out[3 * out_stride] = -x3;
}
GRAFT_HD inline void apply_g(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride], x2 = x[2 * stride];
  out[0] = x0;
  out[out_stride] = 0.5f * (x0 + x1 + x2);
  out[2 * out_stride] = 0.5f * (x0 - x1 + x2);
  out[3 * out_stride] = x2;
}
GRAFT_HD inline void apply_gt(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride];
  out[0] = x0 + 0.5f * (x1 + x2);
  out[out_stride] = 0.5f * (x1 - x2);
  out[2 * out_stride] = 0.5f * (x1 + x2) + x3;
}
GRAFT_HD inline void apply_at(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride];
  out[0] = x0 + x1 + x2;
  out[out_stride] = x1 - x2 - x3;
}
GRAFT_HD inline void apply_a(const float* x, int stride, float* out, int out_stride) {
  const float x0 = x[0], x1 = x[stride];
  out[0] = x0;
  out[out_stride] = x0 + x1;
  out[2 * out_stride] = x0 - x1;
  out[3 * out_stride] = -x1;
}

// V = B^T d B: input tile d (4x4) to v (4x4).
GRAFT_HD inline void input_transform(const float* d, float* v) {
  float t[16];
  for (int c = 0; c < 4; ++c) apply_bt(d + c, 4, t + c, 4);          // columns
  for (int r = 0; r < 4; ++r) apply_bt(t + 4 * r, 1, v + 4 * r, 1);  // rows
}
// dd = B dv B^T: the adjoint of input_transform, dv (4x4) to dd (4x4).
GRAFT_HD inline void input_transform_adjoint(const float* dv, float* dd) {
  float t[16];
  for (int c = 0; c < 4; ++c) apply_b(dv + c, 4, t + c, 4);
  for (int r = 0; r < 4; ++r) apply_b(t + 4 * r, 1, dd + 4 * r, 1);
}
// U = G g G^T: kernel g (3x3) to u (4x4).
GRAFT_HD inline void weight_transform(const float* g, float* u) {
  float t[12];  // (4, 3)
  for (int c = 0; c < 3; ++c) apply_g(g + c, 3, t + c, 3);
  for (int r = 0; r < 4; ++r) apply_g(t + 3 * r, 1, u + 4 * r, 1);
}
// dg = G^T du G: the adjoint of weight_transform, du (4x4) to dg (3x3).
GRAFT_HD inline void weight_transform_adjoint(const float* du, float* dg) {
  float t[12];  // (3, 4)
  for (int c = 0; c < 4; ++c) apply_gt(du + c, 4, t + c, 4);
  for (int r = 0; r < 3; ++r) apply_gt(t + 4 * r, 1, dg + 3 * r, 1);
}
// Y = A^T m A: product tile m (4x4) to output tile y (2x2).
GRAFT_HD inline void output_transform(const float* m, float* y) {
  float t[8];  // (2, 4)
  for (int c = 0; c < 4; ++c) apply_at(m + c, 4, t + c, 4);
  for (int r = 0; r < 2; ++r) apply_at(t + 4 * r, 1, y + 2 * r, 1);
}
// dm = A dy A^T: the adjoint of output_transform, dy (2x2) to dm (4x4).
GRAFT_HD inline void output_transform_adjoint(const float* dy, float* dm) {
  float t[8];  // (4, 2)
  for (int c = 0; c < 2; ++c) apply_a(dy + c, 2, t + c, 2);
  for (int r = 0; r < 4; ++r) apply_a(t + 2 * r, 1, dm + 4 * r, 1);
}

}  // namespace graft::conv::winograd
