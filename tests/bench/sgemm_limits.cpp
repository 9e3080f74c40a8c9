// How far the CPU can go on one MLP step's matrix products, and whether a different way of
// calling OpenBLAS would go further: the evidence behind the 784-1024-1024-10 goal of RESULTS.md.
//   1. the cores' AVX2 FMA peak (12 independent chains per thread, no memory traffic);
//   2. the step's products as plugins/layers/linear calls them (weights (D, H), OpenBLAS's own
//      threads), against the same FLOPs with the weights as PyTorch keeps them ((H, D), other
//      transposes);
//   3. a weight gradient written with beta 0 (OpenBLAS zeroes C itself) against zeroing C first
//      and accumulating with beta 1, as graft's zero_grad + linear do.
// The variants alternate round by round so that a slow spell of the machine hits all of them.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_flags.hpp"

extern "C" void openblas_set_num_threads(int);

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// GFLOP/s of one thread running independent FMA chains on registers only.
__attribute__((target("avx2,fma"))) double fma_peak_gflops(double seconds) {
  volatile float seed = 1.0f;  // distinct chains the compiler cannot merge
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(seed + float(i));
  const __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-5f);
  int64_t iterations = 0;
  const auto start = Clock::now();
  do {
    for (int r = 0; r < 1000000; ++r)
      for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
    iterations += 1000000;
  } while (since(start) < seconds);
  const double elapsed = since(start);
  __m256 sum = a[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, a[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  if (out[0] == 1234.5f) std::puts("");  // keeps the chains alive
  return double(iterations) * 12 * 16 / elapsed / 1e9;
}

struct Product {
  std::string name;
  bool ta, tb;
  int m, n, k;
  float beta;
};

struct Matrices {
  std::vector<float> a, b, c;
  explicit Matrices(size_t n) : a(n, 0.01f), b(n, 0.02f), c(n, 0.0f) {}
};

// Row-major C (m, n) = op(A) op(B) + beta C.
void gemm(const Product& p, Matrices& x, float beta) {
  cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans,
              p.m, p.n, p.k, 1.0f, x.a.data(), p.ta ? p.m : p.k, x.b.data(), p.tb ? p.k : p.n, beta,
              x.c.data(), p.n);
}

// The products of one step: linear's layout (W (D, H)) or PyTorch's (W (H, D)).
std::vector<Product> step_products(const std::vector<int64_t>& w, int batch, bool torch_layout) {
  std::vector<Product> out;
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    const int D = int(w[l]), H = int(w[l + 1]), B = batch;
    const std::string at = "layer " + std::to_string(l);
    if (!torch_layout) {
      out.push_back({at + " forward", false, false, B, H, D, 0.0f});                   // X W
      out.push_back({at + " weight gradient", true, false, D, H, B, 1.0f});            // X^T dY
      if (l > 0) out.push_back({at + " input gradient", false, true, B, D, H, 0.0f});  // dY W^T
    } else {
      out.push_back({at + " forward", false, true, B, H, D, 0.0f});                     // X W^T
      out.push_back({at + " weight gradient", true, false, H, D, B, 1.0f});             // dY^T X
      if (l > 0) out.push_back({at + " input gradient", false, false, B, D, H, 0.0f});  // dY W
    }
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> widths{784, 1024, 1024, 10};
  int batch = 256, threads = 2, rounds = 12;
  try {
    using graft::bench::into;
    graft::bench::parse_flags(argc, argv,
                              "usage: graft_sgemm_limits [--layers 784,1024,1024,10] "
                              "[--batch 256] [--threads 2] [--rounds 12]",
                              {{"--layers", into(widths)},
                               {"--batch", into(batch)},
                               {"--threads", into(threads)},
                               {"--rounds", into(rounds)}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft_sgemm_limits: %s\n", e.what());
    return 2;
  }
  if (batch < 1 || threads < 1 || rounds < 1) {
    std::fprintf(stderr, "graft_sgemm_limits: --batch, --threads and --rounds must be >= 1\n");
    return 2;
  }
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "graft_sgemm_limits: this CPU has no AVX2+FMA; nothing to measure\n");
    return 77;
  }

  std::vector<double> peaks(size_t(threads), 0.0);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] { peaks[size_t(t)] = fma_peak_gflops(1.0); });
  peaks[0] = fma_peak_gflops(1.0);
  for (auto& t : pool) t.join();
  double peak = 0.0;
  for (double p : peaks) peak += p;
  std::printf("FMA peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads at once\n",
              fma_peak_gflops(1.0), peak, threads);

  openblas_set_num_threads(threads);  // as [run] threads sets graft's
  const auto graft_layout = step_products(widths, batch, false);
  const auto torch_layout = step_products(widths, batch, true);
  size_t biggest = 0;
  for (const auto& p : graft_layout)
    biggest = std::max({biggest, size_t(p.m) * p.k, size_t(p.k) * p.n, size_t(p.m) * p.n});
  Matrices x(biggest);
  // variant 0: linear's calls; 1: the same FLOPs in PyTorch's layout.
  const char* names[2] = {"linear's layout", "torch's layout"};
  std::vector<std::vector<double>> spent(2, std::vector<double>(graft_layout.size(), 0.0));
  double beta0 = 0.0, zero_then_beta1 = 0.0;
  double flops = 0.0;
  for (const auto& p : graft_layout) flops += 2.0 * p.m * p.n * p.k;
  for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up
    for (int v = 0; v < 2; ++v) {
      const auto& products = v == 1 ? torch_layout : graft_layout;
      for (size_t i = 0; i < products.size(); ++i) {
        const auto start = Clock::now();
        gemm(products[i], x, products[i].beta);
        if (r > 0) spent[size_t(v)][i] += since(start);
      }
    }
    for (const auto& p : graft_layout) {
      if (p.beta != 1.0f) continue;  // the weight gradients
      auto start = Clock::now();
      gemm(p, x, 0.0f);
      if (r > 0) beta0 += since(start);
      start = Clock::now();
      std::memset(x.c.data(), 0, size_t(p.m) * p.n * sizeof(float));
      gemm(p, x, 1.0f);
      if (r > 0) zero_then_beta1 += since(start);
    }
  }

  std::printf("\none step's products of MLP ");
  for (size_t i = 0; i < widths.size(); ++i)
    std::printf(i ? "-%lld" : "%lld", (long long)widths[i]);
  std::printf(" at batch %d (%.3f GFLOP), mean of %d rounds, ms:\n", batch, flops / 1e9, rounds);
  std::printf("%-28s %12s %12s\n", "product", "linear", "torch");
  for (size_t i = 0; i < graft_layout.size(); ++i)
    std::printf("%-28s %12.3f %12.3f\n", graft_layout[i].name.c_str(), spent[0][i] / rounds * 1e3,
                spent[1][i] / rounds * 1e3);
  for (int v = 0; v < 2; ++v) {
    double total = 0.0;
    for (double s : spent[size_t(v)]) total += s;
    total /= rounds;
    std::printf("all, %-16s %8.3f ms  %6.1f GFLOP/s  %5.1f%% of the FMA peak\n", names[v],
                total * 1e3, flops / total / 1e9, 100.0 * flops / total / 1e9 / peak);
  }
  std::printf("weight gradients: beta 0 %.3f ms; memset, then beta 1 %.3f ms\n",
              beta0 / rounds * 1e3, zero_then_beta1 / rounds * 1e3);
  return 0;
}
