// The resolved config saved with a run: the merged tree with every framework default and each
// plugin's resolved options written out, so the file shows every value the run used.
#include "config/config.hpp"

#include <sstream>

#include "util/errors.hpp"

namespace graft::runtime {

namespace {

toml::table& table_at(toml::table& root, const std::string& key) {
  toml::node* node = root.get(key);
  if (!node || !node->is_table())
    return *root.insert_or_assign(key, toml::table{}).first->second.as_table();
  return *node->as_table();
}

// The table at a dotted path such as "model.layers.2"; missing tables are created.
toml::table& table_at_path(toml::table& root, const std::string& path) {
  toml::node* current = &root;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string segment = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (toml::table* table = current->as_table()) {
      toml::node* child = table->get(segment);
      current = child ? child : &table_at(*table, segment);
    } else if (toml::array* list = current->as_array()) {
      bool digits = !segment.empty() && segment.size() < 10 &&
                    segment.find_first_not_of("0123456789") == std::string::npos;
      size_t index = digits ? std::stoul(segment) : list->size();
      if (index >= list->size())
        throw Failure("resolved_toml: '" + path + "' has no entry '" + segment + "'");
      current = list->get(index);
    } else {
      throw Failure("resolved_toml: '" + path + "' does not lead to a table");
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (!current->is_table()) throw Failure("resolved_toml: '" + path + "' is not a table");
  return *current->as_table();
}

void write_framework_values(const Config& config, toml::table& out) {
  const RunConfig& r = config.run;
  toml::table& run = table_at(out, "run");
  run.insert_or_assign("name", r.name);
  run.insert_or_assign("seed", static_cast<int64_t>(r.seed));
  run.insert_or_assign("device", r.device);
  run.insert_or_assign("tf32", r.tf32);
  run.insert_or_assign("deterministic", r.deterministic);
  run.insert_or_assign("epochs", r.epochs);
  run.insert_or_assign("steps", r.steps);
  run.insert_or_assign("output_dir", r.output_dir);
  run.insert_or_assign("log_every", r.log_every);
  run.insert_or_assign("eval_every", r.eval_every);
  run.insert_or_assign("threads", static_cast<int64_t>(r.threads));
  run.insert_or_assign("clip_grad_norm", r.clip_grad_norm);
  run.insert_or_assign("progress", r.progress);
  run.insert_or_assign("gradient_accumulation", r.gradient_accumulation);
  // Only when on: the table's presence is what turns early stopping on.
  if (r.early_stopping.enabled) {
    const EarlyStoppingConfig& e = r.early_stopping;
    toml::table stopping;
    stopping.insert_or_assign("metric", e.metric);
    stopping.insert_or_assign("mode", e.mode);
    stopping.insert_or_assign("patience", e.patience);
    stopping.insert_or_assign("min_delta", e.min_delta);
    run.insert_or_assign("early_stopping", std::move(stopping));
  }

  const DataConfig& d = config.data;
  toml::table& data = table_at(out, "data");
  data.insert_or_assign("reader", d.reader);
  data.insert_or_assign("batch_size", d.batch_size);
  data.insert_or_assign("eval_batch_size", d.eval_batch_size);
  data.insert_or_assign("shuffle", d.shuffle);
  data.insert_or_assign("drop_last", d.drop_last);

  const OptimizerConfig& o = config.optimizer;
  toml::table& optimizer = table_at(out, "optimizer");
  optimizer.insert_or_assign("type", o.type);
  optimizer.insert_or_assign("lr", o.lr);
  optimizer.insert_or_assign("decay_bias_and_norm", o.decay_bias_and_norm);
  // Only the keys the schedule type uses: the others had no effect on the run.
  toml::table schedule;
  schedule.insert_or_assign("type", o.schedule.type);
  for (const std::string& key : schedule_keys(o.schedule.type)) {
    if (key == "warmup_steps") schedule.insert_or_assign(key, o.schedule.warmup_steps);
    if (key == "step_size") schedule.insert_or_assign(key, o.schedule.step_size);
    if (key == "gamma") schedule.insert_or_assign(key, o.schedule.gamma);
    if (key == "min_lr") schedule.insert_or_assign(key, o.schedule.min_lr);
  }
  optimizer.insert_or_assign("schedule", std::move(schedule));

  toml::table& parallel = table_at(out, "parallel");
  parallel.insert_or_assign("strategy", config.parallel.strategy);
  parallel.insert_or_assign("timeout_s", config.parallel.timeout_s);

  const CheckpointConfig& c = config.checkpoint;
  toml::table& checkpoint = table_at(out, "checkpoint");
  checkpoint.insert_or_assign("every", c.every);
  checkpoint.insert_or_assign("keep", c.keep);
  checkpoint.insert_or_assign("resume", c.resume);
  checkpoint.insert_or_assign("enabled", c.enabled);

  toml::array paths;
  for (const std::string& path : config.plugin_paths) paths.push_back(path);
  table_at(out, "plugins").insert_or_assign("paths", std::move(paths));
}

}  // namespace

std::string resolved_toml(
    const Config& config,
    const std::vector<std::pair<std::string, const toml::table*>>& plugin_tables) {
  toml::table out = config.root;
  write_framework_values(config, out);
  for (const auto& [path, resolved] : plugin_tables) {
    if (!resolved) continue;
    toml::table& target = table_at_path(out, path);
    for (const auto& [key, value] : *resolved) target.insert_or_assign(key, value);
  }

  std::ostringstream text;
  text << "# The configuration this run used: includes and --set merged, every default filled in.\n"
       << "# Relative paths in plugin options are relative to " << config.directory.string()
       << "\n";
  // Sections in the order a person reads them (a toml::table would sort them by name).
  for (const char* name :
       {"run", "data", "model", "loss", "optimizer", "parallel", "checkpoint", "plugins"}) {
    toml::node* node = out.get(name);
    if (!node) continue;
    toml::table section;
    section.insert_or_assign(name, std::move(*node));
    text << "\n"
         << toml::toml_formatter(
                section, toml::toml_formatter::default_flags & ~toml::format_flags::indentation)
         << "\n";
  }
  return text.str();
}

}  // namespace graft::runtime
