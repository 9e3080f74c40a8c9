// The training loop over a session.
#pragma once

#include <functional>

#include "session/session.hpp"
#include "train/evaluation.hpp"

namespace graft::runtime {

struct TrainSummary {
  int64_t steps = 0;
  double seconds = 0.0;
  double last_loss = 0.0;
  bool stopped_early = false;  // [run.early_stopping] ended the run
  EvalSummary last_eval;
};

// Trains as the session's config says, resuming when [checkpoint] resume asks; writes
// config.toml, metrics.jsonl and checkpoints under the run folder (rank 0, unless the session
// writes no outputs). on_step, when given, hears each step's mean loss (`graft verify`).
using StepObserver = std::function<void(int64_t step, double loss)>;
TrainSummary train(Session& session, const StepObserver& on_step = {});

}  // namespace graft::runtime
