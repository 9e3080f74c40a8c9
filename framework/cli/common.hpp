// Options every config-driven command shares (CONFIG, --set, --plugin-dir, --help) and the
// mapping of exceptions to exit codes.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "train/session.hpp"

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

// Runs body, printing errors as "graft <command>: error: ..." and returning the exit code.
int run_command(const std::string& command, const std::function<int()>& body);

}  // namespace graft::cli
