// Fuzz target: the tokens reader (plugins/datasets/tokens) on an llm.c token file made from the
// bytes after the first. Byte 0 picks the options: context, stride, a small vocabulary (so
// ids past it occur) and split, so the header checks and the window reads see hostile bytes.
#include "dataset_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::fuzz;
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  write_file(scratch_dir() / "tokens.bin", data + 1, size - 1);
  std::string toml = "path = \"tokens.bin\"\n";
  toml += "context = " + std::to_string(1 + (flags & 7)) + "\n";
  toml += flags & 8 ? "vocabulary = 300\n" : "";
  toml += flags & 0x10 ? "stride = " + std::to_string(1 + (flags >> 6)) + "\n" : "";
  toml += flags & 0x20 ? "test_fraction = 0.5\n" : "";
  try {
    read_split("tokens", toml, flags & 0x40 ? "test" : "train", 256);
  } catch (const graft::runtime::UserError&) {
  }
  return 0;
}
