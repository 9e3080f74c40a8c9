// Stage placement (balanced or explicit), the gpipe and 1f1b orders, and micro-batch sizes.
// Errors are the user's to fix: each names the key or the rank count, and the fix (the host
// prefixes "[parallel] strategy 'pipeline': ").
#include "stage_plan.hpp"

#include <algorithm>
#include <limits>

#include <graft/cpp/core.hpp>

namespace graft::pipeline {

namespace {
// "[[0, 3], [4, 7]] (stage 0: layers 0..3, stage 1: layers 4..7)" for a model of n_layers.
std::string example_pairs(int64_t n_layers) {
  if (n_layers < 2) return "[[0, 0]] (stage 0: layer 0)";
  const int64_t half = n_layers / 2;
  const std::string a = std::to_string(half - 1), b = std::to_string(half),
                    c = std::to_string(n_layers - 1);
  return "[[0, " + a + "], [" + b + ", " + c + "]] (stage 0: layers 0.." + a +
         ", stage 1: layers " + b + ".." + c + ")";
}
}  // namespace

// As pairs when the count is even ("[[0, 3], [4, 7]]"), else as given ("[0, 3, 4]").
std::string format_pairs(const std::vector<int64_t>& pairs) {
  const bool paired = !pairs.empty() && pairs.size() % 2 == 0;
  std::string s = "[";
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i) s += ", ";
    if (paired && i % 2 == 0) s += "[";
    s += std::to_string(pairs[i]);
    if (paired && i % 2 == 1) s += "]";
  }
  return s + "]";
}

StageBounds balance_stages(const std::vector<int64_t>& parameters, int32_t stages) {
  const int64_t n = static_cast<int64_t>(parameters.size());
  GRAFT_CHECK(stages >= 1, "a pipeline needs at least one stage");
  GRAFT_CHECK(stages <= n, "the job has " << stages
                                          << " ranks, one pipeline stage each, but the "
                                             "model has only "
                                          << n << " top-level layers; run with at most " << n
                                          << " ranks (mpirun -np " << n
                                          << ") or give the model more layers");
  std::vector<int64_t> prefix(size_t(n) + 1, 0);
  for (int64_t i = 0; i < n; ++i) prefix[size_t(i) + 1] = prefix[size_t(i)] + parameters[size_t(i)];
  auto sum = [&](int64_t a, int64_t b) { return prefix[size_t(b)] - prefix[size_t(a)]; };

  // best[i]: the smallest largest-stage for layers [0, i) in k stages (k grows each round).
  const int64_t inf = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> best(size_t(n) + 1, inf), next(size_t(n) + 1, inf);
  for (int64_t i = 1; i <= n; ++i) best[size_t(i)] = sum(0, i);
  for (int32_t k = 2; k <= stages; ++k) {
    std::fill(next.begin(), next.end(), inf);
    for (int64_t i = k; i <= n; ++i)
      for (int64_t j = k - 1; j < i; ++j)
        next[size_t(i)] = std::min(next[size_t(i)], std::max(best[size_t(j)], sum(j, i)));
    best.swap(next);
  }
  const int64_t bound = best[size_t(n)];

  // Greedy under that bound: as far as each stage may go while leaving a layer for each later
  // stage. It always reaches the end within the bound (it is never behind an optimal split).
  StageBounds out;
  out.first.push_back(0);
  int64_t at = 0;
  for (int32_t s = 0; s < stages; ++s) {
    int64_t end = at + 1;
    const int64_t last_allowed = n - (stages - s - 1);
    if (s == stages - 1)
      end = n;
    else
      while (end < last_allowed && sum(at, end + 1) <= bound) ++end;
    out.first.push_back(end);
    at = end;
  }
  return out;
}

StageBounds explicit_stages(const std::vector<int64_t>& pairs, int64_t n_layers) {
  const std::string given = "stages = " + format_pairs(pairs);
  const std::string fix = "; the stages must cover layers 0.." + std::to_string(n_layers - 1) +
                          " in order, each exactly once, as a list of [first, last] pairs, "
                          "e.g. stages = " +
                          example_pairs(n_layers);
  GRAFT_CHECK(!pairs.empty() && pairs.size() % 2 == 0,
              given << ": expected [first, last] pairs of layer indices" << fix);
  const int32_t stages = static_cast<int32_t>(pairs.size() / 2);
  GRAFT_CHECK(stages <= n_layers, given << ": " << stages << " stages but the model has only "
                                        << n_layers << " top-level layers" << fix);
  StageBounds out;
  int64_t expected = 0;
  for (int32_t s = 0; s < stages; ++s) {
    const int64_t first = pairs[2 * size_t(s)], last = pairs[2 * size_t(s) + 1];
    const std::string previous = s == 0 ? std::string(", not at layer 0")
                                        : ", but stage " + std::to_string(s - 1) +
                                              " ended at layer " + std::to_string(expected - 1);
    GRAFT_CHECK(first == expected,
                given << ": stage " << s << " starts at layer " << first << previous << fix);
    GRAFT_CHECK(last >= first, given << ": stage " << s << " ends (layer " << last
                                     << ") before it starts (layer " << first << ")" << fix);
    GRAFT_CHECK(last < n_layers, given << ": stage " << s << " ends at layer " << last
                                       << ", but the model's last layer is " << n_layers - 1
                                       << fix);
    out.first.push_back(first);
    expected = last + 1;
  }
  GRAFT_CHECK(expected == n_layers, given << ": layers " << expected << ".." << n_layers - 1
                                          << " are in no stage" << fix);
  out.first.push_back(n_layers);
  return out;
}

// Stages before the last run `extra` more warm-up forwards: 1f1b with none has no slack, so
// a late message or a slow micro-batch on one stage idles its neighbours at once.
static int64_t warm_up_of(int32_t stage, int32_t stages, int64_t micro, int32_t extra) {
  return std::min<int64_t>(stages - stage - 1 + (stage < stages - 1 ? extra : 0), micro);
}

Op schedule_op(bool one_f_one_b, int32_t stage, int32_t stages, int64_t micro, int64_t i,
               int32_t extra) {
  if (!one_f_one_b) return i < micro ? Op{true, i} : Op{false, i - micro};
  const int64_t warm_up = warm_up_of(stage, stages, micro, extra);
  if (i < warm_up) return {true, i};
  const int64_t steady = i - warm_up;  // F(warm_up), B(0), F(warm_up + 1), B(1), ...
  if (steady < 2 * (micro - warm_up))
    return steady % 2 == 0 ? Op{true, warm_up + steady / 2} : Op{false, steady / 2};
  return {false, micro - warm_up + (steady - 2 * (micro - warm_up))};
}

int32_t in_flight(bool one_f_one_b, int32_t stage, int32_t stages, int64_t micro, int32_t extra) {
  const int64_t n =
      one_f_one_b ? std::min<int64_t>(micro, warm_up_of(stage, stages, micro, extra) + 1) : micro;
  return static_cast<int32_t>(std::max<int64_t>(n, 1));
}

MicroBatches::MicroBatches(int64_t global_rows, int64_t requested) : rows(global_rows) {
  const int64_t m = std::max<int64_t>(requested, 1);
  size = std::max<int64_t>((global_rows + m - 1) / m, 1);
  count = (global_rows + size - 1) / size;
}

}  // namespace graft::pipeline
