// graft train CONFIG [--set key=value ...]
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "train/trainer.hpp"

namespace graft::cli {

int train(const Arguments& args) {
  return run_job_command("train", [&](runtime::Job& job) {
    ConfigArguments a;
    po::options_description options("graft train options");
    add_config_options(options, a);
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args, "usage: graft train CONFIG [--set key=value ...] [--plugin-dir DIR ...]",
               options, positional))
      return 0;
    runtime::Session session(load(a), session_options(a, job));
    // Rank 0 speaks for the job (DESIGN.md §7); every rank prints its own errors.
    const bool speaks = session.rank == 0;
    if (speaks)
      std::fprintf(stderr, "graft train: %s, %zu parameters, %s on %d rank(s), run folder %s\n",
                   session.config.file.c_str(), session.model->parameter_count(),
                   session.strategy->name().c_str(), session.world, session.run_dir.c_str());
    runtime::TrainSummary s = runtime::train(session);
    if (!speaks) return 0;
    std::printf("trained %lld steps in %.1f s; final train loss %.4f",
                static_cast<long long>(s.steps), s.seconds, s.last_loss);
    if (s.last_eval.rows > 0) std::printf("; test %s", runtime::describe(s.last_eval).c_str());
    std::printf("\n");
    return 0;
  });
}

}  // namespace graft::cli
