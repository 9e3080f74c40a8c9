// The training loop. It reads like the lecture: next batch, one strategy step (zero, forward,
// loss, backward, update), log, evaluate, checkpoint.
#include "train/trainer.hpp"

#include <chrono>
#include <cstdio>

#include "data/batch_loader.hpp"
#include "device/host_api.hpp"
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
  BatchLoader loader(data, batch, /*shuffle=*/false, c.run.seed, /*drop_last=*/false);
  loader.start_epoch(0);
  graft_exec_ctx ctx = session.context(false);
  const auto& strategy = session.strategy->vtable<graft_strategy_vtable>();
  graft_step_result total = empty_result();
  while (const Batch* b = loader.next()) {
    ctx.global_batch = b->rows;
    if (graft_status* st = strategy.eval_step(session.strategy_self, session.model->api(),
                                              session.model->handle(), &ctx, &b->x, &b->y, &total))
      throw_if_failed(st, "strategy '" + session.strategy->name + "' evaluation");
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

TrainSummary train(Session& session) {
  const Config& c = session.config;
  Model& model = *session.model;
  const bool lead = session.rank == 0;  // only one rank writes files
  const fs::path checkpoints = session.run_dir / "checkpoints";

  BatchLoader loader(*session.train_set, c.data.batch_size, c.data.shuffle, c.run.seed,
                     c.data.drop_last);
  const int64_t per_epoch = loader.batches_per_epoch();
  if (per_epoch == 0)
    throw UserError("[data] the training split has no full batch of " +
                    std::to_string(c.data.batch_size) + " samples; lower data.batch_size");
  const int64_t total_steps = c.run.steps > 0 ? c.run.steps : c.run.epochs * per_epoch;
  model.set_total_steps(total_steps);

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

  auto save = [&](const TrainingPosition& p) {
    if (!lead || !c.checkpoint.enabled) return;
    TrainingPosition at = p;
    if (at.batch_in_epoch >= per_epoch) {  // an epoch's end continues with the next epoch
      at.epoch += 1;
      at.batch_in_epoch = 0;
    }
    save_checkpoint(checkpoints, model, at, c.checkpoint.keep);
  };
  auto run_eval = [&](int64_t step, int64_t epoch, TrainSummary& summary) {
    if (!session.test_set) return;
    summary.last_eval = evaluate(session, *session.test_set);
    progress.line("step " + std::to_string(step) + " epoch " + std::to_string(epoch) + " test " +
                  describe(summary.last_eval));
    if (lead) metrics.eval({"test", step, epoch, summary.last_eval.loss, summary.last_eval.metrics});
  };

  TrainSummary summary;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_rows = 0;
  double window_loss = 0.0;
  int64_t window_steps = 0;
  graft_exec_ctx ctx = session.context(true);
  const auto& strategy = session.strategy->vtable<graft_strategy_vtable>();
  int64_t step = position.step;
  int64_t skip = position.batch_in_epoch;
  bool done = step >= total_steps;

  for (int64_t epoch = position.epoch; !done; ++epoch) {
    loader.start_epoch(epoch, skip);
    int64_t batch_in_epoch = skip;
    skip = 0;
    while (const Batch* b = loader.next()) {
      ctx.step = step;
      ctx.global_batch = b->rows;
      graft_step_result result = empty_result();
      if (graft_status* st = strategy.train_step(session.strategy_self, model.api(), model.handle(),
                                                 &ctx, &b->x, &b->y, &result))
        throw_if_failed(st, "training step " + std::to_string(step));
      ++step;
      ++batch_in_epoch;
      const double loss = result.rows ? result.loss_sum / double(result.rows) : 0.0;
      summary.last_loss = loss;
      window_loss += loss;
      window_rows += b->rows;
      ++window_steps;
      if (step % c.run.log_every == 0 || step == total_steps) {
        const double elapsed = seconds_since(window_start);
        const double rate = elapsed > 0 ? double(window_rows) / elapsed : 0.0;
        const double mean_loss = window_loss / double(window_steps);
        if (lead) metrics.train({step, epoch, mean_loss, model.last_lr(), rate, seconds_since(start)});
        progress.step(step, epoch, mean_loss, rate);
        window_start = Clock::now();
        window_rows = 0;
        window_loss = 0.0;
        window_steps = 0;
      }
      if (c.checkpoint.every > 0 && step % c.checkpoint.every == 0)
        save({step, epoch, batch_in_epoch, c.run.seed});
      if (c.run.eval_every > 0 && step % c.run.eval_every == 0) run_eval(step, epoch, summary);
      if (step >= total_steps) {
        done = true;
        break;
      }
    }
    const bool epoch_finished = batch_in_epoch >= per_epoch;
    if (c.run.eval_every == 0 && (epoch_finished || done)) run_eval(step, epoch, summary);
    if (c.checkpoint.every == 0 || done) save({step, epoch, batch_in_epoch, c.run.seed});
  }
  progress.finish();
  summary.steps = step;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace graft::runtime
