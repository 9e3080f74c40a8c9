// Sample files and gzip unpacking for the IDX reader. Errors are graft::Error with GRAFT_ERR_IO
// (the file system) or GRAFT_ERR_CORRUPT_DATA (the bytes), naming the file.
#include "idx_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "graft/cpp/core.hpp"

namespace graft_idx {

namespace fs = std::filesystem;

namespace {

std::string system_message(int error) { return std::generic_category().message(error); }

[[noreturn]] void io_error(const std::string& message) {
  throw graft::Error(GRAFT_ERR_IO, "idx: " + message);
}

// Removes the temporary file of an unpacking that did not finish.
struct TemporaryFile {
  fs::path path;
  bool kept = false;
  ~TemporaryFile() {
    std::error_code ignored;
    if (!kept) fs::remove(path, ignored);
  }
};

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

SampleFile::SampleFile(const fs::path& file, size_t map_limit) : name_(file.string()) {
  fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) io_error("cannot open " + name_ + ": " + system_message(errno));
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    int error = errno;
    ::close(fd_);
    io_error("cannot read the size of " + name_ + ": " + system_message(error));
  }
  size_ = static_cast<size_t>(info.st_size);
  if (size_ > 0 && size_ <= map_limit) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      int error = errno;
      ::close(fd_);
      io_error("cannot memory-map " + name_ + ": " + system_message(error));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
}

SampleFile::~SampleFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  ::close(fd_);
}

const uint8_t* SampleFile::view(size_t offset, size_t bytes, uint8_t* scratch) const {
  if (data_) return data_ + offset;
  size_t done = 0;
  while (done < bytes) {
    ssize_t got = ::pread(fd_, scratch + done, bytes - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) io_error("cannot read " + name_ + ": " + system_message(errno));
    if (got == 0)
      throw graft::Error(GRAFT_ERR_CORRUPT_DATA,
                         "idx: " + name_ +
                             " became shorter while in use; do not change a "
                             "dataset's files during a run");
    done += static_cast<size_t>(got);
  }
  return scratch;
}

bool is_gzip(const fs::path& file) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "rb"));
  if (!f) io_error("cannot open " + file.string() + ": " + system_message(errno));
  unsigned char magic[2] = {0, 0};
  size_t n = std::fread(magic, 1, 2, f.get());
  return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

fs::path unpacked_copy(const fs::path& source, const fs::path& cache_dir) {
  struct stat info {};
  if (::stat(source.c_str(), &info) != 0)
    io_error("cannot read the size of " + source.string() + ": " + system_message(errno));
  const int64_t modified = int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec;
  std::string stem = source.filename().string();
  if (stem.size() > 3 && stem.ends_with(".gz")) stem.resize(stem.size() - 3);
  fs::path target = cache_dir / (stem + "." + std::to_string(info.st_size) + "-" +
                                 std::to_string(modified) + ".unpacked");
  if (fs::exists(target)) return target;

  std::error_code error;
  fs::create_directories(cache_dir, error);
  if (error)
    io_error("cannot create the cache folder " + cache_dir.string() + ": " + error.message() +
             "; point the run's cache folder somewhere writable");
  TemporaryFile temporary{target.string() + ".tmp-" + std::to_string(::getpid())};

  std::unique_ptr<gzFile_s, GzCloser> in(gzopen(source.c_str(), "rb"));
  if (!in) io_error("cannot open " + source.string() + ": " + system_message(errno));
  gzbuffer(in.get(), 1 << 20);
  std::unique_ptr<std::FILE, FileCloser> out(std::fopen(temporary.path.c_str(), "wb"));
  if (!out)
    io_error("cannot write " + temporary.path.string() + ": " + system_message(errno) +
             "; point the run's cache folder somewhere writable");

  std::vector<char> buffer(1 << 20);
  for (;;) {
    int n = gzread(in.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
    int code = Z_OK;
    const char* message = gzerror(in.get(), &code);
    if (n < 0 || (code != Z_OK && code != Z_STREAM_END))
      throw graft::Error(GRAFT_ERR_CORRUPT_DATA, "idx: " + source.string() +
                                                     " is not a valid gzip file (" + message +
                                                     "); download it again");
    if (n == 0) break;
    if (std::fwrite(buffer.data(), 1, static_cast<size_t>(n), out.get()) != static_cast<size_t>(n))
      io_error("cannot write " + temporary.path.string() + ": " + system_message(errno) +
               " (is the disk full?)");
  }
  if (std::fclose(out.release()) != 0)
    io_error("cannot write " + temporary.path.string() + ": " + system_message(errno) +
             " (is the disk full?)");
  fs::rename(temporary.path, target, error);
  if (error) io_error("cannot rename " + temporary.path.string() + ": " + error.message());
  temporary.kept = true;
  return target;
}

}  // namespace graft_idx
