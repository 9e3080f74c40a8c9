// The training loop. It reads like the lecture: next batch, one strategy step (zero, forward,
// loss, backward, update), log, evaluate (and maybe stop early), checkpoint.
#include "train/trainer.hpp"

#include <chrono>
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
using Clock = std::chrono::steady_clock;

namespace graft::runtime {

namespace {
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

graft_step_result empty_result() {
  graft_step_result r{};
  r.struct_size = sizeof r;
  return r;
}

// The rows of each batch this rank reads: the strategy's batch_rows (absent in an older
// plugin: all of them).
RowSelection strategy_rows(const Session& session, bool training) {
  const auto& vt = session.strategy->vtable<graft_strategy_vtable>();
  const size_t has_rows = offsetof(graft_strategy_vtable, batch_rows) + sizeof(vt.batch_rows);
  if (vt.struct_size < has_rows || !vt.batch_rows) return {};
  void* self = session.strategy_self;
  return [&vt, self, training](int64_t rows) {
    int64_t begin = 0, end = rows;
    vt.batch_rows(self, rows, training ? 1 : 0, &begin, &end);
    return std::pair<int64_t, int64_t>{begin, end};
  };
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
  const auto& strategy = session.strategy->vtable<graft_strategy_vtable>();
  graft_step_result total = empty_result();
  while (const Batch* next = loader.next()) {
    const Batch* b = &stage.place(*next);
    ctx.global_batch = b->rows;
    ctx.row_offset = b->row_offset;
    if (graft_status* st = strategy.eval_step(session.strategy_self, session.model->api(),
                                              session.model->handle(), &ctx, &b->x, &b->y, &total))
      throw_if_failed(st, "strategy '" + session.strategy->name + "' evaluation");
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
  const bool lead = session.rank == 0 && session.write_outputs;  // only one rank writes files
  const fs::path checkpoints = session.run_dir / "checkpoints";

  BatchStage stage(session.device, *session.train_set, c.data.batch_size, /*first_slot=*/0);
  BatchLoader loader(*session.train_set, c.data.batch_size, c.data.shuffle, c.run.seed,
                     c.data.drop_last, strategy_rows(session, true), stage.loader_memory());
  const int64_t per_epoch = loader.batches_per_epoch();
  if (per_epoch == 0)
    throw UserError("[data] the training split has no full batch of " +
                    std::to_string(c.data.batch_size) + " samples; lower data.batch_size");
  const int64_t total_steps = c.run.steps > 0 ? c.run.steps : c.run.epochs * per_epoch;
  model.updater().set_total_steps(total_steps);

  // Resume: the newest checkpoint of this run, or a given one.
  TrainingPosition position;
  position.seed = c.run.seed;
  bool resumed = false;
  if (!c.checkpoint.resume.empty()) {
    fs::path from = c.checkpoint.resume == "latest" ? latest_checkpoint(checkpoints)
                                                    : fs::path(c.checkpoint.resume);
    if (!from.empty()) {
      position = load_checkpoint(from, model);
      resumed = true;
    }
  }

  MetricsLog metrics;
  if (lead) {
    fs::create_directories(session.run_dir);
    write_file_atomically(session.run_dir / "config.toml", session.resolved_config());
    metrics = MetricsLog(session.run_dir / "metrics.jsonl", resumed);
  }
  Progress progress(lead ? c.run.progress : "none", total_steps);
  // Said even with progress = "none": a resumed run must never pass for a fresh one.
  if (resumed && lead)
    std::fprintf(stderr, "%s\n", ("resumed from step " + std::to_string(position.step) + " (epoch " +
                  std::to_string(position.epoch) + ", batch " +
                  std::to_string(position.batch_in_epoch) + ")").c_str());

  // Every rank takes part (the checkpoint gathers whole tensors from parts and stages); rank 0
  // alone writes. The condition must not depend on the rank, or the others would wait.
  auto save = [&](const TrainingPosition& p) {
    if (!session.write_outputs || !c.checkpoint.enabled) return;
    TrainingPosition at = p;
    if (at.batch_in_epoch >= per_epoch) {  // an epoch's end continues with the next epoch
      at.epoch += 1;
      at.batch_in_epoch = 0;
    }
    save_checkpoint(checkpoints, model, at, c.checkpoint.keep, session.comm());
  };
  if (c.run.early_stopping.enabled && !session.test_set)
    throw UserError(c.file.string() + ": [run.early_stopping] watches the test-split evaluations, "
                    "but this run has no test split; remove [run.early_stopping]");
  EarlyStopping early_stopping(c.run.early_stopping);
  std::string stop_message;
  if (resumed && early_stopping.replay(session.run_dir / "metrics.jsonl", position.step))
    stop_message = early_stopping.message(early_stopping.last_replayed_step()) +
                   " (before the checkpoint it resumed from; nothing more to train)";
  // Returns true when early stopping says to stop.
  auto run_eval = [&](int64_t step, int64_t epoch, TrainSummary& summary) {
    if (!session.test_set) return false;
    summary.last_eval = evaluate(session, *session.test_set);
    progress.line("step " + std::to_string(step) + " epoch " + std::to_string(epoch) + " test " +
                  describe(summary.last_eval));
    if (lead) metrics.eval({"test", step, epoch, summary.last_eval.loss, summary.last_eval.metrics});
    if (!early_stopping.stop_after(summary.last_eval, step)) return false;
    stop_message = early_stopping.message(step);
    return true;
  };

  TrainSummary summary;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_rows = 0;
  double window_loss = 0.0;
  int64_t window_steps = 0;
  graft_exec_ctx ctx = session.context(true);
  const auto& strategy = session.strategy->vtable<graft_strategy_vtable>();
  // The strategy's word on the epoch (a pipeline's idle per stage): asked on every rank, since
  // it may gather figures from all of them; rank 0 prints and records it.
  auto report_strategy = [&](int64_t at_step, int64_t epoch) {
    const size_t has = offsetof(graft_strategy_vtable, report) + sizeof(strategy.report);
    if (strategy.struct_size < has || !strategy.report) return;
    graft_strategy_report r{};
    r.struct_size = sizeof r;
    if (graft_status* st = strategy.report(session.strategy_self, &r))
      throw_if_failed(st, "strategy '" + session.strategy->name + "' report");
    if (!lead) return;
    if (r.message) progress.line(r.message);
    StrategyRecord record{session.strategy->name, at_step, epoch, {}};
    for (int64_t i = 0; i < r.n_values; ++i) record.values.emplace_back(r.names[i], r.values[i]);
    if (!record.values.empty()) metrics.strategy(record);
  };
  int64_t step = position.step;
  int64_t skip = position.batch_in_epoch;
  bool done = step >= total_steps || !stop_message.empty();

  for (int64_t epoch = position.epoch; !done; ++epoch) {
    loader.start_epoch(epoch, skip);
    int64_t batch_in_epoch = skip;
    skip = 0;
    while (const Batch* next = loader.next()) {
      const Batch* b = &stage.place(*next);  // on the model's device
      ctx.step = step;
      ctx.global_batch = b->rows;  // x and y hold this rank's rows of it
      ctx.row_offset = b->row_offset;
      graft_step_result result = empty_result();
      if (graft_status* st = strategy.train_step(session.strategy_self, model.api(), model.handle(),
                                                 &ctx, &b->x, &b->y, &result))
        throw_if_failed(st, "training step " + std::to_string(step));
      stage.release();
      ++step;
      ++batch_in_epoch;
      const double loss = result.rows ? result.loss_sum / double(result.rows) : 0.0;
      summary.last_loss = loss;
      if (on_step) on_step(step, loss);
      window_loss += loss;
      window_rows += b->rows;
      ++window_steps;
      if (step % c.run.log_every == 0 || step == total_steps) {
        const double elapsed = seconds_since(window_start);
        const double rate = elapsed > 0 ? double(window_rows) / elapsed : 0.0;
        const double mean_loss = window_loss / double(window_steps);
        if (lead) metrics.train({step, epoch, mean_loss, model.updater().last_lr(), rate, seconds_since(start)});
        progress.step(step, epoch, mean_loss, rate);
        window_start = Clock::now();
        window_rows = 0;
        window_loss = 0.0;
        window_steps = 0;
      }
      if (c.checkpoint.every > 0 && step % c.checkpoint.every == 0)
        save({step, epoch, batch_in_epoch, c.run.seed});
      if (c.run.eval_every > 0 && step % c.run.eval_every == 0 && run_eval(step, epoch, summary)) {
        done = true;
        break;
      }
      if (step >= total_steps) {
        done = true;
        break;
      }
    }
    const bool epoch_finished = batch_in_epoch >= per_epoch;
    if (epoch_finished || done) report_strategy(step, epoch);
    if (c.run.eval_every == 0 && (epoch_finished || done) && run_eval(step, epoch, summary))
      done = true;
    if (c.checkpoint.every == 0 || done) save({step, epoch, batch_in_epoch, c.run.seed});
  }
  progress.finish();
  // Said even with progress = "none": a run that stopped early must not pass for a full one.
  if (!stop_message.empty() && lead) std::fprintf(stderr, "%s\n", stop_message.c_str());
  summary.stopped_early = !stop_message.empty();
  summary.steps = step;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace graft::runtime
