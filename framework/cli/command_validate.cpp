// graft validate CONFIG: loads every plugin, checks every key and shape, prints the model with
// parameter counts and planned memory. Trains nothing.
#include <chrono>
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "model/tensor_view.hpp"

namespace graft::cli {

namespace {
std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 3) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}
}  // namespace

int validate(const Arguments& args) {
  return run_command("validate", [&] {
    const auto start = std::chrono::steady_clock::now();
    ConfigArguments a;
    po::options_description options("graft validate options");
    add_config_options(options, a);
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args, "usage: graft validate CONFIG [--set key=value ...]", options, positional))
      return 0;
    runtime::Session session(load(a), session_options(a));
    const runtime::Model& m = *session.model;
    const graft_dataset_info& data = session.train_set->info();
    std::printf("%s: valid\n\n", session.config.file.c_str());
    std::printf("data     %s: %lld training samples%s, input %s\n", session.config.data.reader.c_str(),
                static_cast<long long>(data.samples),
                session.test_set ? (", " + std::to_string(session.test_set->info().samples) + " test").c_str() : "",
                runtime::shape_string(data.input).c_str());
    std::printf("\n  #  layer            output            parameters\n");
    std::printf("     input            %-17s\n", runtime::shape_string(m.input_shape()).c_str());
    // Layers inside residual blocks are indented under their block, without a number.
    long long top = 0;
    for (const runtime::Model::LayerRow& row : m.layer_rows()) {
      const std::string name = std::string(2 * size_t(row.depth), ' ') + row.name;
      const std::string number = row.depth == 0 ? std::to_string(top++) : "";
      std::printf("%3s  %-16s %-17s %10lld\n", number.c_str(), name.c_str(),
                  runtime::shape_string(row.output).c_str(), static_cast<long long>(row.parameters));
    }
    std::printf("\nparameters %zu (%s); optimizer state: %zu tensors per parameter\n",
                m.parameter_count(), human_bytes(double(m.parameter_count()) * 4).c_str(),
                m.optimizer_state_names().size());
    const int64_t micro = session.config.run.gradient_accumulation;
    const std::string accumulation =
        micro > 1 ? " (batch " + std::to_string(session.config.data.batch_size) + " as " +
                        std::to_string(micro) + " micro-batches)"
                  : "";
    std::printf("memory planned at batch %lld%s: %s (parameters, gradients, optimizer state, "
                "activations)\n",
                static_cast<long long>(m.planned_rows()), accumulation.c_str(),
                human_bytes(double(m.planned_bytes())).c_str());
    std::printf("loss %s, optimizer %s (lr %g, schedule %s), strategy %s\n",
                session.config.loss.type.c_str(), session.config.optimizer.type.c_str(),
                session.config.optimizer.lr, session.config.optimizer.schedule.type.c_str(),
                session.strategy->name.c_str());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("checked in %.1f ms\n", ms);
    return 0;
  });
}

}  // namespace graft::cli
