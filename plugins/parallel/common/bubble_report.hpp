// What a pipeline says at each epoch's end: each stage's measured idle fraction since the last
// report (seconds blocked on other stages over seconds in steps), gathered over the pipeline
// group, beside the predicted bubble (p-1)/(m+p-1). The pipeline and mesh strategies share it.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>

#include "../pipeline/stage_link.hpp"
#include "../pipeline/stage_plan.hpp"

namespace graft::pipeline {

class BubbleReport {
 public:
  // After a training step that took `seconds`, `idle` of them blocked, in `micro` micro-batches.
  void add_step(double idle, double seconds, int64_t micro) {
    idle_ += idle;
    window_ += seconds;
    ++steps_;
    micro_ = std::max(micro_, micro);
  }

  // Collective over the pipeline group (with stages > 1); `title` starts the line ("pipeline
  // 1f1b, 2 stages"). Resets what it reports.
  Strategy::Report take(StageLink& link, int32_t stage, int32_t stages, const std::string& title,
                        const char* what) {
    std::vector<double> figures(2 * size_t(stages), 0.0);
    figures[size_t(stage)] = idle_;
    figures[size_t(stages + stage)] = window_;
    if (stages > 1) link.all_reduce_sum(figures.data(), int64_t(figures.size()), what);
    link.take_idle();
    Strategy::Report r;
    if (steps_ > 0) {
      r.message = title + " x " + std::to_string(micro_) + " micro-batches, " +
                  std::to_string(steps_) + " steps: idle";
      for (int32_t s = 0; s < stages; ++s) {
        const double window = figures[size_t(stages + s)];
        const double idle = window > 0 ? figures[size_t(s)] / window : 0.0;
        r.message += (s ? ", stage " : " stage ") + std::to_string(s) + " " + percent(idle);
        r.values.emplace_back("idle_stage" + std::to_string(s), idle);
      }
      const double bubble = predicted_bubble(stages, micro_);
      r.message += " (predicted bubble " + percent(bubble) + ")";
      r.values.emplace_back("predicted_bubble", bubble);
    }
    idle_ = window_ = 0.0;
    steps_ = 0;
    return r;
  }

 private:
  static std::string percent(double fraction) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
    return buf;
  }
  double idle_ = 0.0, window_ = 0.0;
  int64_t steps_ = 0, micro_ = 0;
};

}  // namespace graft::pipeline
