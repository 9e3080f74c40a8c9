// Building, saving and loading the character index of the text reader.
#include "text_index.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <system_error>

#include "graft/cpp/core.hpp"

namespace graft_text {

namespace fs = std::filesystem;
using graft_datasets::FileStream;

namespace {

constexpr char kCacheMagic[8] = {'G', 'R', 'T', 'X', 'I', 'D', 'X', '1'};
constexpr char32_t kCodePoints = 0x110000;

// What the cached index was built from: each file's name, size and modification time.
std::string cache_key(const FileStream& stream) {
  std::string key;
  for (const FileStream::Piece& piece : stream.pieces()) {
    struct stat info {};
    if (::fstat(piece.fd, &info) != 0) return "";
    key += piece.name + '\t' + std::to_string(info.st_size) + '\t' +
           std::to_string(info.st_mtim.tv_sec) + '.' + std::to_string(info.st_mtim.tv_nsec) + '\n';
  }
  return key;
}

uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

template <class T>
bool get(std::ifstream& in, T* values, size_t n) {
  return static_cast<bool>(
      in.read(reinterpret_cast<char*>(values), std::streamsize(n * sizeof(T))));
}
template <class T>
void put(std::ofstream& out, const T* values, size_t n) {
  out.write(reinterpret_cast<const char*>(values), std::streamsize(n * sizeof(T)));
}

bool load(const fs::path& file, const std::string& key, int64_t stream_bytes, CharIndex& index) {
  std::ifstream in(file, std::ios::binary);
  char magic[8] = {};
  uint64_t key_bytes = 0;
  if (!in || !get(in, magic, 8) || std::memcmp(magic, kCacheMagic, 8) != 0 ||
      !get(in, &key_bytes, 1) || key_bytes != key.size())
    return false;
  std::string stored(key.size(), '\0');
  int64_t counts[3] = {};
  if (!get(in, stored.data(), stored.size()) || stored != key || !get(in, counts, 3)) return false;
  const int64_t expected = (counts[0] + kCheckpointEvery - 1) / kCheckpointEvery;
  if (counts[1] != expected || counts[2] < 0 || counts[2] > int64_t{kCodePoints}) return false;
  index.characters = counts[0];
  index.checkpoints.resize(static_cast<size_t>(counts[1]));
  std::vector<uint32_t> code_points(static_cast<size_t>(counts[2]));
  std::vector<int64_t> positions(code_points.size());
  if (!get(in, index.checkpoints.data(), index.checkpoints.size()) ||
      !get(in, code_points.data(), code_points.size()) ||
      !get(in, positions.data(), positions.size()))
    return false;
  // A damaged cache must not send a read outside the stream: every offset in order and inside.
  for (size_t i = 0; i < index.checkpoints.size(); ++i)
    if (index.checkpoints[i] < 0 || index.checkpoints[i] >= stream_bytes ||
        (i == 0 ? index.checkpoints[i] != 0 : index.checkpoints[i] <= index.checkpoints[i - 1]))
      return false;
  for (size_t i = 0; i < code_points.size(); ++i) {
    if (code_points[i] >= kCodePoints || positions[i] < 0 || positions[i] >= index.characters ||
        (i > 0 && code_points[i] <= code_points[i - 1]))
      return false;
    index.first_seen.emplace_back(code_points[i], positions[i]);
  }
  return true;
}

// Written under a temporary name then renamed, so a crash or a concurrent rank never leaves
// half an index under the final name. A cache that cannot be written only costs the next run
// another pass, so failures are not errors.
void save(const fs::path& file, const std::string& key, const CharIndex& index) {
  std::error_code error;
  fs::create_directories(file.parent_path(), error);
  const fs::path temporary = file.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary);
    const uint64_t key_bytes = key.size();
    const int64_t counts[3] = {index.characters, int64_t(index.checkpoints.size()),
                               int64_t(index.first_seen.size())};
    put(out, kCacheMagic, 8);
    put(out, &key_bytes, 1);
    put(out, key.data(), key.size());
    put(out, counts, 3);
    put(out, index.checkpoints.data(), index.checkpoints.size());
    for (const auto& [code_point, position] : index.first_seen) put(out, &code_point, 1);
    for (const auto& [code_point, position] : index.first_seen) put(out, &position, 1);
    if (!out.flush()) {
      fs::remove(temporary, error);
      return;
    }
  }
  fs::rename(temporary, file, error);
  if (error) fs::remove(temporary, error);
}

[[noreturn]] void invalid(const std::string& file, int64_t offset, const uint8_t* p, size_t n) {
  char bytes[16] = {};
  std::snprintf(bytes, sizeof bytes, "0x%02X", p[0]);
  throw graft::Error(GRAFT_ERR_CORRUPT_DATA,
                     "text: " + file + " is not valid UTF-8 at byte " + std::to_string(offset) +
                         " (" + (n == 0 ? "the file ends inside a character" : bytes) +
                         "); set mode = \"byte\" to read any file as bytes, or leave the file "
                         "out with `exclude` (or convert it to UTF-8)");
}

CharIndex build(const FileStream& stream) {
  CharIndex index;
  std::vector<uint8_t> seen(kCodePoints, 0);
  std::vector<uint8_t> chunk(size_t{1} << 20);
  int64_t until_checkpoint = 0;
  for (size_t f = 0; f < stream.pieces().size(); ++f) {
    const FileStream::Piece& piece = stream.pieces()[f];
    size_t carried = 0;  // bytes of a character cut by the previous chunk, at chunk's front
    for (int64_t done = 0; done < piece.bytes;) {
      const int64_t want =
          std::min<int64_t>(piece.bytes - done, static_cast<int64_t>(chunk.size() - carried));
      stream.read_file(f, piece.skip + done, want, chunk.data() + carried);
      const int64_t chunk_start = done - static_cast<int64_t>(carried);  // in the file
      done += want;
      const size_t end = carried + static_cast<size_t>(want);
      size_t at = 0;
      while (at < end) {
        char32_t code_point = chunk[at];
        int length = 1;
        if (code_point >= 0x80) {
          length = utf8_decode(chunk.data() + at, end - at, code_point);
          if (length < 0 && done < piece.bytes) break;  // the rest comes with the next chunk
          if (length <= 0)
            invalid(piece.name, chunk_start + int64_t(at), chunk.data() + at, length == 0 ? 1 : 0);
        }
        if (until_checkpoint-- == 0) {
          index.checkpoints.push_back(piece.first + chunk_start + int64_t(at));
          until_checkpoint = kCheckpointEvery - 1;
        }
        if (!seen[code_point]) {
          seen[code_point] = 1;
          index.first_seen.emplace_back(code_point, index.characters);
        }
        ++index.characters;
        at += static_cast<size_t>(length);
      }
      carried = end - at;
      std::memmove(chunk.data(), chunk.data() + at, carried);
    }
  }
  std::sort(index.first_seen.begin(), index.first_seen.end());
  return index;
}

}  // namespace

int utf8_decode(const uint8_t* p, size_t n, char32_t& code_point) {
  const uint8_t lead = p[0];
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  int length = 0;
  char32_t value = 0, least = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, value = lead & 0x1F, least = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, value = lead & 0x0F, least = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, value = lead & 0x07, least = 0x10000;
  } else {
    return 0;
  }
  for (int k = 1; k < length; ++k) {
    if (static_cast<size_t>(k) >= n) return -1;
    if ((p[k] & 0xC0) != 0x80) return 0;
    value = (value << 6) | (p[k] & 0x3F);
  }
  if (value < least || value >= kCodePoints || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  code_point = value;
  return length;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

CharIndex index_characters(const FileStream& stream, const fs::path& cache_dir) {
  const std::string key = cache_dir.empty() ? "" : cache_key(stream);
  char name[40] = {};
  std::snprintf(name, sizeof name, "text-index-%016llx.bin",
                static_cast<unsigned long long>(fnv1a(key)));
  const fs::path file = cache_dir / name;
  CharIndex index;
  if (!key.empty() && load(file, key, stream.size(), index)) return index;
  index = build(stream);
  if (!key.empty()) save(file, key, index);
  return index;
}

}  // namespace graft_text
