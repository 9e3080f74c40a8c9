// Fuzz target: the text reader (plugins/datasets/text) on a file made from the bytes after the
// first. Byte 0 picks the options: mode, context, stride and split, so the UTF-8 index, the
// vocabulary and the window reads all see the same hostile bytes.
#include "dataset_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::fuzz;
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  write_file(scratch_dir() / "corpus.txt", data + 1, size - 1);
  // The cached index is named by size and time, which repeat between runs: start clean.
  fs::remove_all(scratch_dir() / "cache");
  std::string toml = "path = \"corpus.txt\"\n";
  toml += "context = " + std::to_string(1 + (flags & 7)) + "\n";
  toml += flags & 8 ? "mode = \"byte\"\n" : "";
  toml += flags & 0x10 ? "stride = " + std::to_string(1 + (flags >> 6)) + "\n" : "";
  toml += flags & 0x20 ? "test_fraction = 0.5\n" : "";
  try {
    read_split("text", toml, flags & 0x40 ? "test" : "train", 256);
  } catch (const graft::runtime::UserError&) {
  }
  return 0;
}
