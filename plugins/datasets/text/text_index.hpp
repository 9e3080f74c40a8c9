// The character index of a UTF-8 text stream: where every 4096th character starts, so a window
// at any character position is found by one short read, and each distinct character's first
// position, from which either split's vocabulary follows. Built in one pass, cached on disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "../common/file_stream.hpp"

namespace graft_text {

// 8 bytes of index per 4096 characters: 2 MB per GB of text. A window read decodes at most
// this many characters before its first one.
constexpr int64_t kCheckpointEvery = 4096;

// The character at p (n > 0 bytes there): its length in bytes, 0 when the bytes are not
// well-formed UTF-8 (overlong forms, surrogates and values past U+10FFFF are not), or -1 when
// the n bytes end inside the character.
int utf8_decode(const uint8_t* p, size_t n, char32_t& code_point);
void utf8_append(std::string& out, char32_t code_point);

struct CharIndex {
  int64_t characters = 0;
  std::vector<int64_t> checkpoints;  // the byte offset of character k * kCheckpointEvery
  // Each distinct code point with the position of its first occurrence, by code point.
  std::vector<std::pair<char32_t, int64_t>> first_seen;
};

// The index of `stream`, read from `cache_dir` when the files' names, sizes and modification
// times match an earlier pass, else built (invalid UTF-8 is a GRAFT_ERR_CORRUPT_DATA naming the
// file and byte) and saved there. An empty cache_dir keeps no cache.
CharIndex index_characters(const graft_datasets::FileStream& stream,
                           const std::filesystem::path& cache_dir);

}  // namespace graft_text
