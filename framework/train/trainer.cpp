// The training loop. It reads like the lecture: next batch, one strategy step (zero, forward,
// loss, backward, update), log, evaluate (and maybe stop early), checkpoint.
#include "train/trainer.hpp"

#include "checkpoint/checkpoint.hpp"
#include "data/batch_loader.hpp"
#include "train/batch_stage.hpp"
#include "train/metrics.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {
// The strategy's word on the epoch (a pipeline's idle per stage): asked on every rank, since
// it may gather figures from all of them; rank 0 prints and records it.
void report_strategy(StrategyInstance& strategy, RunLog& log, const TrainingPosition& at) {
  graft_strategy_report report{};
  if (strategy.report(report)) log.strategy(strategy.name(), at.step, at.epoch, report);
}
}  // namespace

TrainSummary train(Session& session, const StepObserver& on_step) {
  const Config& c = session.config;
  Model& model = *session.model;
  StrategyInstance& strategy = *session.strategy;
  BatchStage stage(session.device, *session.train_set, c.data.batch_size, /*first_slot=*/0);
  BatchLoader loader(
      *session.train_set, c.data.batch_size, c.data.shuffle, c.run.seed, c.data.drop_last,
      [&](int64_t rows) { return strategy.batch_rows(rows, /*training=*/true); },
      stage.loader_memory());
  const int64_t per_epoch = loader.batches_per_epoch();
  if (per_epoch == 0)
    throw UserError("[data] the training split has no full batch of " +
                    std::to_string(c.data.batch_size) + " samples; lower data.batch_size");
  const int64_t total_steps = c.run.steps > 0 ? c.run.steps : c.run.epochs * per_epoch;
  model.updater().set_total_steps(total_steps);

  Checkpoints checkpoints(session, per_epoch);
  TrainingPosition at = checkpoints.resume();  // where this run goes on from
  RunLog log(session, checkpoints.resumed(), total_steps);
  log.say(checkpoints.resumed_from());
  TestEvaluations evaluations(session, log);
  if (checkpoints.resumed()) evaluations.replay(at.step);

  TrainSummary summary;
  graft_exec_ctx ctx = session.context(true);
  bool done = at.step >= total_steps || evaluations.stopped();
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
      log.step(at.step, at.epoch, summary.last_loss, batch.rows, model.updater().last_lr());
      checkpoints.maybe_save(at, RunPoint::after_step);
      done = evaluations.maybe_run(at, RunPoint::after_step) || at.step >= total_steps;
      if (done) break;
    }
    // Here the epoch's batches ran out, or the run is done.
    report_strategy(strategy, log, at);
    if (evaluations.maybe_run(at, done ? RunPoint::run_end : RunPoint::epoch_end)) done = true;
    checkpoints.maybe_save(at, done ? RunPoint::run_end : RunPoint::epoch_end);
  }
  log.finish();
  log.say(evaluations.stop_message());
  summary.steps = at.step;
  summary.seconds = log.seconds();
  summary.stopped_early = evaluations.stopped();
  summary.last_eval = evaluations.last();
  return summary;
}

}  // namespace graft::runtime
