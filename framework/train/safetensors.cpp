// safetensors reading and writing with nlohmann-json for the header; every write goes through
// a temporary file and a rename so a crash never leaves half a checkpoint.
#include "train/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

namespace {
void write_all(int fd, const char* data, size_t size, const fs::path& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Failure("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void atomic_write(const fs::path& path, const std::vector<std::pair<const char*, size_t>>& parts) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Failure("cannot create " + tmp.string() + ": " + std::strerror(errno));
  try {
    for (const auto& [data, size] : parts) write_all(fd, data, size, tmp);
    if (::fsync(fd) != 0) throw Failure("cannot flush " + tmp.string() + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw Failure("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
  }
}
}  // namespace

void write_file_atomically(const fs::path& path, const std::string& text) {
  atomic_write(path, {{text.data(), text.size()}});
}

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const NamedTensor& t : tensors) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + n * sizeof(float)}}};
    offset += n * sizeof(float);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the format allows padding; keeps data aligned
  uint64_t length = json.size();
  char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  std::vector<std::pair<const char*, size_t>> parts{{length_bytes, 8}, {json.data(), json.size()}};
  for (const NamedTensor& t : tensors) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    parts.emplace_back(reinterpret_cast<const char*>(t.data), n * sizeof(float));
  }
  atomic_write(path, parts);
}

SafetensorsFile read_safetensors(const fs::path& path) {
  const std::string where = "checkpoint " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(where + ": cannot open (no such file?)");
  const uint64_t file_size = fs::file_size(path);
  unsigned char length_bytes[8];
  if (!in.read(reinterpret_cast<char*>(length_bytes), 8))
    throw UserError(where + ": truncated (shorter than the 8-byte header length)");
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= uint64_t(length_bytes[i]) << (8 * i);
  if (length > file_size - 8) throw UserError(where + ": header length " + std::to_string(length) +
                                              " runs past the end of the file; the file is damaged");
  std::string json(length, '\0');
  in.read(json.data(), static_cast<std::streamsize>(length));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json);
  } catch (const std::exception& e) {
    throw UserError(where + ": header is not valid JSON (" + e.what() + "); the file is damaged");
  }
  SafetensorsFile out;
  const uint64_t data_size = file_size - 8 - length;
  std::vector<char> data(data_size);
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : value.items()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    if (value.value("dtype", "") != "F32")
      throw UserError(where + ": tensor '" + name + "' is " + value.value("dtype", "?") +
                      "; graft reads float32 (F32) checkpoints");
    SafetensorsFile::Entry e;
    e.shape = value.at("shape").get<std::vector<int64_t>>();
    auto offsets = value.at("data_offsets").get<std::vector<uint64_t>>();
    size_t n = 1;
    for (int64_t d : e.shape) n *= static_cast<size_t>(d);
    if (offsets.size() != 2 || offsets[1] < offsets[0] || offsets[1] > data_size ||
        offsets[1] - offsets[0] != n * sizeof(float))
      throw UserError(where + ": tensor '" + name + "' has data offsets outside the file; the file is damaged");
    e.values.resize(n);
    std::memcpy(e.values.data(), data.data() + offsets[0], n * sizeof(float));
    out.tensors.emplace(name, std::move(e));
  }
  return out;
}

}  // namespace graft::runtime
