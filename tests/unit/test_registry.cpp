// The plugin loader: the built-in plugins load and resolve by kind and name, and each broken
// library is refused with one clear line naming the file and the reason.
#include <cstring>
#include <fstream>

#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::Registry;
using graft::runtime::UserError;

namespace {
fs::path fixture(const std::string& variant) {
  return fs::path(GRAFT_BINARY_DIR) / "test_fixtures" / variant / "graft_fixture.so";
}

std::string load_error(const fs::path& file) {
  Registry r(graft::runtime::host_api());
  try {
    r.load_directory(GRAFT_TEST_PLUGIN_DIR);
    r.load_library(file);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("every built-in plugin loads and is found by kind and name") {
  const Registry& r = graft::test::builtin_registry();
  for (const char* name : {"linear", "dropout", "flatten"}) CHECK(r.find(GRAFT_KIND_LAYER, name));
  for (const char* name : {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"})
    CHECK(r.find(GRAFT_KIND_ACTIVATION, name));
  for (const char* name : {"mse", "mae", "cross_entropy", "bce_with_logits"})
    CHECK(r.find(GRAFT_KIND_LOSS, name));
  for (const char* name : {"sgd", "adam", "adamw"}) CHECK(r.find(GRAFT_KIND_OPTIMIZER, name));
  for (const char* name : {"idx", "csv", "synthetic"}) CHECK(r.find(GRAFT_KIND_DATASET, name));
  CHECK(r.find(GRAFT_KIND_STRATEGY, "single"));
  const auto* linear = r.find(GRAFT_KIND_LAYER, "linear");
  REQUIRE(linear);
  CHECK(linear->library.filename() == "graft_linear.so");
  CHECK(linear->info->abi_major == GRAFT_ABI_MAJOR);
  CHECK(std::string(linear->info->build_info).find("compiler") != std::string::npos);
}

TEST_CASE("an unknown name lists the known ones with a suggestion") {
  try {
    graft::test::builtin_registry().get(GRAFT_KIND_OPTIMIZER, "adma");
    FAIL("no error");
  } catch (const UserError& e) {
    const std::string m = e.what();
    CHECK(m.find("unknown optimizer 'adma'") != std::string::npos);
    CHECK(m.find("did you mean 'adam'?") != std::string::npos);
    CHECK(m.find("sgd") != std::string::npos);
  }
}

TEST_CASE("a well-formed fixture loads") {
  Registry r(graft::runtime::host_api());
  r.load_library(fixture("good"));
  CHECK(r.find(GRAFT_KIND_LAYER, "fixture_identity"));
}

TEST_CASE("a plugin built against ABI 1.0 (smaller layer vtable) loads in this graft") {
  Registry r(graft::runtime::host_api());
  r.load_library(fixture("abi_1_0"));
  const graft::runtime::PluginRecord* rec = r.find(GRAFT_KIND_LAYER, "fixture_identity");
  REQUIRE(rec);
  CHECK(rec->info->abi_minor == 0);
  CHECK(rec->vtable<graft_layer_vtable>().struct_size < sizeof(graft_layer_vtable));
}

TEST_CASE("a file that is not a shared library") {
  fs::path dir = graft::test::temp_dir("registry_not_elf");
  std::ofstream(dir / "graft_text.so") << "this is a text file, not a library\n";
  const std::string m = load_error(dir / "graft_text.so");
  CHECK(m.find((dir / "graft_text.so").string()) != std::string::npos);
  CHECK(m.find("not a shared library") != std::string::npos);
}

TEST_CASE("a truncated shared library") {
  fs::path dir = graft::test::temp_dir("registry_truncated");
  {
    std::ifstream in(fixture("good"), std::ios::binary);
    std::string bytes(4096, '\0');
    in.read(bytes.data(), 4096);
    std::ofstream(dir / "graft_cut.so", std::ios::binary) << bytes;
  }
  const std::string m = load_error(dir / "graft_cut.so");
  CHECK(m.find("graft_cut.so") != std::string::npos);
  CHECK(m.find("cannot be loaded") != std::string::npos);
}

TEST_CASE("a library without the entry symbol") {
  const std::string m = load_error(fixture("no_entry"));
  CHECK(m.find(fixture("no_entry").string()) != std::string::npos);
  CHECK(m.find("does not export 'graft_get_plugin_info'") != std::string::npos);
}

TEST_CASE("an ABI major mismatch") {
  const std::string m = load_error(fixture("abi_major"));
  CHECK(m.find(fixture("abi_major").string()) != std::string::npos);
  CHECK(m.find("built against graft SDK ABI 99.") != std::string::npos);
  CHECK(m.find("rebuild the plugin") != std::string::npos);
}

TEST_CASE("a plugin needing a newer minor than the host") {
  const std::string m = load_error(fixture("abi_minor"));
  CHECK(m.find("needs graft ABI 1.999") != std::string::npos);
  CHECK(m.find("upgrade graft") != std::string::npos);
}

TEST_CASE("two plugins with one name name both files") {
  const std::string m = load_error(fixture("duplicate"));
  CHECK(m.find("two plugins are named layer 'linear'") != std::string::npos);
  CHECK(m.find("graft_linear.so") != std::string::npos);
  CHECK(m.find(fixture("duplicate").string()) != std::string::npos);
}

TEST_CASE("a missing file") {
  const std::string m = load_error("/nonexistent/graft_missing.so");
  CHECK(m.find("/nonexistent/graft_missing.so: no such file") != std::string::npos);
}

TEST_CASE("an unknown strategy lists the known strategies") {
  try {
    graft::test::builtin_registry().get(GRAFT_KIND_STRATEGY, "data_paralel");
    FAIL("no error");
  } catch (const UserError& e) {
    const std::string m = e.what();
    CHECK(m.find("known strategies: ") != std::string::npos);
    CHECK(m.find("strategys") == std::string::npos);
    CHECK(m.find("did you mean 'data_parallel'?") != std::string::npos);
  }
}

namespace {
// A one-entry library description whose options a test damages; the loader must refuse it by
// naming the library, the plugin and the option.
struct Described {
  graft_option_spec spec{sizeof(graft_option_spec), "units", GRAFT_OPT_INT, "4", 1, 100, nullptr,
                         "output features"};
  size_t vtable[64] = {sizeof(graft_layer_vtable)};
  graft_plugin_entry entry{
      sizeof(graft_plugin_entry), GRAFT_KIND_LAYER, "described", "a test", 1, &spec, vtable, 0};
  graft_plugin_info info{sizeof(graft_plugin_info),
                         GRAFT_ABI_MAJOR,
                         GRAFT_ABI_MINOR,
                         "test",
                         "0.1",
                         "compiler test",
                         1,
                         &entry};
  std::string error() {
    Registry r(graft::runtime::host_api());
    try {
      r.add("/described/graft_test.so", &info);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }
};
}  // namespace

TEST_CASE("the loader checks each option schema before any config binds to it") {
  CHECK(Described{}.error() == "");
  auto refused = [](auto damage, const std::string& part) {
    Described d;
    damage(d);
    const std::string m = d.error();
    CAPTURE(m);
    CHECK(m.find("/described/graft_test.so") != std::string::npos);
    CHECK(m.find(part) != std::string::npos);
  };
  refused([](Described& d) { d.spec.name = nullptr; }, "option 0 has no name");
  refused([](Described& d) { d.spec.doc = nullptr; }, "'units' has no doc line");
  refused([](Described& d) { std::memset(&d.spec.type, 0x7f, sizeof d.spec.type); },
          "has an unknown type");
  refused([](Described& d) { d.spec.min = 200; }, "empty or NaN range");
  refused([](Described& d) { d.spec.default_value = "[1, 2"; }, "its default does not fit");
  refused([](Described& d) { d.spec.default_value = "1000"; }, "out of range");
  refused([](Described& d) { d.spec.choices = "a|b"; }, "has choices but is not a string");
  refused([](Described& d) { d.entry.summary = nullptr; }, "entry 0 is malformed");
  refused([](Described& d) { d.entry.name = "two words"; }, "a config could not write");
  refused([](Described& d) { d.spec.name = "\xff"; }, "a config could not write");
  refused([](Described& d) { d.entry.summary = "caf\xc3"; }, "not UTF-8 text");
  refused([](Described& d) { d.spec.doc = "\xed\xa0\x80 surrogate"; }, "not UTF-8 text");
  refused([](Described& d) { d.info.library_version = "\xc0\xaf"; }, "not UTF-8 text");
  CHECK(Described{}.error() == "");
  Described accented;
  accented.entry.summary = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // é € 😀
  CHECK(accented.error() == "");
  refused([](Described& d) { d.entry.options = nullptr; }, "lists 1 options but gives none");
  refused([](Described& d) { d.info.build_info = nullptr; }, "lacks its library name");
  refused([](Described& d) { d.info.entries = nullptr; }, "lists 1 entries but gives none");
}
