// Fuzz target: a config file as graft validate reads it. The bytes are the TOML file; it is
// parsed with its includes, the framework's sections are checked, and every plugin table
// (reader, layers, residual blocks, loss, optimizer, strategy) is bound to its plugin's schema.
#include "config/config.hpp"
#include "config/options.hpp"
#include "fuzz_support.hpp"
#include "session/session.hpp"

namespace {

using namespace graft::runtime;

void bind_layers(const Registry& registry, const std::vector<NamedTable>& layers) {
  for (const NamedTable& layer : layers) {
    if (layer.type == "residual") {
      bind_layers(registry, layer.layers);
      continue;
    }
    choose_plugin(registry, GRAFT_KIND_LAYER, layer.type, layer.table, layer.section,
                  reserved_keys(Section::layer));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const graft::fuzz::fs::path file = graft::fuzz::scratch_dir() / "config.toml";
  graft::fuzz::write_file(file, data, size);
  const Registry& registry = graft::fuzz::builtin_registry();
  try {
    Config config = load_config(file, {});
    choose_plugin(registry, GRAFT_KIND_DATASET, config.data.reader, config.data.reader_table,
                  "[data]", reserved_keys(Section::data));
    bind_layers(registry, config.layers);
    choose_plugin(registry, GRAFT_KIND_LOSS, config.loss.type, config.loss.table, "[loss]",
                  reserved_keys(Section::loss));
    choose_plugin(registry, GRAFT_KIND_OPTIMIZER, config.optimizer.type, config.optimizer.table,
                  "[optimizer]", reserved_keys(Section::optimizer));
    choose_plugin(registry, GRAFT_KIND_STRATEGY, config.parallel.strategy, config.parallel.table,
                  "[parallel]", reserved_keys(Section::parallel));
    // config.hpp: loading the resolved text again gives the same config.
    static const graft::fuzz::fs::path again = graft::fuzz::scratch_dir() / "resolved.toml";
    const std::string resolved = resolved_toml(config);
    graft::fuzz::write_file(again, reinterpret_cast<const uint8_t*>(resolved.data()),
                            resolved.size());
    std::string reloaded;
    try {
      reloaded = resolved_toml(load_config(again, {}));
    } catch (const UserError& e) {
      std::fprintf(stderr, "fuzz: the resolved config does not load: %s\n%s\n", e.what(),
                   resolved.c_str());
      GRAFT_FUZZ_REQUIRE(false, "the resolved config does not load back");
    }
    GRAFT_FUZZ_REQUIRE(reloaded == resolved, "the resolved config loads back different");
  } catch (const UserError&) {
  }
  return 0;
}
