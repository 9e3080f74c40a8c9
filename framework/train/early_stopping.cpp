// Watching one value of the test evaluations for [run.early_stopping], live and replayed from
// a resumed run's metrics.jsonl.
#include "train/early_stopping.hpp"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/section_reader.hpp"
#include "train/evaluation.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {
std::string format_value(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", value);
  return buf;
}
}  // namespace

bool EarlyStopping::stop_after(const EvalSummary& e, int64_t step) {
  if (!config_.enabled || e.rows == 0) return false;
  const double value = watched(e);
  const bool better = !seen_ || (config_.mode == "max" ? value > best_ + config_.min_delta
                                                       : value < best_ - config_.min_delta);
  if (better) {
    best_ = value;
    best_step_ = step;
    seen_ = true;
    stale_ = 0;
    return false;
  }
  return ++stale_ >= config_.patience;
}

bool EarlyStopping::replay(const std::filesystem::path& metrics_file, int64_t up_to_step) {
  if (!config_.enabled) return false;
  std::ifstream in(metrics_file);
  std::string line;
  bool stop = false;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("event", "") != "eval" || j.value("split", "") != "test")
      continue;
    const int64_t step = j.value("step", int64_t(-1));
    if (step < 0 || step > up_to_step) continue;
    EvalSummary e;
    e.rows = 1;
    e.loss = j.value("loss", 0.0);
    if (config_.metric != "loss") {
      if (!j.contains(config_.metric) || !j[config_.metric].is_number()) continue;
      e.metrics.emplace_back(config_.metric, j[config_.metric].get<double>());
    }
    stop = stop_after(e, step);
    last_step_ = step;
  }
  return stop;
}

std::string EarlyStopping::message(int64_t step) const {
  return "early stopping at step " + std::to_string(step) + ": test " + config_.metric +
         " has not improved (mode " + config_.mode + ", min_delta " +
         format_number(config_.min_delta) + ") for " + std::to_string(config_.patience) +
         " evaluations; best " + config_.metric + " " + format_value(best_) + " at step " +
         std::to_string(best_step_);
}

double EarlyStopping::watched(const EvalSummary& e) const {
  if (config_.metric == "loss") return e.loss;
  for (const auto& [name, value] : e.metrics)
    if (name == config_.metric) return value;
  throw Failure("early stopping: the evaluation has no '" + config_.metric + "'");
}

}  // namespace graft::runtime
