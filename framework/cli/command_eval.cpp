// graft eval CONFIG --checkpoint PATH: the checkpoint's loss and metrics on the test split.
#include <cstdio>

#include "checkpoint/checkpoint.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "train/trainer.hpp"

namespace graft::cli {

int evaluate(const Arguments& args) {
  return run_job_command("eval", [&](runtime::Job& job) {
    ConfigArguments a;
    std::string checkpoint;
    po::options_description options("graft eval options");
    add_config_options(options, a);
    options.add_options()("checkpoint", po::value<std::string>(&checkpoint)->required(),
                          "a step_N.safetensors file, or a run folder (its newest checkpoint)");
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args, "usage: graft eval CONFIG --checkpoint PATH", options, positional)) return 0;
    runtime::Session session(load(a), session_options(a, job));
    runtime::TrainingPosition at = runtime::load_checkpoint(checkpoint, *session.model);
    runtime::EvalSummary e = runtime::evaluate(session, *session.test_set);
    if (session.rank != 0) return 0;  // rank 0 speaks for the job
    std::printf("checkpoint step %lld: test %s over %lld samples\n",
                static_cast<long long>(at.step), runtime::describe(e).c_str(),
                static_cast<long long>(e.rows));
    return 0;
  });
}

}  // namespace graft::cli
