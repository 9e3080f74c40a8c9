// Fuzz target: the CSV reader (plugins/datasets/csv) on a file made from the bytes after the
// first. Byte 0 picks the options: header or not, label column by name or index, task,
// delimiter and split, so each of the reader's paths sees the same hostile text.
#include "dataset_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::fuzz;
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  write_file(scratch_dir() / "data.csv", data + 1, size - 1);
  std::string toml = "path = \"data.csv\"\n";
  toml += flags & 1 ? "has_header = false\nlabel_index = " + std::to_string((flags >> 4) & 3) + "\n"
                    : (flags & 0x10 ? "label_index = 1\n" : "");
  toml += flags & 2 ? "task = \"regression\"\n" : "";
  toml += flags & 4 ? "delimiter = \";\"\n" : "";
  toml += flags & 0x40 ? "test_fraction = 0.5\n" : "";
  try {
    read_split("csv", toml, flags & 8 ? "test" : "train", 256);
  } catch (const graft::runtime::UserError&) {
  }
  return 0;
}
