// The files behind the IDX reader: byte ranges served from a memory map or by pread, and the
// one-time unpacking of a .gz file into the cache folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace graft_idx {

// A file served by byte ranges. A file up to `map_limit` bytes is memory-mapped and stays
// resident, so reading it costs no system call. A larger one is read with pread: on Linux 6.x a
// page fault maps the whole large folio around it (often 1-2 MB; measured: about 1 MB resident
// and 14 us per 784-byte sample read at random, against 1 us and nothing resident with pread),
// so a shuffled epoch through a mapping would make the whole file resident.
class SampleFile {
 public:
  SampleFile(const std::filesystem::path& file, size_t map_limit);
  ~SampleFile();
  SampleFile(const SampleFile&) = delete;
  SampleFile& operator=(const SampleFile&) = delete;

  size_t size() const { return size_; }
  bool mapped() const { return data_ != nullptr; }
  // The `bytes` bytes at `offset` (within size()): a pointer into the mapping, or `scratch`
  // (at least `bytes` long) filled from the file. A mapped file must not shrink meanwhile.
  const uint8_t* view(size_t offset, size_t bytes, uint8_t* scratch) const;

 private:
  std::string name_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// True when the file starts with the gzip magic bytes (1f 8b).
bool is_gzip(const std::filesystem::path& file);

// The unpacked copy of the gzip file `source` in `cache_dir`, made on the first call. It is named
// after the source's name, size and modification time, so a changed source is unpacked again,
// and written under a temporary name then renamed, so a crash or a concurrent rank never leaves
// half a file under the final name.
std::filesystem::path unpacked_copy(const std::filesystem::path& source,
                                    const std::filesystem::path& cache_dir);

}  // namespace graft_idx
