// Sampling text from a trained sequence model (`graft generate`, and the samples a text run
// prints at each evaluation): the model again for one token per call, its attention keeping
// keys and values of the positions before (layer.h's set_positions), so a token costs one
// position's work rather than the whole prefix's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "session/session.hpp"

namespace graft::runtime {

struct SamplingOptions {
  int64_t tokens = 200;      // how many to sample after the prompt
  double temperature = 1.0;  // logits / temperature; 0 takes the likeliest token (greedy)
  int64_t top_k = 0;         // sample among the k likeliest only; 0: all
  uint64_t seed = 0;
  // false: recompute every position of the window for each token (the reference the cache
  // is measured and tested against); the windows and so the tokens are the same.
  bool cache = true;
};

class Generator {
 public:
  // Over the session's trained model, whose parameters it copies (now, and by refresh()): this
  // process must hold the whole model (one stage, no tensor parts, no ZeRO shards).
  explicit Generator(Session& session);
  ~Generator();

  // The model's parameters again (a training run samples as it learns).
  void refresh();
  // `prompt` continued by options.tokens sampled ids (only those are returned). The window of
  // positions the model sees is at most the training context T: once full it restarts from
  // the last T/2 tokens, so a generation of any length runs within what the model learned.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, const SamplingOptions& options);
  int64_t context() const { return context_; }

 private:
  // The logits (vocabulary) after the window's last token.
  const float* next_logits(const std::vector<int32_t>& window, bool cache, bool restarted);
  int32_t sample(const float* logits, const SamplingOptions& options, std::mt19937_64& rng);

  Session& session_;
  int64_t context_ = 0;            // T
  int64_t vocabulary_ = 0;         // V: the classes of the targets
  std::unique_ptr<Model> step_;    // input (1): one position per call, with the cache
  std::unique_ptr<Model> window_;  // input (T): the whole window per call (cache = false)
  int64_t cached_ = 0;             // positions the step model's layers hold
  std::vector<float> scratch_;
};

// "\"text with \\n escapes\"": a sample as one log line.
std::string quoted(const std::string& text);

// A text dataset's vocabulary as JSON, one string per id (bytes that are not UTF-8 alone show
// as U+FFFD), which a text run saves beside its checkpoints as vocabulary.json.
std::string vocabulary_json(const DatasetInstance& data);
// That the dataset's vocabulary is the one saved in the run folder of `checkpoint` (a run
// folder, its checkpoints folder or a step file), when one was saved; else a UserError naming
// both, since ids would then decode to other characters than the model learned.
void check_vocabulary(const DatasetInstance& data, const std::filesystem::path& checkpoint);

}  // namespace graft::runtime
