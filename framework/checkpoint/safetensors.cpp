// safetensors reading and writing with nlohmann-json for the header; every write goes through
// a temporary file and a rename so a crash never leaves half a checkpoint.
#include "checkpoint/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
    if (::fsync(fd) != 0)
      throw Failure("cannot flush " + tmp.string() + ": " + std::strerror(errno));
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
    header[t.name] = {{"dtype", "F32"},
                      {"shape", t.shape},
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

namespace {
using nlohmann::json;

// "[784, 512]"
std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out;
  for (int64_t d : dims) out += (out.empty() ? "" : ", ") + std::to_string(d);
  return "[" + out + "]";
}

// A non-negative integer that fits int64 (nlohmann holds those as signed or unsigned).
bool as_count(const json& value, int64_t& out) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (!value.is_number_integer()) return false;
  out = value.get<int64_t>();
  return out >= 0;
}

// One tensor's header entry, checked: its shape and the byte range [begin, end) it names in
// the data section.
struct TensorSpan {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

TensorSpan check_entry(const std::string& where, const std::string& name, const json& value,
                       uint64_t data_size) {
  const std::string tensor = where + ": tensor '" + name + "'";
  if (!value.is_object())
    throw UserError(tensor + " is described by " + shown(value) + ", not a JSON object" +
                    kDamagedCheckpoint);
  const auto field = [&](const char* key) -> const json& {
    auto it = value.find(key);
    if (it == value.end()) throw UserError(tensor + " has no \"" + key + "\"" + kDamagedCheckpoint);
    return *it;
  };
  const json& dtype = field("dtype");
  if (!dtype.is_string())
    throw UserError(tensor + ": \"dtype\" is " + shown(dtype) + ", not a string" +
                    kDamagedCheckpoint);
  if (dtype.get_ref<const std::string&>() != "F32")
    throw UserError(tensor + " is " + shown(dtype) + "; graft reads float32 (F32) checkpoints");

  TensorSpan span;
  span.name = name;
  const json& shape = field("shape");
  if (!shape.is_array())
    throw UserError(tensor + ": \"shape\" is " + shown(shape) + ", not an array of sizes" +
                    kDamagedCheckpoint);
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    int64_t size = 0;
    if (!as_count(d, size))
      throw UserError(tensor + ": \"shape\" holds " + shown(d) +
                      ", not a non-negative integer size" + kDamagedCheckpoint);
    span.shape.push_back(size);
    overflow = overflow || __builtin_mul_overflow(numel, uint64_t(size), &numel);
  }
  uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, uint64_t{sizeof(float)}, &bytes);
  if (overflow)
    throw UserError(tensor + ": shape " + dims_text(span.shape) +
                    " has more elements than 64 bits can count" + kDamagedCheckpoint);

  const json& offsets = field("data_offsets");
  int64_t begin = 0, end = 0;
  if (!offsets.is_array() || offsets.size() != 2 || !as_count(offsets[0], begin) ||
      !as_count(offsets[1], end) || end < begin)
    throw UserError(tensor + ": malformed data_offsets (" +
                    (offsets.is_array() && offsets.size() == 2
                         ? "[" + shown(offsets[0]) + ", " + shown(offsets[1]) + "]"
                         : shown(offsets)) +
                    "); expected two byte offsets [begin, end] with begin <= end" +
                    kDamagedCheckpoint);
  span.begin = uint64_t(begin);
  span.end = uint64_t(end);
  const std::string range = "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (span.end > data_size)
    throw UserError(tensor + ": data_offsets " + range +
                    " lie outside the file: its data section holds " + std::to_string(data_size) +
                    " bytes" + kDamagedCheckpoint);
  if (span.end - span.begin != bytes)
    throw UserError(tensor + ": shape " + dims_text(span.shape) + " needs " +
                    std::to_string(bytes) + " bytes but data_offsets " + range + " hold " +
                    std::to_string(span.end - span.begin) + kDamagedCheckpoint);
  return span;
}

// Two tensors may not share bytes: one of them would read the other's values.
void check_no_overlap(const std::string& where, std::vector<const TensorSpan*> spans) {
  std::erase_if(spans, [](const TensorSpan* s) { return s->begin == s->end; });
  std::sort(spans.begin(), spans.end(),
            [](const TensorSpan* a, const TensorSpan* b) { return a->begin < b->begin; });
  const TensorSpan* furthest = nullptr;  // of the spans so far, the one that ends last
  for (const TensorSpan* s : spans) {
    if (furthest && s->begin < furthest->end)
      throw UserError(where + ": tensors '" + furthest->name + "' (bytes " +
                      std::to_string(furthest->begin) + ".." + std::to_string(furthest->end) +
                      ") and '" + s->name + "' (bytes " + std::to_string(s->begin) + ".." +
                      std::to_string(s->end) + ") overlap in the data section" +
                      kDamagedCheckpoint);
    if (!furthest || s->end > furthest->end) furthest = s;
  }
}
}  // namespace

std::string shown(const nlohmann::json& value) {
  if (value.is_array())
    return "an array of " + std::to_string(value.size()) + (value.size() == 1 ? " item" : " items");
  if (value.is_object()) return "an object";
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

SafetensorsFile read_safetensors(const fs::path& path) {
  const std::string where = "checkpoint " + path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw UserError(where + ": " + (fs::exists(path, ec) ? "not a regular file" : "not found") +
                    "; name a step_N.safetensors file or a run folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(where + ": cannot open (" + std::strerror(errno) + ")");
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) throw UserError(where + ": cannot read its size (" + ec.message() + ")");
  unsigned char length_bytes[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(length_bytes), 8))
    throw UserError(where + ": truncated (shorter than the 8-byte header length)" +
                    kDamagedCheckpoint);
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= uint64_t(length_bytes[i]) << (8 * i);
  if (length > file_size - 8)
    throw UserError(where + ": header length " + std::to_string(length) +
                    " runs past the end of the file" + kDamagedCheckpoint);
  std::string text(length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length)))
    throw UserError(where + ": cannot read its " + std::to_string(length) + "-byte header" +
                    kDamagedCheckpoint);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    std::string why = e.what();
    if (why.size() > 200) why = why.substr(0, 197) + "...";
    throw UserError(where + ": header is not valid JSON (" + why + ")" + kDamagedCheckpoint);
  }
  if (!header.is_object())
    throw UserError(where + ": header is " + shown(header) + ", not a JSON object" +
                    kDamagedCheckpoint);

  SafetensorsFile out;
  const uint64_t data_size = file_size - 8 - length;
  std::vector<TensorSpan> spans;
  for (const auto& [name, value] : header.items()) {
    if (name != "__metadata__") {
      spans.push_back(check_entry(where, name, value, data_size));
      continue;
    }
    if (!value.is_object())
      throw UserError(where + ": __metadata__ is " + shown(value) + ", not a JSON object" +
                      kDamagedCheckpoint);
    for (const auto& [key, v] : value.items()) {
      if (!v.is_string())
        throw UserError(where + ": __metadata__ '" + key + "' is " + shown(v) + ", not a string" +
                        kDamagedCheckpoint);
      out.metadata[key] = v.get<std::string>();
    }
  }
  std::vector<const TensorSpan*> by_offset;
  for (const TensorSpan& s : spans) by_offset.push_back(&s);
  check_no_overlap(where, by_offset);

  // Every range lies inside the data section and none overlaps: what follows allocates at
  // most the file's size.
  std::vector<char> data(data_size);
  if (!in.read(data.data(), static_cast<std::streamsize>(data_size)))
    throw UserError(where + ": cannot read its " + std::to_string(data_size) +
                    "-byte data section (was the file cut short while being read?)");
  for (TensorSpan& s : spans) {
    SafetensorsFile::Entry e;
    e.shape = std::move(s.shape);
    e.values.resize((s.end - s.begin) / sizeof(float));
    if (s.end > s.begin) std::memcpy(e.values.data(), data.data() + s.begin, s.end - s.begin);
    out.tensors.emplace(s.name, std::move(e));
  }
  return out;
}

}  // namespace graft::runtime
