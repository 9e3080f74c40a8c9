// The file stream behind the text and tokens readers. Errors are graft::Error with GRAFT_ERR_IO
// (the file system) or GRAFT_ERR_CORRUPT_DATA (a file that shrank), naming the file.
#include "file_stream.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "graft/cpp/core.hpp"

namespace graft_datasets {

namespace fs = std::filesystem;

namespace {
std::string system_message(int error) { return std::generic_category().message(error); }
}  // namespace

std::vector<fs::path> folder_files(const fs::path& folder, const std::vector<std::string>& exclude,
                                   const std::string& reader) {
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    if (it->is_symlink(error) || !it->is_regular_file(error)) continue;
    const std::string name = it->path().filename().string();
    const bool excluded = std::any_of(exclude.begin(), exclude.end(), [&](const std::string& p) {
      return ::fnmatch(p.c_str(), name.c_str(), 0) == 0;
    });
    if (!excluded) files.push_back(it->path());
  }
  if (error)
    throw graft::Error(GRAFT_ERR_IO, reader + ": cannot list the folder " + folder.string() + ": " +
                                         error.message());
  std::sort(files.begin(), files.end());
  return files;
}

FileStream::~FileStream() {
  for (const Piece& piece : pieces_) ::close(piece.fd);
}

int64_t FileStream::add(const fs::path& file, int64_t skip, int64_t bytes) {
  Piece piece;
  piece.name = file.string();
  piece.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (piece.fd < 0)
    throw graft::Error(GRAFT_ERR_IO, reader_ + ": cannot open " + piece.name + ": " +
                                         system_message(errno) + "; check `path`");
  struct stat info {};
  if (::fstat(piece.fd, &info) != 0) {
    const int error = errno;
    ::close(piece.fd);
    throw graft::Error(GRAFT_ERR_IO, reader_ + ": cannot read the size of " + piece.name + ": " +
                                         system_message(error));
  }
  piece.skip = skip;
  piece.bytes = bytes < 0 ? std::max<int64_t>(0, info.st_size - skip) : bytes;
  piece.first = size_;
  size_ += piece.bytes;
  pieces_.push_back(std::move(piece));
  return info.st_size;
}

size_t FileStream::piece_at(int64_t offset) const {
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), offset,
                             [](int64_t o, const Piece& p) { return o < p.first; });
  // An empty piece shares its start with the next, and upper_bound passes both.
  return static_cast<size_t>(it - pieces_.begin()) - 1;
}

void FileStream::read(int64_t offset, int64_t bytes, uint8_t* out) const {
  GRAFT_CHECK(offset >= 0 && bytes >= 0 && offset + bytes <= size_,
              reader_ << ": bytes [" << offset << ", " << offset + bytes
                      << ") lie outside the stream of " << size_ << " bytes");
  size_t index = bytes > 0 ? piece_at(offset) : 0;
  while (bytes > 0) {
    const Piece& piece = pieces_[index++];
    const int64_t within = offset - piece.first;
    const int64_t n = std::min(bytes, piece.bytes - within);
    if (n <= 0) continue;
    read_file(index - 1, piece.skip + within, n, out);
    out += n;
    offset += n;
    bytes -= n;
  }
}

void FileStream::read_file(size_t piece, int64_t offset, int64_t bytes, uint8_t* out) const {
  const Piece& p = pieces_[piece];
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::pread(p.fd, out + done, static_cast<size_t>(bytes - done),
                                static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw graft::Error(GRAFT_ERR_IO,
                         reader_ + ": cannot read " + p.name + ": " + system_message(errno));
    if (got == 0)
      throw graft::Error(GRAFT_ERR_CORRUPT_DATA, reader_ + ": " + p.name +
                                                     " became shorter while in use; do not "
                                                     "change a dataset's files during a run");
    done += got;
  }
}

}  // namespace graft_datasets
