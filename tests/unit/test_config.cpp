// The config loader: defaults, includes, --set overrides, every check of the framework's own
// sections with its message (file:line:column, did-you-mean, the fix), and the resolved TOML.
#include <fstream>
#include <limits>
#include <sstream>

#include "config/config.hpp"
#include "config/options.hpp"
#include "config/section_reader.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::Config;
using graft::runtime::load_config;
using graft::runtime::UserError;

namespace {

// The required sections, with plugin keys in the shared tables (path, units, momentum).
const std::string kRequired = R"([data]
reader = "idx"
path = "data/fashion"

[[model.layers]]
type = "linear"
units = 10

[[model.layers]]
type = "relu"

[loss]
type = "cross_entropy"

[optimizer]
type = "sgd"
lr = 0.1
momentum = 0.9
)";

fs::path write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const fs::path& file, const std::vector<std::string>& overrides = {}) {
  try {
    load_config(file, overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("no UserError from " << file.string());
  return "";
}

// The error of a config whose first lines are `head`, followed by the required sections.
std::string error_with(const std::string& test, const std::string& head,
                       const std::vector<std::string>& overrides = {}) {
  return error_of(write_file(graft::test::temp_dir(test) / "main.toml", head + kRequired),
                  overrides);
}

}  // namespace

TEST_CASE("a minimal config takes every framework default") {
  fs::path dir = graft::test::temp_dir("config_defaults");
  Config c = load_config(write_file(dir / "main.toml", kRequired), {});
  CHECK(c.directory == fs::absolute(dir).lexically_normal());
  CHECK(c.run.name == "run");
  CHECK(c.run.seed == 0);
  CHECK(c.run.device == "cpu");
  CHECK(c.run.epochs == 1);
  CHECK(c.run.steps == 0);
  CHECK(c.run.output_dir == "runs");
  CHECK(c.run.log_every == 50);
  CHECK(c.run.eval_every == 0);
  CHECK(c.run.threads == 0);
  CHECK(c.run.clip_grad_norm == 0.0);
  CHECK(c.run.progress == "auto");
  CHECK(c.data.reader == "idx");
  CHECK(c.data.batch_size == 64);
  CHECK(c.data.eval_batch_size == 0);
  CHECK(c.data.shuffle);
  CHECK_FALSE(c.data.drop_last);
  REQUIRE(c.data.reader_table != nullptr);
  CHECK((*c.data.reader_table)["path"].value_or(std::string()) == "data/fashion");
  REQUIRE(c.layers.size() == 2);
  CHECK(c.layers[0].type == "linear");
  CHECK((*c.layers[0].table)["units"].value_or(0) == 10);
  CHECK(c.layers[1].type == "relu");
  CHECK(c.layers[1].section == "[[model.layers]] #1");
  CHECK(c.loss.type == "cross_entropy");
  CHECK(c.loss.section == "[loss]");
  CHECK(c.optimizer.type == "sgd");
  CHECK(c.optimizer.lr == 0.1);
  CHECK(c.optimizer.schedule.type == "constant");
  CHECK((*c.optimizer.table)["momentum"].value_or(0.0) == 0.9);
  CHECK(c.parallel.strategy == "single");
  CHECK(c.parallel.timeout_s == 300.0);
  CHECK(c.parallel.table == nullptr);
  CHECK(c.checkpoint.every == 0);
  CHECK(c.checkpoint.keep == 3);
  CHECK(c.checkpoint.resume.empty());
  CHECK(c.checkpoint.enabled);
  CHECK(c.plugin_paths.empty());

  // The table pointers survive a move of the Config.
  Config moved = std::move(c);
  CHECK((*moved.optimizer.table)["momentum"].value_or(0.0) == 0.9);
}

TEST_CASE("every framework key is read") {
  fs::path dir = graft::test::temp_dir("config_all_keys");
  Config c = load_config(write_file(dir / "main.toml", R"([run]
name = "mlp"
seed = 42
device = "cuda"
steps = 1000
output_dir = "out"
log_every = 10
eval_every = 200
threads = 4
clip_grad_norm = 1
progress = "plain"

[checkpoint]
every = 100
keep = 2
resume = "latest"
enabled = false

[parallel]
strategy = "pipeline"
timeout_s = 30
micro_batches = 4

[plugins]
paths = ["my_plugins"]

[optimizer.schedule]
type = "step"
warmup_steps = 10
step_size = 300
gamma = 0.5
)" + kRequired),
                         {});
  CHECK(c.run.name == "mlp");
  CHECK(c.run.seed == 42);
  CHECK(c.run.device == "cuda");
  CHECK(c.run.steps == 1000);
  CHECK(c.run.epochs == 0);  // no default epoch when the run is given in steps
  CHECK(c.run.output_dir == "out");
  CHECK(c.run.log_every == 10);
  CHECK(c.run.eval_every == 200);
  CHECK(c.run.threads == 4);
  CHECK(c.run.clip_grad_norm == 1.0);  // an integer where a number is expected
  CHECK(c.run.progress == "plain");
  CHECK(c.checkpoint.every == 100);
  CHECK(c.checkpoint.keep == 2);
  CHECK(c.checkpoint.resume == "latest");
  CHECK_FALSE(c.checkpoint.enabled);
  CHECK(c.parallel.strategy == "pipeline");
  CHECK(c.parallel.timeout_s == 30.0);
  REQUIRE(c.parallel.table != nullptr);
  CHECK((*c.parallel.table)["micro_batches"].value_or(0) == 4);
  REQUIRE(c.plugin_paths.size() == 1);
  CHECK(fs::path(c.plugin_paths[0]) == (fs::absolute(dir) / "my_plugins").lexically_normal());
  CHECK(c.optimizer.schedule.type == "step");
  CHECK(c.optimizer.schedule.warmup_steps == 10);
  CHECK(c.optimizer.schedule.step_size == 300);
  CHECK(c.optimizer.schedule.gamma == 0.5);
}

TEST_CASE("unknown keys name the place and the closest known key") {
  std::string e = error_with("config_unknown_run", "[run]\nepoch = 3\n\n");
  CHECK(e.find("main.toml:2:1: [run] unknown key 'epoch' (did you mean 'epochs'?); known keys: "
               "name, seed, device, epochs") != std::string::npos);

  e = error_with("config_unknown_top", "[optimiser]\nlr = 1\n\n");
  CHECK(e.find("main.toml:1:2: unknown top-level key 'optimiser' (did you mean 'optimizer'?)") !=
        std::string::npos);
  e = error_with("config_top_key", "seed = 4\n");
  CHECK(e.find("main.toml:1:1: unknown top-level key 'seed' (it belongs in [run])") !=
        std::string::npos);

  e = error_with("config_unknown_checkpoint", "[checkpoint]\nkeep = 2\nevry = 10\n\n");
  CHECK(e.find("main.toml:3:1: [checkpoint] unknown key 'evry' (did you mean 'every'?)") !=
        std::string::npos);
  e = error_with("config_unknown_plugins", "[plugins]\npath = [\"x\"]\n\n");
  CHECK(e.find("main.toml:2:1: [plugins] unknown key 'path' (did you mean 'paths'?)") !=
        std::string::npos);
  e = error_with("config_unknown_schedule", "[optimizer.schedule]\ntyp = \"cosine\"\n\n");
  CHECK(e.find("main.toml:2:1: [optimizer.schedule] unknown key 'typ' (did you mean 'type'?)") !=
        std::string::npos);
  e = error_with("config_unknown_model", "[model]\nlayer = 1\n\n");
  CHECK(e.find("main.toml:2:1: [model] unknown key 'layer' (did you mean 'layers'?)") !=
        std::string::npos);
}

TEST_CASE("wrong types name the expected and the given type") {
  std::string e = error_with("config_type_seed", "[run]\nseed = \"x\"\n\n");
  CHECK(e.find("main.toml:2:8: [run] seed: expected an integer, got a string (\"x\")") !=
        std::string::npos);
  e = error_with("config_type_epochs", "[run]\nepochs = 2.5\n\n");
  CHECK(e.find("main.toml:2:10: [run] epochs: expected an integer, got a float (2.5)") !=
        std::string::npos);
  e = error_with("config_type_shuffle", "", {"data.shuffle=1"});
  CHECK(e.find("--set data.shuffle=1: [data] shuffle: expected true or false, got an integer") !=
        std::string::npos);
  e = error_with("config_type_section", "run = 3\n");
  CHECK(e.find("main.toml:1:7: [run] must be a table, got an integer (3)") != std::string::npos);
  e = error_with("config_type_paths", "[plugins]\npaths = \"x\"\n\n");
  CHECK(e.find("main.toml:2:9: [plugins] paths: expected a list of folders") != std::string::npos);
}

TEST_CASE("values out of range are refused with the bound") {
  std::string e = error_with("config_range_batch", "", {"data.batch_size=0"});
  CHECK(e.find("[data] batch_size: must be at least 1, got 0") != std::string::npos);
  e = error_with("config_range_lr", "", {"optimizer.lr=0"});
  CHECK(e.find("--set optimizer.lr=0: [optimizer] lr: must be greater than 0, got 0") !=
        std::string::npos);
  e = error_with("config_range_epochs", "[run]\nepochs = -1\n\n");
  CHECK(e.find("main.toml:2:10: [run] epochs: must be at least 0, got -1") != std::string::npos);
  e = error_with("config_both", "[run]\nepochs = 2\nsteps = 100\n\n");
  CHECK(e.find("main.toml:3:9: [run] steps: give either epochs (2) or steps (100), not both") !=
        std::string::npos);
  e = error_with("config_neither", "[run]\nepochs = 0\n\n");
  CHECK(e.find("[run] epochs: epochs and steps are both 0") != std::string::npos);
  e = error_with("config_device", "[run]\ndevice = \"gpu\"\n\n");
  CHECK(e.find("main.toml:2:10: [run] device: 'gpu' is not one of cpu, cuda") != std::string::npos);
  e = error_with("config_progress", "[run]\nprogress = \"bars\"\n\n");
  CHECK(e.find("'bars' is not one of auto, bar, plain, none (did you mean 'bar'?)") !=
        std::string::npos);
  e = error_with("config_name", "[run]\nname = \"a/b\"\n\n");
  CHECK(e.find("[run] name: 'a/b' cannot be a folder name") != std::string::npos);
  e = error_with("config_keep", "[checkpoint]\nkeep = 0\n\n");
  CHECK(e.find("main.toml:2:8: [checkpoint] keep: must be at least 1, got 0") != std::string::npos);
  e = error_with("config_timeout", "[parallel]\ntimeout_s = -5\n\n");
  CHECK(e.find("[parallel] timeout_s: must be greater than 0, got -5") != std::string::npos);
}

TEST_CASE("schedules are checked against their type") {
  std::string e = error_with("config_schedule_type", "[optimizer.schedule]\ntype = \"cosin\"\n\n");
  CHECK(e.find("main.toml:2:8: [optimizer.schedule] type: 'cosin' is not one of constant, step, "
               "cosine, linear_warmup_cosine (did you mean 'cosine'?)") != std::string::npos);
  e = error_with("config_schedule_step", "[optimizer.schedule]\ntype = \"step\"\n\n");
  CHECK(e.find("main.toml:1:1: [optimizer.schedule] step_size: schedule 'step' needs "
               "step_size >= 1") != std::string::npos);
  e = error_with("config_schedule_min_lr",
                 "[optimizer.schedule]\ntype = \"cosine\"\nmin_lr = 0.5\n\n");
  CHECK(e.find("main.toml:3:10: [optimizer.schedule] min_lr: must not exceed [optimizer] lr "
               "(0.1), got 0.5") != std::string::npos);
  e = error_with("config_schedule_warmup",
                 "[optimizer.schedule]\ntype = \"linear_warmup_cosine\"\n\n");
  CHECK(e.find("warmup_steps >= 1") != std::string::npos);

  fs::path dir = graft::test::temp_dir("config_schedule_ok");
  Config c = load_config(write_file(dir / "main.toml", kRequired),
                         {"optimizer.schedule.type=linear_warmup_cosine",
                          "optimizer.schedule.warmup_steps=50", "optimizer.schedule.min_lr=0.001"});
  CHECK(c.optimizer.schedule.type == "linear_warmup_cosine");
  CHECK(c.optimizer.schedule.warmup_steps == 50);
  CHECK(c.optimizer.schedule.min_lr == 0.001);
}

TEST_CASE("missing required sections say what to add") {
  fs::path dir = graft::test::temp_dir("config_missing");
  auto without = [&](const std::string& name, const std::string& drop) {
    std::string text = kRequired;
    size_t at = text.find(drop);
    REQUIRE(at != std::string::npos);
    text.erase(at, drop.size());
    return error_of(write_file(dir / name, text));
  };
  std::string e = without("no_data.toml", "[data]\nreader = \"idx\"\npath = \"data/fashion\"\n");
  CHECK(e.find((dir / "no_data.toml").string() + ": no [data] section") != std::string::npos);
  CHECK(e.find("reader = \"idx\"") != std::string::npos);
  e = without("no_reader.toml", "reader = \"idx\"\n");
  CHECK(e.find("no_reader.toml:1:1: [data] has no 'reader' (the dataset plugin); add it") !=
        std::string::npos);
  e = without("no_layers.toml",
              "[[model.layers]]\ntype = \"linear\"\nunits = 10\n\n"
              "[[model.layers]]\ntype = \"relu\"\n");
  CHECK(e.find("no_layers.toml: [model] has no layers; add it, e.g.\n  [[model.layers]]\n"
               "  type = \"linear\"") != std::string::npos);
  e = without("no_layer_type.toml", "type = \"relu\"\n");
  CHECK(e.find("no_layer_type.toml:9:1: [[model.layers]] #1 has no 'type'") != std::string::npos);
  e = without("no_loss.toml", "type = \"cross_entropy\"\n");
  CHECK(e.find("no_loss.toml:12:1: [loss] has no 'type'; add it, e.g.\n  [loss]\n"
               "  type = \"cross_entropy\"") != std::string::npos);
  e = without("no_optimizer.toml", "type = \"sgd\"\n");
  CHECK(e.find("[optimizer] has no 'type'; add it, e.g.\n  [optimizer]\n  type = \"sgd\"") !=
        std::string::npos);
}

TEST_CASE("a missing file and a syntax error") {
  fs::path dir = graft::test::temp_dir("config_files");
  std::string e = error_of(dir / "nope.toml");
  CHECK(e == "config file '" + (dir / "nope.toml").string() + "' not found");
  e = error_of(write_file(dir / "bad.toml", "[run]\nseed = = 3\n"));
  CHECK(e.find((dir / "bad.toml").string() + ":2:") != std::string::npos);
  CHECK(e.find(": TOML syntax error: ") != std::string::npos);
}

TEST_CASE("non-ASCII letters where TOML wants a key or a number are syntax errors") {
  // toml++ 3.3 reached __builtin_unreachable on these (config/toml.hpp); the sanitizer build
  // runs this test, so undefined behaviour here fails it.
  fs::path dir = graft::test::temp_dir("config_unicode");
  std::string e = error_of(write_file(dir / "key.toml", "[mod\u00e8le]\nx = 1\n"));
  CHECK(e.find("key.toml:1:5: TOML syntax error: ") != std::string::npos);
  e = error_of(write_file(dir / "number.toml", "[run]\nseed = 1\u3001\n"));
  CHECK(e.find("number.toml:2:9: TOML syntax error: ") != std::string::npos);
}

TEST_CASE("includes merge in order, nested, with the including file on top") {
  fs::path dir = graft::test::temp_dir("config_includes");
  write_file(dir / "common/defaults.toml", R"(include = ["seed.toml"]
[run]
epochs = 5
log_every = 7
[plugins]
paths = ["plugins"]
)");
  write_file(dir / "common/seed.toml", "[run]\nseed = 11\nepochs = 9\n");
  write_file(dir / "layers.toml", R"([[model.layers]]
type = "a"
[[model.layers]]
type = "b"
[[model.layers]]
type = "c"
[optimizer]
lr = 0.5
momentum = 0.1
)");
  write_file(dir / "later.toml", "[run]\nlog_every = 8\n");
  Config c = load_config(write_file(dir / "main.toml",
                                    "include = [\"common/defaults.toml\", \"layers.toml\", "
                                    "\"later.toml\"]\n[run]\nname = \"top\"\n\n" +
                                        kRequired),
                         {});
  CHECK(c.run.seed == 11);       // from the innermost file
  CHECK(c.run.epochs == 5);      // defaults.toml over the seed.toml it includes
  CHECK(c.run.log_every == 8);   // a later include over an earlier one
  CHECK(c.run.name == "top");    // the including file over its includes
  CHECK(c.optimizer.lr == 0.1);  // tables merge key by key ...
  CHECK((*c.optimizer.table)["momentum"].value_or(0.0) == 0.9);
  REQUIRE(c.layers.size() == 2);  // ... lists are replaced whole
  CHECK(c.layers[0].type == "linear");
  // Relative plugin folders are relative to the file that names them.
  REQUIRE(c.plugin_paths.size() == 1);
  CHECK(fs::path(c.plugin_paths[0]) == (fs::absolute(dir) / "common/plugins").lexically_normal());
  CHECK(c.root.get("include") == nullptr);
}

TEST_CASE("errors inside an included file name that file and line") {
  fs::path dir = graft::test::temp_dir("config_include_errors");
  write_file(dir / "sub/base.toml", "[run]\n\nseed = 1\nepoch = 3\n");
  std::string e =
      error_of(write_file(dir / "main.toml", "include = [\"sub/base.toml\"]\n" + kRequired));
  CHECK(e.find((dir / "sub/base.toml").string() + ":4:1: [run] unknown key 'epoch'") !=
        std::string::npos);

  write_file(dir / "types.toml", "[data]\nbatch_size = \"big\"\n");
  e = error_of(write_file(dir / "main2.toml", "include = [\"types.toml\"]\n" + kRequired));
  CHECK(e.find((dir / "types.toml").string() + ":2:14: [data] batch_size: expected an integer") !=
        std::string::npos);
}

TEST_CASE("include cycles and missing includes name the chain") {
  fs::path dir = graft::test::temp_dir("config_include_cycle");
  write_file(dir / "a.toml", "include = [\"b.toml\"]\n");
  write_file(dir / "b.toml", "include = [\"a.toml\"]\n[run]\nseed = 1\n");
  std::string main = (dir / "main.toml").string(), a = (dir / "a.toml").string(),
              b = (dir / "b.toml").string();
  std::string e = error_of(write_file(dir / "main.toml", "include = [\"a.toml\"]\n" + kRequired));
  CHECK(e.find(b + ":1:12: include cycle: " + main + " -> " + a + " -> " + b + " -> " + a) !=
        std::string::npos);

  write_file(dir / "c.toml", "include = [\"gone.toml\"]\n");
  e = error_of(write_file(dir / "main2.toml", "include = [\"c.toml\"]\n" + kRequired));
  CHECK(e.find((dir / "c.toml").string() + ":1:12: include 'gone.toml' not found (looked for '" +
               (dir / "gone.toml").string() +
               "'); include chain: " + (dir / "main2.toml").string() + " -> " +
               (dir / "c.toml").string()) != std::string::npos);

  e = error_of(write_file(dir / "main3.toml", "include = 3\n" + kRequired));
  CHECK(e.find("main3.toml:1:11: include: expected a list of file names, got an integer (3)") !=
        std::string::npos);
}

TEST_CASE("--set parses TOML values, else takes a bare string") {
  fs::path dir = graft::test::temp_dir("config_set");
  Config c = load_config(
      write_file(dir / "main.toml", kRequired),
      {"optimizer.lr=0.05", "run.epochs=3", "data.shuffle=false", "parallel.strategy=data_parallel",
       "model.layers.0.units=128", "run.name = my run", "model.layers.1.type=\"tanh\"",
       "data.sizes=[1, 2]", "run.epochs=4"});
  CHECK(c.optimizer.lr == 0.05);
  CHECK(c.run.epochs == 4);  // later flags win
  CHECK_FALSE(c.data.shuffle);
  CHECK(c.parallel.strategy == "data_parallel");
  CHECK((*c.layers[0].table)["units"].value_or(0) == 128);
  CHECK((*c.layers[0].table)["type"].value_or(std::string()) == "linear");
  CHECK(c.layers[1].type == "tanh");
  CHECK(c.run.name == "my run");
  const toml::array* sizes = (*c.data.reader_table)["sizes"].as_array();
  REQUIRE(sizes != nullptr);
  CHECK(sizes->size() == 2);
  // A replaced value points at the flag; the other values keep their file and line.
  CHECK(graft::runtime::where(*c.root["optimizer"]["lr"].node()) == "--set optimizer.lr=0.05");
  CHECK(graft::runtime::where(*c.root["optimizer"]["momentum"].node()) ==
        (dir / "main.toml").string() + ":18:12");
}

TEST_CASE("--set mistakes point at the flag") {
  fs::path dir = graft::test::temp_dir("config_set_errors");
  fs::path file = write_file(dir / "main.toml", kRequired);
  std::string e = error_of(file, {"run.epochs=abc"});
  CHECK(e.rfind("--set run.epochs=abc: [run] epochs: expected an integer, got a string (\"abc\")",
                0) == 0);
  e = error_of(file, {"run.epoch=3"});
  CHECK(e.rfind("--set run.epoch=3: [run] unknown key 'epoch' (did you mean 'epochs'?)", 0) == 0);
  e = error_of(file, {"model.layers.5.units=1"});
  CHECK(e ==
        "--set model.layers.5.units=1: index 5 is out of range: 'model.layers' has 2 "
        "entries (indices 0 to 1)");
  e = error_of(file, {"model.layers[5].units=1"});  // the index form names the length alike
  CHECK(e.find("index 5 is out of range: 'model.layers' has 2 entries (indices 0 to 1)") !=
        std::string::npos);
  e = error_of(file, {"model.layers[one].units=1"});
  CHECK(e.find("'[one]' is not a list index; write one as layers[0]") != std::string::npos);
  e = error_of(file, {"model.layers[0.units=1"});
  CHECK(e.find("'[0.units' is not a list index") != std::string::npos);
  e = error_of(file, {"model.layers.first.units=1"});
  CHECK(e.find("'model.layers' is a list, so the next part of the key must be an index "
               "(indices 0 to 1), not 'first'") != std::string::npos);
  e = error_of(file, {"optimizer.lr"});
  CHECK(e == "--set optimizer.lr: expected key.path=value, e.g. --set optimizer.lr=0.05");
  e = error_of(file, {"optimizer..lr=1"});
  CHECK(e.find("expected key.path=value") != std::string::npos);
  e = error_of(file, {"optimizer.lr.x=1"});
  CHECK(e ==
        "--set optimizer.lr.x=1: 'optimizer.lr' is a float (0.1), not a table, so it has no "
        "key 'x'");
  e = error_of(file, {"run.name=true"});
  CHECK(e.find("[run] name: expected a string, got a boolean (quote it to pass a string") !=
        std::string::npos);
  e = error_of(file, {"include=[\"other.toml\"]"});
  CHECK(e.find("includes are read before --set is applied") != std::string::npos);
  e = error_of(file, {"trainer.x=1"});
  CHECK(e.rfind("--set trainer.x=1: unknown top-level key 'trainer'", 0) == 0);
}

TEST_CASE("apply_override builds missing tables") {
  toml::table root;
  graft::runtime::apply_override(root, "a.b.c=2");
  graft::runtime::apply_override(root, "a.list=[{x = 1}, {x = 2}]");
  graft::runtime::apply_override(root, "a.list.1.x=5");
  graft::runtime::apply_override(root, "a.list[0].inner=[{y = 1}]");
  graft::runtime::apply_override(root, "a.list[0].inner[0].y=9");  // nested, as a sweep varies
  CHECK(root["a"]["b"]["c"].value_or(0) == 2);
  CHECK(root["a"]["list"][0]["x"].value_or(0) == 1);
  CHECK(root["a"]["list"][0]["inner"][0]["y"].value_or(0) == 9);
  CHECK(root["a"]["list"][1]["x"].value_or(0) == 5);
  CHECK(graft::runtime::where(root["a"]["b"].as_table()->begin()->first.source()) ==
        "--set a.b.c=2");
}

TEST_CASE("format_number: the shortest text that reads back, integers in digits") {
  using graft::runtime::format_number;
  CHECK(format_number(0.1) == "0.1");
  CHECK(format_number(1e6) == "1e+06");
  CHECK(format_number(1e9, /*integer=*/true) == "1000000000");
  CHECK(format_number(-1, true) == "-1");
  // A subnormal once threw out of std::stod (fuzz_plugin_info found it in an option's range).
  CHECK(format_number(std::numeric_limits<double>::denorm_min()) == "5e-324");
  CHECK(format_number(std::numeric_limits<double>::infinity()) == "inf");
}

TEST_CASE("reserved keys let bind_options skip the framework's keys") {
  using graft::runtime::reserved_keys;
  using graft::runtime::Section;
  fs::path dir = graft::test::temp_dir("config_reserved");
  Config c = load_config(write_file(dir / "main.toml", kRequired), {});
  // A real schema with one option, as an optimizer library would declare it.
  graft_option_spec momentum{
      sizeof(graft_option_spec), "momentum", GRAFT_OPT_FLOAT, "0.0", 0.0, 1.0, nullptr,
      "momentum factor"};
  graft_option_spec nesterov{
      sizeof(graft_option_spec), "nesterov", GRAFT_OPT_BOOL, "false", 0, 0, nullptr,
      "Nesterov momentum"};
  graft_option_spec specs[] = {momentum, nesterov};
  graft_plugin_entry entry{
      sizeof(graft_plugin_entry), GRAFT_KIND_OPTIMIZER, "sgd", "test", 2, specs, nullptr, 0};
  auto bound = graft::runtime::bind_options(entry, c.optimizer.table, "[optimizer]",
                                            reserved_keys(Section::optimizer));
  CHECK(bound.resolved()["momentum"].value_or(0.0) == 0.9);
  // Without the reserved keys, `lr` would be the plugin's unknown key.
  CHECK_THROWS_AS(graft::runtime::bind_options(entry, c.optimizer.table, "[optimizer]", {}),
                  UserError);
  CHECK(reserved_keys(Section::data).size() == 5);
  CHECK(reserved_keys(Section::layer) == (std::vector<std::string>{"type", "tie"}));
  CHECK(reserved_keys(Section::parallel) == std::vector<std::string>{"strategy", "timeout_s",
                                                                     "data", "pipeline", "tensor",
                                                                     "zero", "order"});
}

TEST_CASE("the resolved TOML shows every value and loads back to the same config") {
  fs::path dir = graft::test::temp_dir("config_resolved");
  Config c = load_config(write_file(dir / "main.toml", "[run]\nseed = 5\n\n" + kRequired),
                         {"optimizer.schedule.type=cosine", "optimizer.schedule.gamma=0.3",
                          "run.steps=20", "run.epochs=0"});
  toml::table optimizer_options{{"momentum", 0.9}, {"nesterov", false}};
  toml::table layer_options{{"units", 10}, {"bias", true}};
  std::string text = graft::runtime::resolved_toml(
      c, {{"optimizer", &optimizer_options}, {"model.layers.0", &layer_options}});
  CHECK(text.find("[run]") < text.find("[data]"));
  CHECK(text.find("[data]") < text.find("[[model.layers]]"));

  toml::table back = toml::parse(text, std::string("resolved"));
  CHECK(back["run"]["seed"].value_or(0) == 5);
  CHECK(back["run"]["steps"].value_or(0) == 20);
  CHECK(back["run"]["device"].value_or(std::string()) == "cpu");
  CHECK(back["run"]["progress"].value_or(std::string()) == "auto");
  CHECK(back["data"]["batch_size"].value_or(0) == 64);
  CHECK(back["data"]["path"].value_or(std::string()) == "data/fashion");
  CHECK(back["optimizer"]["nesterov"].value_or(true) == false);
  CHECK(back["optimizer"]["schedule"]["min_lr"].value_or(-1.0) == 0.0);
  CHECK(back["optimizer"]["schedule"]["gamma"].node() == nullptr);  // not used by cosine
  CHECK(back["model"]["layers"][0]["bias"].value_or(false) == true);
  CHECK(back["model"]["layers"][1]["type"].value_or(std::string()) == "relu");
  CHECK(back["parallel"]["timeout_s"].value_or(0.0) == 300.0);
  CHECK(back["checkpoint"]["keep"].value_or(0) == 3);
  CHECK(back["plugins"]["paths"].as_array() != nullptr);

  Config again = load_config(write_file(dir / "saved/config.toml", text), {});
  CHECK(again.run.seed == c.run.seed);
  CHECK(again.run.steps == 20);
  CHECK(again.run.epochs == 0);
  CHECK(again.data.batch_size == c.data.batch_size);
  CHECK(again.optimizer.lr == c.optimizer.lr);
  CHECK(again.optimizer.schedule.type == "cosine");
  CHECK(again.layers.size() == c.layers.size());
  CHECK(again.loss.type == c.loss.type);
  CHECK(again.parallel.strategy == c.parallel.strategy);
  CHECK(again.checkpoint.keep == c.checkpoint.keep);
  // The same text again, but for the folder named in the header's second line.
  auto body = [](const std::string& s) { return s.substr(s.find('\n', s.find('\n') + 1)); };
  CHECK(body(resolved_toml(again, {{"optimizer", &optimizer_options},
                                   {"model.layers.0", &layer_options}})) == body(text));
  CHECK(text.find("lr = 0.1\n") != std::string::npos);  // the shortest text that reads back
}
