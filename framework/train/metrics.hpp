// What a run reports: metrics.jsonl (one JSON object a line, for tools and tests) and the
// console (a progress bar on a terminal, plain lines otherwise).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace graft::runtime {

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

}  // namespace graft::runtime
