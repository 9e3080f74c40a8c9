// graft sweep CONFIG --grid KEY=V1,V2 [--grid ...] [--parallel N] [--metric NAME]: one ordinary
// run per combination of the grids' values (each `graft train` in its own process, its folder
// named after its values), then a table of their final metrics, best first, printed and written
// as markdown and CSV beside the runs. A finished run leaves a marker and is skipped when the
// sweep runs again; an interrupted one resumes from its latest checkpoint.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "config/section_reader.hpp"
#include "util/errors.hpp"

extern char** environ;

namespace graft::cli {

namespace fs = std::filesystem;

namespace {

struct Grid {
  std::string key;
  std::vector<std::string> values;
};

// "optimizer.lr=0.001,0.01" -> {optimizer.lr, [0.001, 0.01]}; commas inside [...] or quotes
// belong to a value (a list, a string).
Grid parse_grid(const std::string& text) {
  const size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size())
    throw runtime::UserError("--grid " + text +
                             ": expected KEY=V1,V2,..., e.g. --grid optimizer.lr=0.001,0.01");
  Grid g{text.substr(0, equals), {}};
  std::string value;
  int depth = 0;
  bool quoted = false;
  for (char c : text.substr(equals + 1)) {
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '[') ++depth;
    if (!quoted && c == ']') --depth;
    if (c == ',' && depth == 0 && !quoted) {
      g.values.push_back(value);
      value.clear();
    } else {
      value += c;
    }
  }
  g.values.push_back(value);
  for (const std::string& v : g.values)
    if (v.empty()) throw runtime::UserError("--grid " + text + ": an empty value");
  return g;
}

// The part of a value that may stand in a folder name.
std::string name_part(const std::string& text) {
  std::string out;
  for (char c : text)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  return out;
}

struct Run {
  std::string name;
  std::vector<std::string> assignments;  // the grid's, "key=value"
  fs::path folder;
  bool done = false, failed = false;
  pid_t pid = 0;
};

// The last eval and train events of a run's metrics.jsonl.
std::pair<nlohmann::json, nlohmann::json> final_events(const fs::path& folder) {
  nlohmann::json eval, train;
  std::ifstream in(folder / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (j.value("event", "") == "eval") eval = j;
    if (j.value("event", "") == "train") train = j;
  }
  return {eval, train};
}

pid_t start(const std::vector<std::string>& argv, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw runtime::Failure("sweep: cannot start " + argv[0]);
  return pid;
}

}  // namespace

int sweep(const Arguments& args) {
  return run_command("sweep", [&] {
    ConfigArguments a;
    std::vector<std::string> grid_texts;
    int parallel = 1;
    std::string metric = "loss", mode;
    po::options_description options("graft sweep options");
    add_config_options(options, a);
    options.add_options()("grid", po::value<std::vector<std::string>>(&grid_texts)->composing(),
                          "KEY=V1,V2,...: a key and its values (repeatable; every combination "
                          "runs)")("parallel", po::value<int>(&parallel),
                                   "runs at once (default 1); each gets cores / N threads "
                                   "unless --set run.threads says otherwise")(
        "metric", po::value<std::string>(&metric),
        "the final test metric the table is sorted by (default loss)")(
        "mode", po::value<std::string>(&mode), "min or max (default: min for a loss, else max)");
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args,
               "usage: graft sweep CONFIG --grid KEY=V1,V2,... [--grid ...] [--set key=value ...] "
               "[--parallel N] [--metric NAME] [--mode min|max] [--plugin-dir DIR ...]",
               options, positional))
      return 0;
    if (grid_texts.empty())
      throw runtime::UserError("graft sweep needs at least one --grid KEY=V1,V2,...");
    if (parallel < 1) throw runtime::UserError("--parallel must be at least 1");
    if (mode.empty()) mode = metric.find("loss") != std::string::npos ? "min" : "max";
    if (mode != "min" && mode != "max") throw runtime::UserError("--mode must be min or max");
    std::vector<Grid> grids;
    for (const std::string& t : grid_texts) grids.push_back(parse_grid(t));

    // Every combination, the first grid varying slowest; each built as `graft validate` builds
    // it (plugins, options, shapes) before any trains, so a typo in a key fails the sweep at once.
    const runtime::Config base = load(a);
    const fs::path output = base.run.output_dir;
    std::vector<Run> runs(1);
    for (const Grid& g : grids) {
      const std::string short_key = g.key.substr(g.key.find_last_of(".]") + 1);
      std::vector<Run> next;
      for (const Run& r : runs)
        for (const std::string& v : g.values) {
          Run n = r;
          n.assignments.push_back(g.key + "=" + v);
          n.name += "-" + name_part(short_key) + "=" + name_part(v);
          next.push_back(n);
        }
      runs = next;
    }
    for (Run& r : runs) {
      r.name = base.run.name + r.name;
      std::vector<std::string> overrides = a.overrides;
      overrides.insert(overrides.end(), r.assignments.begin(), r.assignments.end());
      runtime::Config config = runtime::load_config(a.config, overrides);
      runtime::SessionOptions check = session_options(a);
      check.write_outputs = check.allocate_step_buffers = false;
      check.world = std::max(1, runtime::mesh_world(config.parallel));
      runtime::Session(std::move(config), check);
      r.folder = output / r.name;
      r.done = fs::exists(r.folder / "sweep_done");
    }

    const auto to_run =
        std::count_if(runs.begin(), runs.end(), [](const Run& r) { return !r.done; });
    std::printf("graft sweep: %zu runs, %lld finished before, %lld to run, %d at once\n",
                runs.size(), static_cast<long long>(runs.size() - size_t(to_run)),
                static_cast<long long>(to_run), parallel);
    std::fflush(stdout);
    const bool threads_given =
        std::any_of(a.overrides.begin(), a.overrides.end(),
                    [](const std::string& o) { return o.rfind("run.threads", 0) == 0; });
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const fs::path self = fs::read_symlink("/proc/self/exe");  // this graft trains each run
    std::map<pid_t, Run*> running;
    size_t next = 0;
    int failures = 0;
    auto launch = [&](Run& r) {
      std::vector<std::string> argv = {self.string(), "train", a.config};
      for (const std::string& o : a.overrides) argv.insert(argv.end(), {"--set", o});
      for (const std::string& o : r.assignments) argv.insert(argv.end(), {"--set", o});
      argv.insert(argv.end(), {"--set", "run.name=\"" + r.name + "\"", "--set",
                               "checkpoint.resume=\"latest\"", "--set", "run.progress=\"none\""});
      if (parallel > 1 && !threads_given)
        argv.insert(argv.end(),
                    {"--set", "run.threads=" + std::to_string(std::max(1u, cores / parallel))});
      for (const std::string& d : a.plugin_dirs) argv.insert(argv.end(), {"--plugin-dir", d});
      fs::create_directories(r.folder);
      r.pid = start(argv, r.folder / "sweep.log");
      running[r.pid] = &r;
      std::printf("started  %s\n", r.name.c_str());
      std::fflush(stdout);
    };
    while (true) {
      while (running.size() < size_t(parallel) && next < runs.size()) {
        if (!runs[next].done) launch(runs[next]);
        ++next;
      }
      if (running.empty()) break;
      int status = 0;
      const pid_t pid = waitpid(-1, &status, 0);
      auto it = running.find(pid);
      if (it == running.end()) continue;
      Run& r = *it->second;
      running.erase(it);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        std::ofstream(r.folder / "sweep_done") << "done\n";
        r.done = true;
        std::printf("finished %s\n", r.name.c_str());
      } else {
        r.failed = true;
        ++failures;
        std::printf("FAILED   %s: see %s\n", r.name.c_str(), (r.folder / "sweep.log").c_str());
      }
      std::fflush(stdout);
    }

    // The table: one row per finished run, the best by --metric first.
    struct Row {
      const Run* run;
      nlohmann::json eval, train;
      double key;
    };
    std::vector<Row> rows;
    std::vector<std::string> metrics;
    for (const Run& r : runs) {
      if (!r.done) continue;
      auto [eval, train] = final_events(r.folder);
      for (auto& [k, v] : eval.items())
        if (v.is_number() && k != "step" && k != "epoch" &&
            std::find(metrics.begin(), metrics.end(), k) == metrics.end())
          metrics.push_back(k);
      const double missing = mode == "min" ? 1e300 : -1e300;
      rows.push_back(
          {&r, eval, train, eval.contains(metric) ? eval[metric].get<double>() : missing});
    }
    std::stable_sort(rows.begin(), rows.end(), [&](const Row& x, const Row& y) {
      return mode == "min" ? x.key < y.key : x.key > y.key;
    });
    std::string md = "|", csv;
    for (const Grid& g : grids) {
      md += " " + g.key + " |";
      csv += g.key + ",";
    }
    for (const std::string& m : metrics) {
      md += " test " + m + " |";
      csv += "test_" + m + ",";
    }
    md += " train loss | steps | run |\n|";
    csv += "train_loss,steps,run\n";
    for (size_t i = 0; i < grids.size() + metrics.size() + 3; ++i) md += "---|";
    md += "\n";
    // Four significant digits to read, every digit in the CSV.
    auto number = [](const nlohmann::json& j, const std::string& k, bool all = true) {
      if (!j.contains(k) || !j[k].is_number()) return std::string();
      char short_form[32];
      std::snprintf(short_form, sizeof short_form, "%.4g", j[k].get<double>());
      return all ? runtime::format_number(j[k].get<double>()) : std::string(short_form);
    };
    for (const Row& row : rows) {
      md += "|";
      for (const std::string& assignment : row.run->assignments) {
        const std::string v = assignment.substr(assignment.find('=') + 1);
        md += " " + v + " |";
        csv += "\"" + v + "\",";
      }
      for (const std::string& m : metrics) {
        md += " " + number(row.eval, m, false) + " |";
        csv += number(row.eval, m) + ",";
      }
      md += " " + number(row.train, "loss", false) + " | " + number(row.train, "step") + " | " +
            row.run->name + " |\n";
      csv +=
          number(row.train, "loss") + "," + number(row.train, "step") + "," + row.run->name + "\n";
    }
    std::printf("\n%s", md.c_str());
    const fs::path table = output / (base.run.name + "-sweep");
    std::ofstream(table.string() + ".md") << md;
    std::ofstream(table.string() + ".csv") << csv;
    std::printf("\nsorted by test %s (%s); written to %s.md and .csv\n", metric.c_str(),
                mode.c_str(), table.c_str());
    if (failures > 0) {
      std::printf("%d run(s) failed; run the sweep again to retry them\n", failures);
      return 1;
    }
    return 0;
  });
}

}  // namespace graft::cli
