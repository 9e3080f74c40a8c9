// Evaluating the model through the strategy's eval_step, and the test evaluations of a
// training run: when they fall, their line and record, and early stopping.
#include "train/evaluation.hpp"

#include <cstdio>

#include "data/batch_loader.hpp"
#include "train/batch_stage.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

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
  StrategyInstance& strategy = *session.strategy;
  const int64_t batch = c.data.eval_batch_size > 0 ? c.data.eval_batch_size : c.data.batch_size;
  BatchStage stage(session.device, data, batch, /*first_slot=*/2);
  BatchLoader loader(
      data, batch, /*shuffle=*/false, c.run.seed, /*drop_last=*/false,
      [&](int64_t rows) { return strategy.batch_rows(rows, /*training=*/false); },
      stage.loader_memory());
  loader.start_epoch(0);
  graft_exec_ctx ctx = session.context(false);
  graft_step_result total{};
  total.struct_size = sizeof total;
  while (const Batch* next = loader.next()) {
    const Batch& b = stage.place(*next);
    ctx.global_batch = b.rows;
    ctx.row_offset = b.row_offset;
    strategy.eval_step(*session.model, ctx, b.x, b.y, total);
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

TestEvaluations::TestEvaluations(Session& session, RunLog& log)
    : session_(session), log_(log), early_stopping_(session.config.run.early_stopping) {
  const Config& c = session.config;
  if (c.run.early_stopping.enabled && !session.test_set)
    throw UserError(c.file.string() +
                    ": [run.early_stopping] watches the test-split evaluations, "
                    "but this run has no test split; remove [run.early_stopping]");
}

void TestEvaluations::replay(int64_t step) {
  if (early_stopping_.replay(session_.run_dir / "metrics.jsonl", step))
    stop_message_ = early_stopping_.message(early_stopping_.last_replayed_step()) +
                    " (before the checkpoint it resumed from; nothing more to train)";
}

bool TestEvaluations::maybe_run(const TrainingPosition& at, RunPoint point) {
  const int64_t every = session_.config.run.eval_every;
  const bool due = point == RunPoint::after_step ? every > 0 && at.step % every == 0 : every == 0;
  if (!due || !session_.test_set) return false;
  last_ = evaluate(session_, *session_.test_set);
  log_.line("step " + std::to_string(at.step) + " epoch " + std::to_string(at.epoch) + " test " +
            describe(last_));
  log_.eval({"test", at.step, at.epoch, last_.loss, last_.metrics});
  if (std::string text = sample(at.step); !text.empty())
    log_.line("step " + std::to_string(at.step) + " sample " + graft::runtime::quoted(text));
  if (!early_stopping_.stop_after(last_, at.step)) return false;
  stop_message_ = early_stopping_.message(at.step);
  return true;
}

std::string TestEvaluations::sample(int64_t step) {
  const ModelSettings& s = session_.model->settings();
  DatasetInstance& data = *session_.train_set;
  if (session_.rank != 0 || !data.has_text() || s.stages > 1 || s.shards > 1 || s.zero_level > 0)
    return "";
  if (!generator_)
    generator_ = std::make_unique<Generator>(session_);
  else
    generator_->refresh();
  SamplingOptions o;
  o.tokens = 120;
  o.temperature = 0.8;
  o.seed = uint64_t(step);
  const std::string prompt = "\n";
  const std::vector<int32_t> ids = generator_->generate(data.encode(prompt), o);
  return data.decode(ids.data(), int64_t(ids.size()));
}

}  // namespace graft::runtime
