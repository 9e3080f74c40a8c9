// OpenBLAS's own sgemm rate on the matrix products one training step of an MLP performs, timed
// directly with cblas_sgemm: the ceiling any framework calling the same library can reach.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::bench {

// The products of one linear layer D -> H at batch B, as plugins/layers/linear does them:
// forward (B, D) x (D, H); weight gradient (D, B) x (B, H); input gradient (B, H) x (H, D)
// (none for the first layer, whose input needs no gradient — as in PyTorch).
struct ProductTiming {
  std::string name;  // "layer 0 forward"
  int64_t m, n, k;
  double seconds_per_call = 0.0;
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

struct SgemmRate {
  std::vector<ProductTiming> products;
  double seconds_per_step = 0.0;  // all products of one step, back to back
  double flops_per_step = 0.0;
  double gflops() const {
    return seconds_per_step > 0 ? flops_per_step / seconds_per_step / 1e9 : 0.0;
  }
};

// The rate of `products` from the seconds `spent` on each over `steps` steps.
// (Inline: the CUDA benchmark uses it without this file's OpenBLAS half.)
inline SgemmRate rate_of(const std::vector<ProductTiming>& products,
                         const std::vector<double>& spent, int64_t steps) {
  SgemmRate rate;
  rate.products = products;
  for (size_t p = 0; p < products.size(); ++p) {
    rate.products[p].seconds_per_call = steps ? spent[p] / double(steps) : 0.0;
    rate.seconds_per_step += rate.products[p].seconds_per_call;
    rate.flops_per_step += rate.products[p].flops();
  }
  return rate;
}

// The buffers of one step's products, and their times. widths: D0, H0 = D1, ..., classes.
class SgemmSteps {
 public:
  SgemmSteps(const std::vector<int64_t>& widths, int64_t batch);
  // All products of one training step, in the order a step runs them, each timed.
  void run_step();
  // Seconds per call averaged over the steps since the last reset.
  SgemmRate rate() const;
  void reset();

 private:
  std::vector<int64_t> widths_;
  int64_t batch_;  // B
  // activations[l]: layer l's input (B, D_l); gradients[l]: its gradient (B, D_l).
  std::vector<std::vector<float>> activations_, gradients_, weights_, weight_grads_;
  std::vector<ProductTiming> products_;
  std::vector<size_t> forward_at_, weight_at_, input_at_;  // index into products_ per layer
  std::vector<double> spent_;
  int64_t steps_ = 0;
};

// Repeats the step's products until at least `seconds` have passed, after one untimed round
// (OpenBLAS starts its threads and sizes its buffers there).
SgemmRate measure_sgemm(const std::vector<int64_t>& widths, int64_t batch, double seconds);

}  // namespace graft::bench
