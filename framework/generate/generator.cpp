// Generation: one position per forward call with the layers' caches, or the whole window per
// call as the reference; sampling by temperature and top-k from a seeded generator.
#include "generate/generator.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/errors.hpp"

namespace graft::runtime {

namespace {

graft_shape positions(int64_t t) {
  graft_shape s{};
  s.ndim = 1;
  s.dims[0] = t;
  return s;
}

// The parameters of `from` into `to`, which must have the same layout: the same model with
// another sequence length, whose parameters do not depend on it.
void copy_parameters(Model& from, Model& to) {
  const std::vector<ParameterInfo>& a = from.parameters();
  const std::vector<ParameterInfo>& b = to.parameters();
  bool same = a.size() == b.size() && from.parameter_count() == to.parameter_count();
  for (size_t i = 0; same && i < a.size(); ++i)
    same = a[i].numel == b[i].numel && a[i].offset == b[i].offset && a[i].held;
  if (!same)
    throw UserError(
        "generation needs a model whose parameters do not depend on the sequence length (layers "
        "that act at each position: linear with flatten = false, layer_norm with "
        "normalized_dims = 1, attention, positional_embedding with max_positions), held whole by "
        "this process");
  from.copy_to_host(from.store().parameter_data(), to.store().parameter_data(),
                    to.parameter_count());
}

}  // namespace

Generator::Generator(Session& session) : session_(session) {
  const graft_dataset_info& info = session.train_set->info();
  if (info.input.ndim != 1 || info.target.classes <= 0 ||
      graft_shape_numel(&info.target.shape) != info.input.dims[0])
    throw UserError("[data] " + session.train_set->who() +
                    " does not give token sequences (input (T) ids, targets (T) next ids); "
                    "graft generate needs a text or tokens dataset");
  const ModelSettings& s = session.model->settings();
  if (s.stages > 1 || s.shards > 1 || s.zero_level > 0)
    throw UserError("generation needs the whole model in one process; this run splits it over " +
                    std::to_string(session.world) + " ranks ([parallel])");
  context_ = info.input.dims[0];
  vocabulary_ = info.target.classes;
  step_ = session.sequence_model(positions(1), 1);
  refresh();
}

Generator::~Generator() = default;

void Generator::refresh() {
  copy_parameters(*session_.model, *step_);
  if (window_) copy_parameters(*session_.model, *window_);
}

const float* Generator::next_logits(const std::vector<int32_t>& window, bool cache,
                                    bool restarted) {
  graft_exec_ctx ctx = session_.context(false);
  ctx.device = DLDevice{kDLCPU, 0};
  ctx.stream = nullptr;
  ctx.global_batch = 1;
  ctx.micro_batches = 1;
  if (!cache) {
    if (!window_) {
      window_ = session_.sequence_model(positions(context_), 1);
      copy_parameters(*session_.model, *window_);
    }
    // Causal layers never look ahead, so the padding after the window changes nothing.
    std::vector<float> ids(static_cast<size_t>(context_), 0.0f);
    for (size_t i = 0; i < window.size(); ++i) ids[i] = float(window[i]);
    int64_t shape[2] = {1, context_};
    DLTensor x{ids.data(), ctx.device, 2, DLDataType{kDLFloat, 32, 1}, shape, nullptr, 0};
    const DLTensor* y = window_->forward(ctx, 0, window_->layer_count(), x);
    return static_cast<const float*>(y->data) + (window.size() - 1) * size_t(vocabulary_);
  }
  // Feed what the cache lacks: the whole window after a restart, else its last token.
  if (restarted) cached_ = 0;
  const DLTensor* y = nullptr;
  for (size_t i = size_t(cached_); i < window.size(); ++i) {
    step_->set_positions(cached_, context_);
    float id = float(window[i]);
    int64_t shape[2] = {1, 1};
    DLTensor x{&id, ctx.device, 2, DLDataType{kDLFloat, 32, 1}, shape, nullptr, 0};
    y = step_->forward(ctx, 0, step_->layer_count(), x);
    ++cached_;
  }
  return static_cast<const float*>(y->data);
}

int32_t Generator::sample(const float* logits, const SamplingOptions& o, std::mt19937_64& rng) {
  const size_t v = static_cast<size_t>(vocabulary_);
  if (o.temperature <= 0.0) return int32_t(std::max_element(logits, logits + v) - logits);
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  size_t keep = o.top_k > 0 ? std::min(v, size_t(o.top_k)) : v;
  // Ties broken by id, so the candidates never depend on the sort's implementation.
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(keep), order.end(),
                    [&](int32_t a, int32_t b) {
                      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                    });
  scratch_.resize(keep);
  const double largest = logits[order[0]];
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    scratch_[i] = float(std::exp((logits[order[i]] - largest) / o.temperature));
    total += scratch_[i];
  }
  // 53 random bits as a double in [0, 1): the same draw on every platform.
  const double u = double(rng() >> 11) * 0x1.0p-53 * total;
  double running = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    running += scratch_[i];
    if (u < running) return order[i];
  }
  return order[keep - 1];
}

std::vector<int32_t> Generator::generate(const std::vector<int32_t>& prompt,
                                         const SamplingOptions& o) {
  if (prompt.empty()) throw UserError("generation needs a prompt of at least one token");
  for (int32_t id : prompt)
    if (id < 0 || id >= vocabulary_)
      throw UserError("the prompt's token " + std::to_string(id) + " is outside the model's " +
                      std::to_string(vocabulary_) + " ids");
  std::mt19937_64 rng(o.seed);
  const size_t limit = size_t(context_), keep = std::max<size_t>(limit / 2, 1);
  // The window: the prompt's last tokens, as many as a restart keeps when it is too long.
  std::vector<int32_t> window(
      prompt.size() > limit ? prompt.end() - std::ptrdiff_t(keep) : prompt.begin(), prompt.end());
  step_->set_positions(0, context_);
  const float* logits = next_logits(window, o.cache, true);
  std::vector<int32_t> out;
  for (int64_t n = 0; n < o.tokens; ++n) {
    const int32_t next = sample(logits, o, rng);
    out.push_back(next);
    if (n + 1 == o.tokens) break;
    bool restarted = false;
    if (window.size() == limit) {
      window.erase(window.begin(), window.end() - std::ptrdiff_t(keep - 1));
      restarted = true;
    }
    window.push_back(next);
    logits = next_logits(window, o.cache, restarted);
  }
  step_->set_positions(-1, 0);
  return out;
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '"' || c == '\\')
      out += std::string("\\") + c;
    else
      out += c;
  }
  return out + "\"";
}

std::string vocabulary_json(const DatasetInstance& data) {
  nlohmann::json tokens = nlohmann::json::array();
  for (int32_t id = 0; id < int32_t(data.info().target.classes); ++id)
    tokens.push_back(data.decode(&id, 1));
  return tokens.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void check_vocabulary(const DatasetInstance& data, const std::filesystem::path& checkpoint) {
  namespace fs = std::filesystem;
  fs::path run = checkpoint;
  if (!fs::is_directory(run)) run = run.parent_path();
  if (run.filename() == "checkpoints") run = run.parent_path();
  const fs::path saved = run / "vocabulary.json";
  if (!fs::exists(saved)) return;  // a run from before vocabularies were saved
  std::ifstream in(saved);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str() == vocabulary_json(data)) return;
  throw UserError("[data] " + data.who() + " gives another vocabulary than " + saved.string() +
                  ", which the checkpoint was trained with: the text at [data] path has changed; "
                  "point [data] at the corpus of that run");
}

}  // namespace graft::runtime
