// [run.early_stopping]: ends a run once its test evaluations stop improving. A resumed run
// replays the evaluations its metrics.jsonl holds up to the checkpoint, so it stops where the
// uninterrupted run would have.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "config/config.hpp"

namespace graft::runtime {

struct EvalSummary;

class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingConfig& config) : config_(config) {}

  // After each test evaluation; true when `patience` evaluations in a row brought no
  // improvement of the watched value.
  bool stop_after(const EvalSummary& e, int64_t step);
  // Feeds the test evaluations logged at or before `up_to_step` (a resumed run's past).
  // Returns true when they already said to stop.
  bool replay(const std::filesystem::path& metrics_file, int64_t up_to_step);
  int64_t last_replayed_step() const { return last_step_; }
  // "early stopping at step 30: test loss has not improved (...) for 2 evaluations; best ..."
  std::string message(int64_t step) const;

 private:
  double watched(const EvalSummary& e) const;
  const EarlyStoppingConfig& config_;
  bool seen_ = false;
  double best_ = 0.0;
  int64_t best_step_ = 0;
  int64_t stale_ = 0;
  int64_t last_step_ = 0;
};

}  // namespace graft::runtime
