// The learning-rate schedule: training policy the framework applies for every optimizer plugin
// ([optimizer.schedule]), so an optimizer only ever sees this step's rate.
#pragma once

#include <cstdint>
#include <string>

namespace graft::runtime {

struct Schedule {
  std::string type = "constant";  // constant | step | cosine | linear_warmup_cosine (via warmup)
  double lr = 0.01;
  int64_t warmup_steps = 0;
  int64_t step_size = 0;
  double gamma = 0.1;
  double min_lr = 0.0;
  int64_t total_steps = 0;        // for cosine
  double at(int64_t step) const;  // step: 0-based update index
};

}  // namespace graft::runtime
