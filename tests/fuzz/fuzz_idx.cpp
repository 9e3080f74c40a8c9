// Fuzz target: the IDX reader (plugins/datasets/idx) on an images file and a labels file made
// from the bytes, either of which may be gzip. Byte 0 picks options (shape, normalize, limit),
// bytes 1-2 the length of the images file; the rest is the labels file.
#include "dataset_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::fuzz;
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const size_t images = std::min<size_t>(size - 3, size_t{data[1]} | size_t{data[2]} << 8);
  const fs::path& dir = scratch_dir();
  write_file(dir / "train-images-idx3-ubyte", data + 3, images);
  write_file(dir / "train-labels-idx1-ubyte", data + 3 + images, size - 3 - images);
  // A cached unpacked copy is named by size and time, which repeat between runs: start clean.
  fs::remove_all(dir / "cache");
  std::string toml = "path = \".\"\n";
  toml += flags & 1 ? "shape = \"flat\"\n" : "";
  toml += flags & 2 ? "normalize = \"standard\"\n" : "";
  toml += flags & 4 ? "limit = " + std::to_string(flags >> 4) + "\n" : "";
  toml += flags & 8 ? "map_limit_mb = 0\n" : "";  // read by pread, not through a mapping
  try {
    read_split("idx", toml, "train", 256);
  } catch (const graft::runtime::UserError&) {
  }
  return 0;
}
