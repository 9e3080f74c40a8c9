// IDX writers for tests: a big-endian header then the bytes, through stdio or zlib's gzopen.
#include "idx_writer.hpp"

#include <zlib.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace graft::test {

namespace {

// Writes to a plain file or a gzip file; throws on any failure.
class Output {
 public:
  Output(const std::filesystem::path& file, bool gzip) : name_(file.string()) {
    if (gzip)
      gz_ = gzopen(file.c_str(), "wb");
    else
      raw_ = std::fopen(file.c_str(), "wb");
    if (!gz_ && !raw_) throw std::runtime_error("cannot write " + name_);
  }
  ~Output() {
    if (gz_ || raw_) close();
  }
  void write(const void* data, size_t bytes) {
    bool ok = gz_ ? gzwrite(gz_, data, static_cast<unsigned>(bytes)) == static_cast<int>(bytes)
                  : std::fwrite(data, 1, bytes, raw_) == bytes;
    if (!ok) throw std::runtime_error("cannot write " + name_ + " (disk full?)");
  }
  void write_header(uint32_t magic, const std::vector<uint32_t>& dims) {
    write_word(magic);
    for (uint32_t d : dims) write_word(d);
  }
  void close() {
    bool ok = gz_ ? gzclose(gz_) == Z_OK : std::fclose(raw_) == 0;
    gz_ = nullptr;
    raw_ = nullptr;
    if (!ok) throw std::runtime_error("cannot finish " + name_);
  }

 private:
  void write_word(uint32_t v) {
    const uint8_t bytes[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                              static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    write(bytes, 4);
  }
  std::string name_;
  gzFile gz_ = nullptr;
  std::FILE* raw_ = nullptr;
};

}  // namespace

void write_idx_images(const std::filesystem::path& file, const std::vector<uint8_t>& pixels,
                      uint32_t count, uint32_t rows, uint32_t cols, bool gzip) {
  Output out(file, gzip);
  out.write_header(2051, {count, rows, cols});
  out.write(pixels.data(), pixels.size());
  out.close();
}

void write_idx_labels(const std::filesystem::path& file, const std::vector<uint8_t>& labels,
                      bool gzip) {
  Output out(file, gzip);
  out.write_header(2049, {static_cast<uint32_t>(labels.size())});
  out.write(labels.data(), labels.size());
  out.close();
}

GeneratedIdx write_generated_idx(const std::filesystem::path& folder, int64_t count, uint32_t rows,
                                 uint32_t cols) {
  GeneratedIdx result{folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte", count,
                      0};
  const int64_t pixels = int64_t{rows} * cols;
  const int64_t chunk = 8192;  // images per write: about 6 MB at 28 x 28
  std::vector<uint8_t> buffer(static_cast<size_t>(chunk * pixels));
  Output images(result.images, false);
  images.write_header(2051, {static_cast<uint32_t>(count), rows, cols});
  for (int64_t first = 0; first < count; first += chunk) {
    const int64_t n = std::min(chunk, count - first);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < pixels; ++k) {
        uint8_t value = generated_pixel(first + i, k);
        buffer[static_cast<size_t>(i * pixels + k)] = value;
        result.pixel_sum += value;
      }
    images.write(buffer.data(), static_cast<size_t>(n * pixels));
  }
  images.close();
  std::vector<uint8_t> labels(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) labels[static_cast<size_t>(i)] = generated_label(i);
  write_idx_labels(result.labels, labels);
  return result;
}

}  // namespace graft::test
