/* Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011), shared by the host, the
 * plugins and CUDA kernels: a value depends only on (seed, stream, index), never on layout. */
#ifndef GRAFT_RANDOM_H
#define GRAFT_RANDOM_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define GRAFT_HD __host__ __device__
#else
#define GRAFT_HD
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct graft_philox_block {
  uint32_t v[4];
} graft_philox_block;

static inline GRAFT_HD uint32_t graft_mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

/* The 4 words of Philox block `counter` for (seed, stream). */
static inline GRAFT_HD graft_philox_block graft_philox(uint64_t seed, uint64_t stream,
                                                       uint64_t counter) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = graft_mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = graft_mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  graft_philox_block b;
  b.v[0] = c0;
  b.v[1] = c1;
  b.v[2] = c2;
  b.v[3] = c3;
  return b;
}

/* Uniform in [0, 1) with 24 random bits: exact in float32. */
static inline GRAFT_HD float graft_u32_to_unit(uint32_t u) {
  return (float)(u >> 8) * (1.0f / 16777216.0f);
}

/* Element `index` of the uniform [0, 1) sequence for (seed, stream). */
static inline GRAFT_HD float graft_random_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  graft_philox_block b = graft_philox(seed, stream, index >> 2);
  return graft_u32_to_unit(b.v[index & 3u]);
}

/* Element `index` of the standard normal sequence for (seed, stream): Box-Muller on one block. */
static inline GRAFT_HD float graft_random_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  graft_philox_block b = graft_philox(seed, stream ^ 0x9E3779B97F4A7C15ull, index);
  float u1 = ((float)(b.v[0] >> 8) + 0.5f) * (1.0f / 16777216.0f); /* (0, 1): log is finite */
  float u2 = graft_u32_to_unit(b.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

#ifdef __cplusplus
}
#endif

#endif
