// Writers of IDX files (the MNIST format) for tests: small sets from given bytes, raw or gzip,
// and a large generated set, streamed to disk, for the larger-than-memory tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace graft::test {

// An IDX images file (magic 2051) of `count` images of rows x cols bytes; gzip-compressed
// (through zlib's gzopen) when `gzip`.
void write_idx_images(const std::filesystem::path& file, const std::vector<uint8_t>& pixels,
                      uint32_t count, uint32_t rows, uint32_t cols, bool gzip = false);
// An IDX labels file (magic 2049), one byte per label.
void write_idx_labels(const std::filesystem::path& file, const std::vector<uint8_t>& labels,
                      bool gzip = false);

// Pixel k of generated image i: its first three pixels spell i (little-endian bytes), so a
// reader can tell which image it got; the rest vary with i and k.
inline uint8_t generated_pixel(int64_t image, int64_t k) {
  return k < 3 ? static_cast<uint8_t>(image >> (8 * k))
               : static_cast<uint8_t>((image * 7 + k) & 0xFF);
}
// The label of generated image i.
inline uint8_t generated_label(int64_t image) { return static_cast<uint8_t>(image % 10); }

struct GeneratedIdx {
  std::filesystem::path images, labels;
  int64_t count;
  uint64_t pixel_sum;  // the sum of every pixel byte written
};

// Writes `count` generated images of rows x cols (raw, not gzip) and their labels into `folder`
// under the standard training-set names, in chunks so memory stays small whatever the size.
GeneratedIdx write_generated_idx(const std::filesystem::path& folder, int64_t count,
                                 uint32_t rows = 28, uint32_t cols = 28);

}  // namespace graft::test
