// Options every config-driven command shares (CONFIG, --set, --plugin-dir, --help) and the
// mapping of exceptions to exit codes.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

#include "comm/job.hpp"
#include "config/config.hpp"
#include "session/session.hpp"

namespace graft::cli {

namespace po = boost::program_options;

struct ConfigArguments {
  std::string config;
  std::vector<std::string> overrides;
  std::vector<std::string> plugin_dirs;
};

// Adds CONFIG, --set and --plugin-dir to `options`.
void add_config_options(po::options_description& options, ConfigArguments& out);

// Parses args; prints usage and returns false when --help was asked.
bool parse(const std::vector<std::string>& args, const std::string& usage,
           po::options_description& options, const po::positional_options_description& positional);

runtime::Config load(const ConfigArguments& a);
runtime::SessionOptions session_options(const ConfigArguments& a);
// For a command that trains: the session belongs to `job` (rank, world, communicator).
runtime::SessionOptions session_options(const ConfigArguments& a, runtime::Job& job);

// Runs body, printing errors as "graft <command>: error: ..." and returning the exit code.
int run_command(const std::string& command, const std::function<int()>& body);

// For commands that may run under mpirun (train, eval, verify): starts the job first (MPI
// when mpirun started the process, else a world of one), runs body with it, and maps errors
// to exit codes like run_command. Under MPI every rank prints its own error, prefixed with its
// rank, and a rank that failed takes the job down with it (Job::fail): none is left waiting.
int run_job_command(const std::string& command, const std::function<int(runtime::Job& job)>& body);

}  // namespace graft::cli
