// The safetensors format (8-byte header length, JSON header, raw little-endian data), so
// checkpoints are readable by Python's `safetensors` and PyTorch. float32 tensors only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
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

// The end of a message about a damaged checkpoint file (.safetensors or .json).
inline constexpr const char* kDamagedCheckpoint =
    "; the file is damaged: resume from another checkpoint";

// A JSON value from a checkpoint header for a message: scalars as written (cut short),
// containers by kind and size, so a hostile header neither floods the message nor recurses
// deep in the serializer.
std::string shown(const nlohmann::json& value);

// Writes text to `path` atomically (temporary file + rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace graft::runtime
