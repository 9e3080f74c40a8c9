// graft's entry point: the first word picks the command; each command parses the rest.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace {
const char* const kUsage =
    "graft " GRAFT_VERSION
    " — train neural networks from one TOML file, with plugins\n"
    "\n"
    "usage: graft <command> [options]\n"
    "\n"
    "commands:\n"
    "  train CONFIG [--set key=value ...]   train as the config says\n"
    "  validate CONFIG [--world N]          check plugins, options and shapes; print the model\n"
    "                                       (and each rank's placement in a job of N ranks)\n"
    "  eval CONFIG --checkpoint PATH        loss and metrics of a checkpoint on the test split\n"
    "  plugins [--json]                     every installed plugin with its options\n"
    "  check-plugin LIBRARY [--name NAME]   gradients, ABI, determinism, learns a toy task\n"
    "  verify CONFIG --strategies a,b,...   (under mpirun) each strategy against single\n"
    "  generate CONFIG --checkpoint RUN     text sampled from a trained sequence model\n"
    "  sweep CONFIG --grid KEY=V1,V2,...    one run per combination, then a table of them\n"
    "\n"
    "graft <command> --help shows a command's options.\n";
}

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::puts("graft " GRAFT_VERSION);
    return 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "train") return graft::cli::train(args);
  if (command == "validate") return graft::cli::validate(args);
  if (command == "eval") return graft::cli::evaluate(args);
  if (command == "plugins") return graft::cli::plugins(args);
  if (command == "check-plugin") return graft::cli::check_plugin(args);
  if (command == "verify") return graft::cli::verify(args);
  if (command == "generate") return graft::cli::generate(args);
  if (command == "sweep") return graft::cli::sweep(args);
  std::fprintf(stderr, "graft: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
