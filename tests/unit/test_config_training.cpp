// The config keys of training control and residual blocks: run.gradient_accumulation,
// [run.early_stopping], [optimizer] decay_bias_and_norm and `type = "residual"` with its
// [[model.layers.layers]]: defaults, checks with their messages, and the resolved TOML.
#include <algorithm>
#include <fstream>

#include "config/config.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::Config;
using graft::runtime::load_config;
using graft::runtime::UserError;

namespace {

const std::string kData = R"([data]
reader = "synthetic"
batch_size = 32

)";

const std::string kRest = R"(
[loss]
type = "cross_entropy"

[optimizer]
type = "sgd"
lr = 0.1
)";

const std::string kLayers = R"([[model.layers]]
type = "linear"
units = 8
)";

fs::path write_file(const std::string& test, const std::string& text) {
  fs::path path = graft::test::temp_dir(test) / "main.toml";
  std::ofstream(path) << text;
  return path;
}

Config load(const std::string& test, const std::string& text,
            const std::vector<std::string>& overrides = {}) {
  return load_config(write_file(test, text), overrides);
}

std::string error_of(const std::string& test, const std::string& text,
                     const std::vector<std::string>& overrides = {}) {
  try {
    load(test, text, overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("no UserError for " << test);
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kResidual = R"([[model.layers]]
type = "linear"
units = 8

[[model.layers]]
type = "residual"

[[model.layers.layers]]
type = "linear"
units = 8
activation = "relu"

[[model.layers.layers]]
type = "residual"

[[model.layers.layers.layers]]
type = "tanh"

[[model.layers.layers]]
type = "linear"
units = 8
)";

}  // namespace

TEST_CASE("training-control keys default to off") {
  Config c = load("config_control_defaults", kData + kLayers + kRest);
  CHECK(c.run.gradient_accumulation == 1);
  CHECK_FALSE(c.run.early_stopping.enabled);
  CHECK(c.optimizer.decay_bias_and_norm);
  CHECK(c.layers[0].layers.empty());
}

TEST_CASE("training-control keys are read, with early stopping's mode following its metric") {
  Config c = load("config_control_keys",
                  "[run]\ngradient_accumulation = 4\n\n[run.early_stopping]\nmetric = "
                  "\"accuracy\"\npatience = 5\nmin_delta = 0.001\n\n" +
                      kData + kLayers + kRest + "decay_bias_and_norm = false\n");
  CHECK(c.run.gradient_accumulation == 4);
  CHECK(c.run.early_stopping.enabled);
  CHECK(c.run.early_stopping.metric == "accuracy");
  CHECK(c.run.early_stopping.mode == "max");
  CHECK(c.run.early_stopping.patience == 5);
  CHECK(c.run.early_stopping.min_delta == 0.001);
  CHECK_FALSE(c.optimizer.decay_bias_and_norm);
  // The plugin never sees the framework's key: it is reserved in [optimizer].
  const auto& reserved = graft::runtime::reserved_keys(graft::runtime::Section::optimizer);
  CHECK(std::find(reserved.begin(), reserved.end(), "decay_bias_and_norm") != reserved.end());

  Config loss =
      load("config_control_loss", kData + kLayers + kRest, {"run.early_stopping.patience=2"});
  CHECK(loss.run.early_stopping.enabled);
  CHECK(loss.run.early_stopping.metric == "loss");
  CHECK(loss.run.early_stopping.mode == "min");
  Config explicit_mode =
      load("config_control_mode", kData + kLayers + kRest,
           {"run.early_stopping.metric=accuracy", "run.early_stopping.mode=min"});
  CHECK(explicit_mode.run.early_stopping.mode == "min");
}

TEST_CASE("training-control mistakes name the key and the fix") {
  const std::string base = kData + kLayers + kRest;
  std::string e =
      error_of("config_control_unknown", "[run.early_stopping]\npatiense = 2\n\n" + base);
  CHECK(contains(e,
                 "main.toml:2:1: [run.early_stopping] unknown key 'patiense' (did you mean "
                 "'patience'?); known keys: metric, mode, patience, min_delta"));
  e = error_of("config_control_patience", base, {"run.early_stopping.patience=0"});
  CHECK(contains(e, "[run.early_stopping] patience: must be at least 1, got 0"));
  e = error_of("config_control_mode_bad", base, {"run.early_stopping.mode=maximum"});
  CHECK(contains(e, "'maximum' is not one of min, max"));
  e = error_of("config_control_delta", base, {"run.early_stopping.min_delta=-1"});
  CHECK(contains(e, "[run.early_stopping] min_delta: must be at least 0"));
  e = error_of("config_control_table", "[run]\nearly_stopping = true\n\n" + base);
  CHECK(contains(e, "[run.early_stopping] must be a table"));
  e = error_of("config_control_accumulation_zero", base, {"run.gradient_accumulation=0"});
  CHECK(contains(e, "[run] gradient_accumulation: must be at least 1, got 0"));
  e = error_of("config_control_accumulation_big", "[run]\ngradient_accumulation = 64\n\n" + base);
  CHECK(contains(e,
                 "main.toml:2:25: [run] gradient_accumulation: must not exceed "
                 "data.batch_size (32), got 64"));
  e = error_of("config_control_typo", "[run]\ngradient_accumulations = 2\n\n" + base);
  CHECK(contains(e, "(did you mean 'gradient_accumulation'?)"));
  e = error_of("config_control_decay", base, {"optimizer.decay_bias_and_norm=1"});
  CHECK(contains(e, "[optimizer] decay_bias_and_norm: expected true or false"));
}

TEST_CASE("a residual block keeps its inner layers, nested ones too") {
  Config c = load("config_residual", kData + kResidual + kRest);
  REQUIRE(c.layers.size() == 2);
  CHECK(c.layers[1].type == "residual");
  CHECK(c.layers[1].section == "[[model.layers]] #1");
  REQUIRE(c.layers[1].layers.size() == 3);
  CHECK(c.layers[1].layers[0].type == "linear");
  CHECK(c.layers[1].layers[0].section == "[[model.layers.layers]] #1.0");
  CHECK((*c.layers[1].layers[0].table)["units"].value_or(0) == 8);
  const auto& deeper = c.layers[1].layers[1];
  CHECK(deeper.type == "residual");
  REQUIRE(deeper.layers.size() == 1);
  CHECK(deeper.layers[0].type == "tanh");
  CHECK(deeper.layers[0].section == "[[model.layers.layers.layers]] #1.1.0");
  // --set reaches an inner layer through the same indices.
  Config set =
      load("config_residual_set", kData + kResidual + kRest, {"model.layers.1.layers.2.units=16"});
  CHECK((*set.layers[1].layers[2].table)["units"].value_or(0) == 16);
}

TEST_CASE("residual mistakes: no inner layers, a stray key, an entry that is not a table") {
  std::string e =
      error_of("config_residual_none", kData + "[[model.layers]]\ntype = \"residual\"\n" + kRest);
  CHECK(contains(e,
                 "[[model.layers]] #0 is a residual block without inner layers; follow it "
                 "with [[model.layers.layers]] tables"));
  e = error_of("config_residual_key", kData +
                                          "[[model.layers]]\ntype = \"residual\"\nunits = 3\n\n"
                                          "[[model.layers.layers]]\ntype = \"relu\"\n" +
                                          kRest);
  CHECK(contains(
      e, "main.toml:7:1: [[model.layers]] #0 unknown key 'units'; known keys: type, layers"));
  e = error_of("config_residual_entry",
               kData + "[[model.layers]]\ntype = \"residual\"\nlayers = [3]\n" + kRest);
  CHECK(contains(e, "layers: entry 0.0 must be a table with a type, got an integer"));
  e = error_of("config_residual_type",
               kData +
                   "[[model.layers]]\ntype = \"residual\"\n\n[[model.layers.layers]]\nunits = 3\n" +
                   kRest);
  CHECK(contains(e, "[[model.layers.layers]] #0.0 has no 'type'"));
}

TEST_CASE("the resolved TOML keeps the new keys and the nesting, and loads back") {
  Config c = load("config_control_resolved", kData + kResidual + kRest,
                  {"run.gradient_accumulation=2", "run.early_stopping.metric=accuracy",
                   "optimizer.decay_bias_and_norm=false"});
  toml::table inner_options{{"units", 8}, {"bias", true}};
  std::string text =
      graft::runtime::resolved_toml(c, {{"model.layers.1.layers.0", &inner_options}});
  toml::table back = toml::parse(text, std::string("resolved"));
  CHECK(back["run"]["gradient_accumulation"].value_or(0) == 2);
  CHECK(back["run"]["early_stopping"]["mode"].value_or(std::string()) == "max");
  CHECK(back["run"]["early_stopping"]["patience"].value_or(0) == 3);
  CHECK(back["optimizer"]["decay_bias_and_norm"].value_or(true) == false);
  CHECK(back["model"]["layers"][1]["layers"][0]["bias"].value_or(false) == true);
  CHECK(back["model"]["layers"][1]["layers"][1]["layers"][0]["type"].value_or(std::string()) ==
        "tanh");
  fs::path saved = graft::test::temp_dir("config_control_resolved_again") / "config.toml";
  std::ofstream(saved) << text;
  Config again = load_config(saved, {});
  CHECK(again.run.gradient_accumulation == 2);
  CHECK(again.run.early_stopping.enabled);
  CHECK(again.run.early_stopping.metric == "accuracy");
  CHECK_FALSE(again.optimizer.decay_bias_and_norm);
  REQUIRE(again.layers.size() == 2);
  CHECK(again.layers[1].layers.size() == 3);
  // Off stays off: no early_stopping table is written for a run without one.
  Config off = load("config_control_resolved_off", kData + kLayers + kRest);
  CHECK(graft::runtime::resolved_toml(off).find("early_stopping") == std::string::npos);
}
