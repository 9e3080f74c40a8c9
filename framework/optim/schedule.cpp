// The rate of each update: linear warm-up, then constant, step decay or cosine annealing.
#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace graft::runtime {

double Schedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  const int64_t after = step - warmup_steps;
  if (type == "step" && step_size > 0) return lr * std::pow(gamma, double(after / step_size));
  // linear_warmup_cosine is cosine that insists on a warm-up (config.cpp checks it).
  if ((type == "cosine" || type == "linear_warmup_cosine") && total_steps > warmup_steps) {
    double progress = std::min(1.0, double(after) / double(total_steps - warmup_steps));
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

}  // namespace graft::runtime
