// Shared command-line plumbing.
#include "cli/common.hpp"

#include <cstdio>
#include <iostream>

#include "util/errors.hpp"

namespace graft::cli {

void add_config_options(po::options_description& options, ConfigArguments& out) {
  options.add_options()("config", po::value<std::string>(&out.config)->required(),
                        "the run's TOML file")(
      "set", po::value<std::vector<std::string>>(&out.overrides)->composing(),
      "override a config key, e.g. --set optimizer.lr=0.05 (repeatable)")(
      "plugin-dir", po::value<std::vector<std::string>>(&out.plugin_dirs)->composing(),
      "also load graft_*.so plugins from this folder (repeatable)");
}

bool parse(const std::vector<std::string>& args, const std::string& usage,
           po::options_description& options, const po::positional_options_description& positional) {
  options.add_options()("help,h", "show this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << options << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

runtime::Config load(const ConfigArguments& a) {
  return runtime::load_config(a.config, a.overrides);
}

runtime::SessionOptions session_options(const ConfigArguments& a) {
  runtime::SessionOptions o;
  o.plugin_dirs = a.plugin_dirs;
  return o;
}

runtime::SessionOptions session_options(const ConfigArguments& a, runtime::Job& job) {
  runtime::SessionOptions o = session_options(a);
  o.job = &job;
  return o;
}

namespace {

// Prints the exception being handled and returns its exit code. `who` is "" or " (rank r of n)".
int print_error(const std::string& command, const std::string& who) {
  const char* c = command.c_str();
  try {
    throw;
  } catch (const po::error& e) {
    std::fprintf(stderr, "graft %s%s: error: %s (see graft %s --help)\n", c, who.c_str(), e.what(),
                 c);
    return 2;
  } catch (const runtime::UserError& e) {
    std::fprintf(stderr, "graft %s%s: error: %s\n", c, who.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft %s%s: failed: %s\n", c, who.c_str(), e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "graft %s%s: failed: an unknown exception\n", c, who.c_str());
    return 1;
  }
}

}  // namespace

int run_command(const std::string& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (...) {
    return print_error(command, "");
  }
}

int run_job_command(const std::string& command, const std::function<int(runtime::Job& job)>& body) {
  std::unique_ptr<runtime::Job> job;
  try {
    job = runtime::start_job();
  } catch (...) {
    return print_error(command, "");
  }
  const std::string who = job->distributed()
                              ? " (rank " + std::to_string(job->world().rank()) + " of " +
                                    std::to_string(job->world().size()) + ")"
                              : "";
  try {
    return body(*job);
  } catch (...) {
    return job->fail(print_error(command, who));
  }
  // The job ends as `job` goes: under MPI, a barrier every rank reaches, then MPI_Finalize.
}

}  // namespace graft::cli
