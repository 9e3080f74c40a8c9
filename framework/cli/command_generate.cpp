// graft generate CONFIG --checkpoint RUN [--prompt TEXT] [--tokens N] [--temperature T]
// [--top-k K] [--seed S] [--no-cache]: text sampled from a trained sequence model.
#include <chrono>
#include <cstdio>

#include "checkpoint/checkpoint.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "generate/generator.hpp"
#include "util/errors.hpp"

namespace graft::cli {

int generate(const Arguments& args) {
  return run_job_command("generate", [&](runtime::Job& job) {
    ConfigArguments a;
    std::string checkpoint, prompt = "\n";
    runtime::SamplingOptions o;
    bool no_cache = false;
    po::options_description options("graft generate options");
    add_config_options(options, a);
    options.add_options()("checkpoint", po::value<std::string>(&checkpoint)->required(),
                          "a step_N.safetensors file, or a run folder (its newest checkpoint)")(
        "prompt", po::value<std::string>(&prompt), "the text to continue (default: a newline)")(
        "tokens", po::value<int64_t>(&o.tokens)->default_value(200), "tokens to sample")(
        "temperature", po::value<double>(&o.temperature)->default_value(1.0),
        "divides the logits; 0 always takes the likeliest token")(
        "top-k", po::value<int64_t>(&o.top_k)->default_value(0),
        "sample among the k likeliest tokens only; 0: all")(
        "seed", po::value<uint64_t>(&o.seed)->default_value(0), "the same seed, the same text")(
        "no-cache", po::bool_switch(&no_cache),
        "recompute the whole window for every token instead of keeping keys and values (slower; "
        "the same text)");
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args,
               "usage: graft generate CONFIG --checkpoint RUN [--prompt TEXT] [--tokens N] "
               "[--temperature T] [--top-k K] [--seed S] [--no-cache]",
               options, positional))
      return 0;
    if (o.tokens < 0 || o.temperature < 0.0 || o.top_k < 0)
      throw runtime::UserError(
          "graft generate: --tokens, --temperature and --top-k take values >= 0");
    o.cache = !no_cache;
    runtime::SessionOptions so = session_options(a, job);
    so.open_test_split = false;
    so.write_outputs = false;
    runtime::Session session(load(a), so);
    if (session.world > 1)
      throw runtime::UserError("graft generate runs in one process; start it without mpirun");
    runtime::load_checkpoint(checkpoint, *session.model);
    if (session.train_set->has_text()) runtime::check_vocabulary(*session.train_set, checkpoint);
    runtime::Generator generator(session);
    runtime::DatasetInstance& data = *session.train_set;
    std::vector<int32_t> ids;
    if (data.has_text())
      ids = data.encode(prompt);
    else
      ids = {0};  // a dataset of bare ids has no text to begin from
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> out = generator.generate(ids, o);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (data.has_text()) {
      std::fputs((prompt + data.decode(out.data(), int64_t(out.size()))).c_str(), stdout);
      std::fputs("\n", stdout);
    } else {
      for (int32_t id : out) std::printf("%d ", id);
      std::printf("\n");
    }
    std::fprintf(stderr, "graft generate: %zu tokens in %.3f s (%.1f tokens/s, %s)\n", out.size(),
                 seconds, seconds > 0 ? double(out.size()) / seconds : 0.0,
                 o.cache ? "key-value cache" : "whole window recomputed per token");
    return 0;
  });
}

}  // namespace graft::cli
