// Shared pieces of the plugin checks: the exception-to-FAIL wrapper, the formatting, and the
// helpers of the gradient and determinism checks.
#include "check/check_common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>

#include "util/errors.hpp"

namespace graft::checker::detail {

CheckResult run_check(const runtime::PluginRecord& record, const std::string& check,
                      const std::function<void(CheckResult&)>& body) {
  CheckResult result{record.name, runtime::kind_name(record.kind), check, Outcome::pass, "", ""};
  try {
    body(result);
  } catch (const std::exception& e) {
    result.outcome = Outcome::fail;
    result.message = e.what();
  } catch (...) {
    result.outcome = Outcome::fail;
    result.message = "an exception that is not a std::exception";
  }
  return result;
}

CheckResult skipped(const runtime::PluginRecord& record, const std::string& check,
                    const std::string& why) {
  return CheckResult{record.name, runtime::kind_name(record.kind), check, Outcome::skip, "", why};
}

std::string number(double value) {
  char buffer[32];
  const double magnitude = std::fabs(value);
  if (value != 0.0 && std::isfinite(value) && (magnitude < 1e-3 || magnitude >= 1e5))
    std::snprintf(buffer, sizeof buffer, "%.2e", value);
  else
    std::snprintf(buffer, sizeof buffer, "%.3g", value);
  return buffer;
}

std::string count(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes) {
  std::string out;
  for (size_t i = 0; i < shapes.size(); ++i) out += (i ? " and " : "") + shape_text(shapes[i]);
  return out;
}

runtime::BoundOptions bind(const runtime::PluginRecord& record, const toml::table& table) {
  return runtime::bind_options(*record.entry, &table, "[" + record.name + "]", {"type"});
}

std::string difference_text(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return "shapes differ";
  int64_t differing = 0;
  double largest = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(&a.f()[i], &b.f()[i], sizeof(float)) == 0) continue;
    ++differing;
    const double d = std::fabs(double(a.f()[i]) - double(b.f()[i]));
    if (!(d <= largest)) largest = d;  // NaN counts as the largest
  }
  return std::to_string(differing) + " of " + std::to_string(a.numel()) +
         " values differ, by up to " + number(largest);
}

void expect_same(const Tensor& first, const Tensor& second, const std::string& what) {
  if (!same_bits(first, second))
    throw runtime::Failure(what + ": " + difference_text(first, second));
}

void add_note(CheckResult& r, const std::string& note) {
  if (note.empty()) return;
  r.message += (r.message.empty() ? "" : "; ") + note;
}

CheckResult cuda_line(const runtime::PluginRecord& record) {
  return skipped(record, "cuda",
                 "the plugin ships CUDA kernels, but graft has no CUDA device "
                 "yet; only the CPU path was checked");
}

graft_exec_ctx layer_context(bool training, int64_t rows) {
  graft_exec_ctx ctx = cpu_context(training);
  ctx.global_batch = rows;
  ctx.layer_index = 0;
  ctx.step = 3;
  return ctx;
}

void GradientTotals::add(const std::string& shape, const GradientReport& report) {
  worst = std::max(worst, report.worst_error);
  checked += report.checked;
  for (const std::string& line : report.failures)
    if (failures.size() < 3) failures.push_back("on " + shape + ": " + line);
}

void GradientTotals::finish(CheckResult& r, const std::string& shapes, double tolerance) const {
  r.value = "max relative error " + number(worst) + " over " + std::to_string(checked) +
            " values on " + shapes + " (tolerance " + number(tolerance) + ")";
  if (!failures.empty()) {
    r.outcome = Outcome::fail;
    r.message = runtime::join(failures, "; ");
  }
}

const std::vector<std::vector<int64_t>>& candidate_layer_shapes() {
  // A flat feature vector (what follows linear), a sequence of 4 positions (what attention and
  // positional embeddings take) and a small image (what conv2d and pooling take).
  static const std::vector<std::vector<int64_t>> shapes{{8}, {4, 8}, {3, 8, 8}};
  return shapes;
}

}  // namespace graft::checker::detail
