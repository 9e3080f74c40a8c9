// What a run reports: metrics.jsonl (one JSON object a line, for tools and tests) and the
// console (a progress bar on a terminal, plain lines otherwise).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "graft/graft.h"

namespace graft::runtime {

class Session;

struct TrainRecord {
  int64_t step, epoch;
  double loss, lr, samples_per_s, seconds;
};

struct EvalRecord {
  std::string split;
  int64_t step, epoch;
  double loss;
  std::vector<std::pair<std::string, double>> metrics;  // e.g. accuracy
};

// What a strategy reported at an epoch's end (strategy.h), e.g. a pipeline's idle per stage.
struct StrategyRecord {
  std::string strategy;
  int64_t step, epoch;
  std::vector<std::pair<std::string, double>> values;
};

class MetricsLog {
 public:
  MetricsLog() = default;
  // Appends when `append` (a resumed run), truncates otherwise.
  MetricsLog(const std::filesystem::path& file, bool append);
  void train(const TrainRecord& r);
  void eval(const EvalRecord& r);
  void strategy(const StrategyRecord& r);

 private:
  std::ofstream out_;
};

class Progress {
 public:
  // mode: auto | bar | plain | none
  Progress(const std::string& mode, int64_t total_steps);
  void step(int64_t step, int64_t epoch, double loss, double samples_per_s);
  void line(const std::string& text);  // a message that must stay on screen
  void finish();

 private:
  bool bar_ = false, quiet_ = false;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// What a training run tells: metrics.jsonl and the console. Rank 0 speaks for the job (and only
// when the session writes outputs); the other ranks' logs say nothing.
class RunLog {
 public:
  // Rank 0 creates the run folder with the resolved config.toml and opens metrics.jsonl,
  // appending to it when the run resumed.
  RunLog(const Session& session, bool resumed, int64_t total_steps);

  // After each training step. Every log_every steps and at the last one, a train record and a
  // progress line give the mean loss and the rows per second of the steps since the last line.
  void step(int64_t step, int64_t epoch, double loss, int64_t rows, double lr);
  void eval(const EvalRecord& r);
  // The strategy's report at an epoch's end: its message as a line, its values as a record.
  void strategy(const std::string& name, int64_t step, int64_t epoch,
                const graft_strategy_report& report);
  void line(const std::string& text);  // a message that must stay on screen
  // Said even with progress = "none" (a resumed run or one stopped early must not pass for a
  // fresh or full one); nothing when `text` is empty.
  void say(const std::string& text);
  void finish();
  double seconds() const;  // since the log was opened

 private:
  using Clock = std::chrono::steady_clock;
  bool lead_;
  MetricsLog metrics_;
  Progress progress_;
  int64_t log_every_, total_steps_;
  Clock::time_point start_ = Clock::now(), window_start_ = start_;
  // The steps since the last train line.
  double window_loss_ = 0.0;
  int64_t window_rows_ = 0, window_steps_ = 0;
};

}  // namespace graft::runtime
