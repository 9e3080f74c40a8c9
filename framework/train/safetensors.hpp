// The safetensors format (8-byte header length, JSON header, raw little-endian data), so
// checkpoints are readable by Python's `safetensors` and PyTorch. float32 tensors only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace graft::runtime {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

// Writes to `path` atomically: a temporary file in the same folder, flushed, then renamed.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

struct SafetensorsFile {
  struct Entry {
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  std::map<std::string, Entry> tensors;
  std::map<std::string, std::string> metadata;
};

// Reads and checks the whole file; a damaged file is a UserError naming it.
SafetensorsFile read_safetensors(const std::filesystem::path& path);

// Writes text to `path` atomically (temporary file + rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace graft::runtime
