// Evaluation: the loss and metrics of the model on a data set (`graft eval`), and the test
// evaluations of a training run, which own their cadence and early stopping.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "generate/generator.hpp"
#include "session/session.hpp"
#include "train/early_stopping.hpp"
#include "train/metrics.hpp"

namespace graft::runtime {

struct EvalSummary {
  int64_t rows = 0;
  double loss = 0.0;
  std::vector<std::pair<std::string, double>> metrics;  // per-row means, e.g. accuracy
};

// Loss and metrics of the current model on a data set (the test split by default).
EvalSummary evaluate(Session& session, DatasetInstance& data);

// "loss 0.3312, accuracy 0.8871"
std::string describe(const EvalSummary& e);

// A training run's evaluations of the test split: every [run] eval_every steps, or at each
// epoch's end and the run's end when eval_every = 0; each one printed, recorded and watched by
// [run.early_stopping]. None without a test split. A run on text prints a short sample after
// each, so the user sees the model learn (where one process holds the whole model).
class TestEvaluations {
 public:
  // Throws when [run.early_stopping] is set but the run has no test split to watch.
  TestEvaluations(Session& session, RunLog& log);
  // A resumed run's evaluations up to `step` (its metrics.jsonl) count towards early stopping.
  void replay(int64_t step);
  // Evaluates when an evaluation falls due at `point`; true when early stopping ends the run.
  bool maybe_run(const TrainingPosition& at, RunPoint point);

  // Whether early stopping ended the run (or had already, before the checkpoint it resumed
  // from), and its message.
  bool stopped() const { return !stop_message_.empty(); }
  const std::string& stop_message() const { return stop_message_; }
  const EvalSummary& last() const { return last_; }  // rows 0 when none ran

 private:
  Session& session_;
  RunLog& log_;
  EarlyStopping early_stopping_;
  EvalSummary last_;
  std::string stop_message_;
  std::unique_ptr<Generator> generator_;  // from the first sample on
  // A sample of the model as it is now, or "" where there is none to print.
  std::string sample(int64_t step);
};

}  // namespace graft::runtime
