// The training loop. It reads like the lecture: next batch, one strategy step (zero, forward,
// loss, backward, update), log, evaluate (and maybe stop early), checkpoint.
#include "train/trainer.hpp"

#include <cstddef>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/section_reader.hpp"
#include "data/batch_loader.hpp"
#include "device/host_api.hpp"
#include "train/batch_stage.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics.hpp"
#include "train/safetensors.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

namespace {
// The strategy's word on the epoch (a pipeline's idle per stage): asked on every rank, since
// it may gather figures from all of them; rank 0 prints and records it.
void report_strategy(StrategyInstance& strategy, RunLog& log, const TrainingPosition& at) {
  graft_strategy_report report{};
  if (strategy.report(report)) log.strategy(strategy.name(), at.step, at.epoch, report);
}

// The rows of each batch this rank reads: the strategy's batch_rows.
RowSelection strategy_rows(Session& session, bool training) {
  StrategyInstance& strategy = *session.strategy;
  return [&strategy, training](int64_t rows) { return strategy.batch_rows(rows, training); };
}

std::string format_value(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", value);
  return buf;
}

// [run.early_stopping]: watches one value of the test evaluations. A resumed run replays the
// evaluations its metrics.jsonl holds up to the checkpoint, so it stops where it would have.
class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingConfig& config) : config_(config) {}

  // After each evaluation; true when `patience` evaluations in a row brought no improvement.
  bool stop_after(const EvalSummary& e, int64_t step) {
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

  // Feeds the test evaluations logged at or before `up_to_step` (a resumed run's past).
  // Returns true when they already said to stop.
  bool replay(const fs::path& metrics_file, int64_t up_to_step) {
    if (!config_.enabled) return false;
    std::ifstream in(metrics_file);
    std::string line;
    bool stop = false;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || j.value("event", "") != "eval" || j.value("split", "") != "test") continue;
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
  int64_t last_replayed_step() const { return last_step_; }

  std::string message(int64_t step) const {
    return "early stopping at step " + std::to_string(step) + ": test " + config_.metric +
           " has not improved (mode " + config_.mode + ", min_delta " +
           format_number(config_.min_delta) + ") for " + std::to_string(config_.patience) +
           " evaluations; best " + config_.metric + " " + format_value(best_) + " at step " +
           std::to_string(best_step_);
  }

 private:
  double watched(const EvalSummary& e) const {
    if (config_.metric == "loss") return e.loss;
    for (const auto& [name, value] : e.metrics)
      if (name == config_.metric) return value;
    throw Failure("early stopping: the evaluation has no '" + config_.metric + "'");
  }
  const EarlyStoppingConfig& config_;
  bool seen_ = false;
  double best_ = 0.0;
  int64_t best_step_ = 0;
  int64_t stale_ = 0;
  int64_t last_step_ = 0;
};
}  // namespace

std::string describe(const EvalSummary& e) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "loss %.4f", e.loss);
  std::string s = buf;
  for (const auto& [name, value] : e.metrics) {
    std::snprintf(buf, sizeof buf, ", %s %.4f", name.c_str(), value);
    s += buf;
  }
  return s;
}

EvalSummary evaluate(Session& session, DatasetInstance& data) {
  const Config& c = session.config;
  const int64_t batch = c.data.eval_batch_size > 0 ? c.data.eval_batch_size : c.data.batch_size;
  BatchStage stage(session.device, data, batch, /*first_slot=*/2);
  BatchLoader loader(data, batch, /*shuffle=*/false, c.run.seed, /*drop_last=*/false,
                     strategy_rows(session, false), stage.loader_memory());
  loader.start_epoch(0);
  graft_exec_ctx ctx = session.context(false);
  graft_step_result total{};
  total.struct_size = sizeof total;
  while (const Batch* next = loader.next()) {
    const Batch* b = &stage.place(*next);
    ctx.global_batch = b->rows;
    ctx.row_offset = b->row_offset;
    session.strategy->eval_step(*session.model, ctx, b->x, b->y, total);
    stage.release();
  }
  EvalSummary e;
  e.rows = total.rows;
  if (total.rows == 0) return e;
  e.loss = total.loss_sum / double(total.rows);
  const auto& names = session.model->metric_names();
  for (size_t m = 0; m < names.size(); ++m)
    e.metrics.emplace_back(names[m], total.metric_sums[m] / double(total.rows));
  return e;
}

TrainSummary train(Session& session, const StepObserver& on_step) {
  const Config& c = session.config;
  Model& model = *session.model;
  StrategyInstance& strategy = *session.strategy;
  BatchStage stage(session.device, *session.train_set, c.data.batch_size, /*first_slot=*/0);
  BatchLoader loader(*session.train_set, c.data.batch_size, c.data.shuffle, c.run.seed,
                     c.data.drop_last, strategy_rows(session, true), stage.loader_memory());
  const int64_t per_epoch = loader.batches_per_epoch();
  if (per_epoch == 0)
    throw UserError("[data] the training split has no full batch of " +
                    std::to_string(c.data.batch_size) + " samples; lower data.batch_size");
  const int64_t total_steps = c.run.steps > 0 ? c.run.steps : c.run.epochs * per_epoch;
  model.set_total_steps(total_steps);

  Checkpoints checkpoints(session, per_epoch);
  TrainingPosition at = checkpoints.resume();  // where this run goes on from
  RunLog log(session, checkpoints.resumed(), total_steps);
  log.say(checkpoints.resumed_from());
  if (c.run.early_stopping.enabled && !session.test_set)
    throw UserError(c.file.string() + ": [run.early_stopping] watches the test-split evaluations, "
                    "but this run has no test split; remove [run.early_stopping]");
  EarlyStopping early_stopping(c.run.early_stopping);
  std::string stop_message;
  if (checkpoints.resumed() && early_stopping.replay(session.run_dir / "metrics.jsonl", at.step))
    stop_message = early_stopping.message(early_stopping.last_replayed_step()) +
                   " (before the checkpoint it resumed from; nothing more to train)";
  // Returns true when early stopping says to stop.
  auto run_eval = [&](int64_t step, int64_t epoch, TrainSummary& summary) {
    if (!session.test_set) return false;
    summary.last_eval = evaluate(session, *session.test_set);
    log.line("step " + std::to_string(step) + " epoch " + std::to_string(epoch) + " test " +
             describe(summary.last_eval));
    log.eval({"test", step, epoch, summary.last_eval.loss, summary.last_eval.metrics});
    if (!early_stopping.stop_after(summary.last_eval, step)) return false;
    stop_message = early_stopping.message(step);
    return true;
  };

  TrainSummary summary;
  graft_exec_ctx ctx = session.context(true);
  bool done = at.step >= total_steps || !stop_message.empty();
  for (; !done; ++at.epoch, at.batch_in_epoch = 0) {
    loader.start_epoch(at.epoch, at.batch_in_epoch);
    while (const Batch* next = loader.next()) {
      const Batch& batch = stage.place(*next);  // on the model's device
      ctx.step = at.step;
      ctx.global_batch = batch.rows;  // x and y hold this rank's rows of it
      ctx.row_offset = batch.row_offset;
      const graft_step_result result = strategy.train_step(model, ctx, batch.x, batch.y);
      stage.release();
      ++at.step;
      ++at.batch_in_epoch;
      summary.last_loss = result.rows ? result.loss_sum / double(result.rows) : 0.0;
      if (on_step) on_step(at.step, summary.last_loss);
      log.step(at.step, at.epoch, summary.last_loss, batch.rows, model.last_lr());
      checkpoints.maybe_save(at, RunPoint::after_step);
      if (c.run.eval_every > 0 && at.step % c.run.eval_every == 0 &&
          run_eval(at.step, at.epoch, summary)) {
        done = true;
        break;
      }
      if (at.step >= total_steps) {
        done = true;
        break;
      }
    }
    // Here the epoch's batches ran out, or the run is done.
    report_strategy(strategy, log, at);
    if (c.run.eval_every == 0 && run_eval(at.step, at.epoch, summary)) done = true;
    checkpoints.maybe_save(at, done ? RunPoint::run_end : RunPoint::epoch_end);
  }
  log.finish();
  log.say(stop_message);
  summary.stopped_early = !stop_message.empty();
  summary.steps = at.step;
  summary.seconds = log.seconds();
  return summary;
}

}  // namespace graft::runtime
