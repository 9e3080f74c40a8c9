// Fuzz target: what the loader reads from a plugin library's graft_plugin_info (the struct a
// .so returns from graft_get_plugin_info): sizes, ABI version, entries, kinds, names, vtable
// sizes and every field of the options schemas. The description is built from the bytes
// (pointers are real or NULL: a loader cannot check a wild pointer), handed to Registry::add
// as load_library hands it, then described as `graft plugins --json` prints it and bound to a
// TOML table made from the remaining bytes, as a config would bind it.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <deque>
#include <limits>

#include "config/options.hpp"
#include "fuzz_support.hpp"
#include "plugin/describe.hpp"

namespace {

// Storage the description points into, kept for the Registry that refers to it.
struct Description {
  std::deque<std::string> strings;
  std::deque<std::vector<graft_option_spec>> specs;
  std::deque<std::vector<size_t>> vtables;
  std::vector<graft_plugin_entry> entries;
  graft_plugin_info info{};

  // A string or NULL (1 time in 8).
  const char* text(FuzzedDataProvider& in) {
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) return nullptr;
    strings.push_back(in.ConsumeRandomLengthString(24));
    return strings.back().c_str();
  }
  // Mostly valid values, sometimes any bits, written as bytes: the loader must read them
  // without undefined behaviour, so neither may this target.
  template <class Enum>
  void set_enum(FuzzedDataProvider& in, Enum& field, int32_t low, int32_t high) {
    int32_t v = in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(low, high)
                                 : in.ConsumeIntegral<int32_t>();
    static_assert(sizeof field == sizeof v);
    std::memcpy(&field, &v, sizeof v);
  }
  double bound(FuzzedDataProvider& in, double fallback) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: return fallback;
      case 1: return in.ConsumeFloatingPoint<double>();
      case 2: return static_cast<double>(in.ConsumeIntegralInRange<int>(-10, 10));
      default: return std::numeric_limits<double>::quiet_NaN();
    }
  }

  explicit Description(FuzzedDataProvider& in) {
    const size_t n_entries = in.ConsumeIntegralInRange<size_t>(0, 3);
    for (size_t i = 0; i < n_entries; ++i) {
      graft_plugin_entry e{};
      e.struct_size = sizeof(graft_plugin_entry);
      set_enum(in, e.kind, GRAFT_KIND_LAYER, GRAFT_KIND_STRATEGY);
      e.name = text(in);
      e.summary = text(in);
      auto& options = specs.emplace_back(in.ConsumeIntegralInRange<size_t>(0, 4));
      for (graft_option_spec& s : options) {
        s.struct_size = sizeof(graft_option_spec);
        s.name = text(in);
        set_enum(in, s.type, GRAFT_OPT_BOOL, GRAFT_OPT_STRING_LIST);
        s.default_value = text(in);
        s.min = bound(in, -1e308);
        s.max = bound(in, 1e308);
        s.choices = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? text(in) : nullptr;
        s.doc = text(in);
      }
      e.n_options = options.size();
      e.options =
          options.empty() || in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : options.data();
      // The vtable's struct_size: the loader reads that field alone.
      auto& vtable = vtables.emplace_back(64, 0);
      vtable[0] = in.ConsumeBool() ? 1024 : in.ConsumeIntegralInRange<size_t>(0, 512);
      e.vtable = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : vtable.data();
      e.flags = in.ConsumeIntegral<uint32_t>();
      entries.push_back(e);
    }
    info.struct_size =
        in.ConsumeBool() ? sizeof(graft_plugin_info) : in.ConsumeIntegralInRange<size_t>(0, 128);
    info.abi_major = in.ConsumeBool() ? GRAFT_ABI_MAJOR : in.ConsumeIntegral<uint32_t>();
    info.abi_minor = in.ConsumeBool() ? GRAFT_ABI_MINOR : in.ConsumeIntegral<uint32_t>();
    info.library_name = text(in);
    info.library_version = text(in);
    info.build_info = text(in);
    info.n_entries = entries.size();
    info.entries =
        entries.empty() || in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : entries.data();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::runtime;
  FuzzedDataProvider in(data, size);
  Description described(in);
  const std::string table_text = in.ConsumeRemainingBytesAsString();
  Registry registry(host_api());
  try {
    registry.add("/fuzz/graft_described.so", &described.info);
  } catch (const UserError&) {
    return 0;
  }
  // An accepted library: every entry recorded once, and described as graft plugins prints it.
  GRAFT_FUZZ_REQUIRE(registry.all().size() == described.info.n_entries,
                     "an accepted library's entries were not all recorded");
  const nlohmann::ordered_json listed = describe_plugins(registry);
  GRAFT_FUZZ_REQUIRE(listed.size() == registry.all().size(), "graft plugins lost an entry");
  listed.dump(2);
  toml::table table;
  try {
    table = toml::parse(table_text, std::string("fuzz table"));
  } catch (const toml::parse_error&) {
  }
  for (const PluginRecord& record : registry.all()) {
    try {
      bind_options(*record.entry, nullptr, "[fuzz]", {"type"});
    } catch (const UserError&) {
    }
    try {
      bind_options(*record.entry, &table, "[fuzz]", {"type"});
    } catch (const UserError&) {
    }
  }
  return 0;
}
