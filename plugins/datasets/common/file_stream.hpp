// One byte stream made of several files' byte ranges (a folder of text files, token shards),
// read by pread at any offset, so a corpus larger than memory never has to be resident.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace graft_datasets {

// The regular files of `folder` in sorted name order, minus those whose name matches one of the
// glob patterns in `exclude`. Symbolic links are skipped: a folder such as Debian's fortunes
// holds *.u8 links to its own files, which would enter the stream twice. Errors name `reader`.
std::vector<std::filesystem::path> folder_files(const std::filesystem::path& folder,
                                                const std::vector<std::string>& exclude,
                                                const std::string& reader);

class FileStream {
 public:
  // One file's part of the stream: `bytes` bytes from `skip` into the file.
  struct Piece {
    std::string name;
    int fd = -1;
    int64_t skip = 0, bytes = 0;
    int64_t first = 0;  // where the piece starts in the stream
  };

  explicit FileStream(std::string reader) : reader_(std::move(reader)) {}
  ~FileStream();
  FileStream(const FileStream&) = delete;
  FileStream& operator=(const FileStream&) = delete;

  // Opens `file` and appends its bytes [skip, skip + bytes) to the stream (bytes < 0: to the
  // end of the file). Returns the file's size.
  int64_t add(const std::filesystem::path& file, int64_t skip = 0, int64_t bytes = -1);

  int64_t size() const { return size_; }
  const std::vector<Piece>& pieces() const { return pieces_; }
  // The piece holding stream offset `offset` (< size()).
  size_t piece_at(int64_t offset) const;
  // Fills out[0, bytes) from stream offset `offset`; the range must lie inside the stream.
  void read(int64_t offset, int64_t bytes, uint8_t* out) const;
  // Fills out[0, bytes) from the file of piece `piece`, at `offset` into the file.
  void read_file(size_t piece, int64_t offset, int64_t bytes, uint8_t* out) const;

 private:
  std::string reader_;
  std::vector<Piece> pieces_;
  int64_t size_ = 0;
};

}  // namespace graft_datasets
