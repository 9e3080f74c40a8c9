// The checks of loss plugins: the gradient of the loss sum by finite differences on the
// predictions and targets a loss accepts, bit-identical repeats, and learning a linear rule.
#include <random>

#include "check/check_common.hpp"
#include "check/gradient_check.hpp"
#include "util/errors.hpp"

namespace graft::checker::detail {

using runtime::Failure;

std::vector<CheckResult> loss_checks(const runtime::Registry& registry,
                                     const runtime::PluginRecord& record,
                                     const toml::table& options, const CheckSettings& settings) {
  const runtime::BoundOptions bound = bind(record, options);
  struct Setup {
    std::vector<int64_t> prediction;
    graft_target_info target;
    std::string text;
  };
  const std::vector<Setup> candidates{{{4}, float_targets({4}), "(4,) with float targets"},
                                      {{2, 3}, float_targets({2, 3}), "(2, 3) with float targets"},
                                      {{5}, class_targets(5), "(5,) with class labels"}};
  std::vector<Setup> accepted;
  std::vector<std::string> refused;
  for (const Setup& s : candidates) {
    try {
      LossUnderTest probe(record, *bound.get(), s.prediction, s.target, 1);
      accepted.push_back(s);
    } catch (const std::exception& e) {
      refused.push_back(s.text + " refused: " + e.what());
    }
  }
  constexpr int64_t kBatch = 4;
  // Targets as a dataset would give them: floats in [0, 1], labels in [0, classes).
  auto target_for = [&](const Setup& s, std::mt19937& rng) {
    std::vector<int64_t> dims{kBatch};
    dims.insert(dims.end(), s.target.shape.dims, s.target.shape.dims + s.target.shape.ndim);
    Tensor t(dims, s.target.dtype);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (s.target.classes > 0)
        t.i()[i] = static_cast<int32_t>(rng() % s.target.classes);
      else
        t.f()[i] = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
    }
    return t;
  };
  std::vector<CheckResult> results;
  results.push_back(run_check(record, "gradient", [&](CheckResult& r) {
    if (accepted.empty())
      throw Failure("the loss accepts none of the predictions tried: " +
                    runtime::join(refused, "; "));
    GradientSettings gradient;
    gradient.batch = kBatch;
    gradient.input_scale = 2.0f;
    GradientTotals totals;
    std::mt19937 rng(5);
    std::vector<std::string> texts;
    for (const Setup& s : accepted) {
      totals.add(s.text, check_loss(record, *bound.get(), s.prediction, s.target,
                                    target_for(s, rng), gradient));
      texts.push_back(s.text);
    }
    totals.finish(r, runtime::join(texts, " and "), gradient.tolerance);
    add_note(r, runtime::join(refused, "; "));
  }));
  if (accepted.empty()) {
    for (const char* name : {"determinism", "learns"})
      results.push_back(skipped(record, name, "no prediction shape was accepted"));
    return results;
  }
  results.push_back(run_check(record, "determinism", [&](CheckResult& r) {
    const Setup& s = accepted.front();
    std::mt19937 rng(11);
    LossUnderTest first(record, *bound.get(), s.prediction, s.target, kBatch);
    LossUnderTest second(record, *bound.get(), s.prediction, s.target, kBatch);
    fill_random(first.prediction, rng, 2.0f);
    second.prediction = first.prediction;
    first.target = second.target = target_for(s, rng);
    const graft_exec_ctx ctx = layer_context(true, kBatch);
    const double loss = first.forward(ctx);
    const std::vector<double> metrics = first.metrics;
    if (first.forward(ctx) != loss || first.metrics != metrics)
      throw Failure("forward gave a different loss or metrics for the same input");
    if (second.forward(ctx) != loss)
      throw Failure("a second instance gave a different loss for the same input");
    first.backward(ctx, 0.25f);
    const Tensor gradient = first.dprediction;
    first.backward(ctx, 0.25f);
    expect_same(gradient, first.dprediction, "backward gave a different dprediction");
    r.value =
        "loss, metrics and gradient bit-identical when repeated and in a second instance, "
        "on " +
        s.text;
  }));
  results.push_back(skipped(record, "save_load", "losses have no parameters"));
  const Setup* flat = nullptr;
  for (const Setup& s : accepted)
    if (!flat && s.prediction.size() == 1) flat = &s;
  if (flat)
    results.push_back(
        loss_learns(registry, record, options, flat->prediction[0], flat->target, settings));
  else
    results.push_back(skipped(record, "learns", "the loss accepts no flat prediction (N, C)"));
  if (record.entry->flags & GRAFT_ENTRY_HAS_CUDA) results.push_back(cuda_line(record));
  return results;
}

}  // namespace graft::checker::detail
