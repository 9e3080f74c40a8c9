// graft verify CONFIG --strategies single,data_parallel,... [--layouts 2x2x1:z1,...] --steps N
// [--tolerance T]: trains the config for N steps under each strategy and mesh layout in turn
// and compares losses and whole parameters with single's (DESIGN.md §4, "equivalence is the
// contract"). Run under mpirun.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "checkpoint/parameters_gather.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/verify_layouts.hpp"
#include "device/host_api.hpp"
#include "plugin/registry.hpp"
#include "train/trainer.hpp"
#include "util/errors.hpp"

namespace graft::cli {

namespace {

struct Trained {
  int32_t ranks = 1;
  std::vector<double> losses;                    // mean loss of each step
  std::vector<runtime::WholeTensor> parameters;  // whole, as single holds them
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  return out;
}

// `steps` steps, writing nothing, without evaluation or checkpoints.
runtime::Config finish(runtime::Config& c, int64_t steps) {
  c.run.steps = steps;
  c.run.epochs = 0;
  c.run.progress = "none";
  c.run.eval_every = 0;
  c.run.early_stopping.enabled = false;
  c.checkpoint.enabled = false;
  c.checkpoint.resume.clear();
  return std::move(c);
}

// The config as `strategy` trains it for `steps` steps, writing nothing, with `layout`'s
// overrides (a mesh layout) when given. The [parallel] table's own keys belong to the strategy
// the file names; when another trains, the others get their defaults.
runtime::Config config_for(const ConfigArguments& a, const std::string& file_strategy,
                           const std::string& strategy, int64_t steps,
                           const Layout* layout = nullptr) {
  ConfigArguments with = a;
  with.overrides.push_back("parallel.strategy=" + strategy);
  if (layout)
    for (const std::string& o : layout->overrides()) with.overrides.push_back(o);
  runtime::Config c = load(with);
  if (strategy != file_strategy)
    if (toml::table* parallel = c.root["parallel"].as_table()) {
      std::vector<std::string> others;
      // A layout keeps the host's keys (the mesh's degrees, zero, order) and its schedule.
      const std::vector<std::string>& keep = runtime::reserved_keys(runtime::Section::parallel);
      for (const auto& [key, value] : *parallel) {
        const bool own = layout && (std::find(keep.begin(), keep.end(), key.str()) != keep.end() ||
                                    (key.str() == "schedule" && !layout->schedule.empty()));
        if (key.str() != "strategy" && key.str() != "timeout_s" && !own)
          others.emplace_back(key.str());
      }
      for (const std::string& key : others) parallel->erase(key);
      if (layout) return finish(c, steps);
      // The mesh keys went with them (their nodes too): this strategy gets its own mesh.
      runtime::ParallelConfig own;
      own.strategy = c.parallel.strategy;
      own.timeout_s = c.parallel.timeout_s;
      own.file = c.parallel.file;
      own.table = c.parallel.table;
      c.parallel = own;
    }
  return finish(c, steps);
}

Trained train_one(const ConfigArguments& a, runtime::Job& job, const std::string& file_strategy,
                  const std::string& strategy, int64_t steps, const Layout* layout = nullptr) {
  // `single` is the reference: every rank trains it alone, in a session outside the job (a
  // world of one), so all hold the same reference without talking to each other.
  runtime::SessionOptions o = strategy == "single" ? session_options(a) : session_options(a, job);
  o.open_test_split = false;
  o.write_outputs = false;
  runtime::Session session(config_for(a, file_strategy, strategy, steps, layout), o);
  Trained t;
  t.ranks = session.world;
  runtime::train(session, [&](int64_t, double loss) { t.losses.push_back(loss); });
  t.parameters = runtime::gather_whole_parameters(*session.model, session.gather_groups(), false);
  return t;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

struct Differences {
  double loss = 0.0;        // largest |l - l_single| / |l_single| over the steps
  double parameters = 0.0;  // largest ||p - p_single|| / ||p_single|| over the tensors
  double elements = 0.0;    // largest max |p - p_single| / max |p_single| over the tensors
  std::string worst;        // the tensor of `parameters`
};

// Parameters pass or fail by each tensor's norm-wise difference: adam moves every element by
// about lr whatever its gradient, so an element whose gradient is float32 rounding noise moves
// by noise (fashion_mlp after 20 steps: element-wise 2e-4 under data_parallel, norm-wise 1e-6);
// a strategy's real mistakes (a missed reduction, a wrong shard) change whole tensors.
// Infinity when the two do not even have the same steps or tensors.
Differences differences(const Trained& t, const Trained& reference) {
  const double inf = INFINITY;
  Differences d;
  d.loss = t.losses.size() == reference.losses.size() ? 0.0 : inf;
  for (size_t s = 0; s < std::min(t.losses.size(), reference.losses.size()); ++s) {
    const double gap = std::fabs(t.losses[s] - reference.losses[s]);
    d.loss = std::max(d.loss, gap / std::max(std::fabs(reference.losses[s]), 1e-30));
  }
  std::map<std::string, const runtime::WholeTensor*> by_name;
  for (const runtime::WholeTensor& w : t.parameters) by_name[w.name] = &w;
  if (t.parameters.size() != reference.parameters.size()) d.parameters = d.elements = inf;
  for (const runtime::WholeTensor& ref : reference.parameters) {
    auto found = by_name.find(ref.name);
    if (found == by_name.end() || found->second->values.size() != ref.values.size()) {
      d.parameters = d.elements = inf;
      d.worst = ref.name + " (missing)";
      continue;
    }
    double gap_squared = 0.0, norm_squared = 0.0, largest_gap = 0.0, largest = 0.0;
    for (size_t i = 0; i < ref.values.size(); ++i) {
      const double gap = double(found->second->values[i]) - ref.values[i];
      gap_squared += gap * gap;
      norm_squared += double(ref.values[i]) * ref.values[i];
      largest_gap = std::max(largest_gap, std::fabs(gap));
      largest = std::max(largest, std::fabs(double(ref.values[i])));
    }
    const double relative = std::sqrt(gap_squared) / std::max(std::sqrt(norm_squared), 1e-30);
    if (!(relative <= d.parameters)) {  // NaN too: a diverged run must fail, not pass
      d.parameters = std::isnan(relative) ? inf : relative;
      d.worst = ref.name;
    }
    const double element = largest_gap / std::max(largest, 1e-30);
    d.elements = std::isnan(element) ? inf : std::max(d.elements, element);
  }
  if (std::isnan(d.loss)) d.loss = inf;
  return d;
}

}  // namespace

int verify(const Arguments& args) {
  return run_job_command("verify", [&](runtime::Job& job) {
    ConfigArguments a;
    std::string strategies_text, layouts_text;  // default strategies: below
    int64_t steps = 20;
    double tolerance = 1e-5;
    po::options_description options("graft verify options");
    add_config_options(options, a);
    options.add_options()("strategies", po::value<std::string>(&strategies_text),
                          "comma-separated strategies to train and compare with single (default "
                          "single,data_parallel; with --layouts alone: none)")(
        "layouts", po::value<std::string>(&layouts_text),
        "comma-separated mesh layouts DATAxPIPELINExTENSOR[:zN][:gpipe|:1f1b] to train under the "
        "mesh strategy and compare with single, e.g. 2x2x1,2x1x2:z1; all: every factorization "
        "of the job's ranks with every zero level and schedule")(
        "steps", po::value<int64_t>(&steps), "training steps under each strategy (default 20)")(
        "tolerance", po::value<double>(&tolerance),
        "largest relative difference that passes (default 1e-5)");
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args,
               "usage: mpirun -np N graft verify CONFIG [--strategies single,data_parallel,...] "
               "[--layouts 2x2x1,2x1x2:z1,...|all] [--steps N] [--tolerance T] "
               "[--set key=value ...]\n\n"
               "Trains CONFIG for N steps under each strategy in turn (single alone on every "
               "rank, the others over all N ranks) and compares each one's loss at every step "
               "and its final whole parameters with single's. loss diff: the largest "
               "|l - l_single| / |l_single| over the steps; param diff: the largest "
               "||p - p_single|| / ||p_single|| over the tensors; element diff (shown, not "
               "judged): the largest max|p - p_single| / max|p_single|, which adam makes noisy "
               "where gradients are float32 rounding noise. Exits 1 when the loss or param diff "
               "of a strategy is above the tolerance.",
               options, positional))
      return 0;
    if (steps < 1)
      throw runtime::UserError("--steps is " + std::to_string(steps) + "; give at least 1");
    if (!(tolerance >= 0.0))
      throw runtime::UserError("--tolerance must be a number >= 0 (such as 1e-5)");
    if (strategies_text.empty() && layouts_text.empty()) strategies_text = "single,data_parallel";
    std::vector<std::string> strategies = split_list(strategies_text);
    strategies.erase(std::remove(strategies.begin(), strategies.end(), "single"), strategies.end());
    const runtime::Config file_config = load(a);
    const std::string file_strategy = file_config.parallel.strategy;
    {  // An unknown name is an error before anything trains.
      runtime::Registry registry(runtime::host_api());
      runtime::load_plugins(registry,
                            runtime::plugin_folders(a.plugin_dirs, file_config.plugin_paths,
                                                    file_config.plugin_path_places));
      for (const std::string& strategy : strategies) registry.get(GRAFT_KIND_STRATEGY, strategy);
    }
    std::vector<Layout> layouts = parse_layouts(layouts_text, job.world().size());
    const bool speaks = job.world().rank() == 0;
    // `all` cannot give a model more stages than it has top-level layers: those are skipped.
    const int32_t n_layers = int32_t(file_config.layers.size());
    std::vector<std::string> skipped;
    if (layouts_text == "all") {
      for (auto l = layouts.begin(); l != layouts.end();) {
        if (l->pipeline > n_layers) {
          skipped.push_back(l->name());
          l = layouts.erase(l);
        } else {
          ++l;
        }
      }
    }

    const Trained reference = train_one(a, job, file_strategy, "single", steps);
    if (speaks) {
      std::printf("graft verify: %s, %lld steps, tolerance %g (relative)\n", a.config.c_str(),
                  static_cast<long long>(steps), tolerance);
      std::printf("%-22s %5s %14s %14s %14s  %s\n", "strategy", "ranks", "loss diff", "param diff",
                  "element diff", "result");
      std::printf("%-22s %5d %14s %14s %14s  %s\n", "single", 1, "reference", "reference",
                  "reference", "-");
      std::fflush(stdout);
    }
    struct Run {
      std::string label, strategy;
      const Layout* layout;
    };
    std::vector<Run> runs;
    for (const std::string& strategy : strategies) runs.push_back({strategy, strategy, nullptr});
    for (const Layout& layout : layouts) runs.push_back({layout.name(), "mesh", &layout});
    if (speaks && !skipped.empty())
      std::printf("skipped (more pipeline stages than the model's %d top-level layers): %s\n",
                  n_layers, join_names(skipped).c_str());
    bool all_pass = true;
    for (const Run& run : runs) {
      const Trained t = train_one(a, job, file_strategy, run.strategy, steps, run.layout);
      const Differences d = differences(t, reference);
      // Rank 0's figures decide for every rank, so all exit alike.
      double figures[3] = {d.loss, d.parameters, d.elements};
      int64_t shape = 3;
      DLTensor view{};
      view.data = figures;
      view.device = DLDevice{kDLCPU, 0};
      view.ndim = 1;
      view.dtype = DLDataType{kDLFloat, 64, 1};
      view.shape = &shape;
      job.world().broadcast(view, 0, "graft verify results");
      const bool pass = figures[0] <= tolerance && figures[1] <= tolerance;
      all_pass = all_pass && pass;
      if (speaks) {
        std::printf("%-22s %5d %14.3e %14.3e %14.3e  %s%s\n", run.label.c_str(), t.ranks,
                    figures[0], figures[1], figures[2], pass ? "PASS" : "FAIL",
                    d.worst.empty() ? "" : ("  (param diff largest in " + d.worst + ")").c_str());
        std::fflush(stdout);
      }
    }
    return all_pass ? 0 : 1;
  });
}

}  // namespace graft::cli
