// Helpers for the tests of the sequence readers (text, tokens): a reader created as the trainer
// creates one, windows read into owned tensors, the text codec through the plugin's vtable,
// and token files written in llm.c's format.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset_instance.hpp"
#include "test_support.hpp"

namespace graft::test {

// Options from TOML text; relative paths resolve against `dir`, the cache is `dir`/cache.
struct SequenceArgs {
  std::string split, config, cache;
  graft_dataset_args args() const {
    return {sizeof(graft_dataset_args), split.c_str(), config.c_str(), cache.c_str(), 7, 0, 1};
  }
};
inline SequenceArgs sequence_args(const std::filesystem::path& dir, const std::string& split) {
  return {split, dir.string(), (dir / "cache").string()};
}

inline std::unique_ptr<runtime::DatasetInstance> make_sequence(const std::string& reader,
                                                               const std::string& toml,
                                                               const std::filesystem::path& dir,
                                                               const std::string& split = "train") {
  runtime::BoundOptions options = graft::test::options(GRAFT_KIND_DATASET, reader, toml);
  const SequenceArgs a = sequence_args(dir, split);
  const graft_dataset_args args = a.args();
  return std::make_unique<runtime::DatasetInstance>(
      builtin_registry().get(GRAFT_KIND_DATASET, reader), options, args);
}

// x: (n, context) float32 ids, y: (n, context) int32 targets, as int vectors per window.
struct Windows {
  std::vector<std::vector<int32_t>> x, y;
};
inline Windows read_windows(runtime::DatasetInstance& dataset, std::vector<int64_t> indices) {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t context = dataset.info().input.dims[0];
  Tensor x({n, context}), y({n, context}, DLDataType{kDLInt, 32, 1});
  dataset.read(indices.data(), n, *x.get(), *y.get());
  Windows w;
  for (int64_t i = 0; i < n; ++i) {
    w.x.emplace_back(), w.y.emplace_back();
    for (int64_t k = 0; k < context; ++k) {
      w.x.back().push_back(static_cast<int32_t>(x.f()[i * context + k]));
      w.y.back().push_back(y.i()[i * context + k]);
    }
  }
  return w;
}

// A reader object made through its vtable, for the decode and encode slots.
class Codec {
 public:
  Codec(const std::string& reader, const std::string& toml, const std::filesystem::path& dir)
      : vtable_(
            &builtin_registry().get(GRAFT_KIND_DATASET, reader).vtable<graft_dataset_vtable>()) {
    runtime::BoundOptions options = graft::test::options(GRAFT_KIND_DATASET, reader, toml);
    const SequenceArgs a = sequence_args(dir, "train");
    const graft_dataset_args args = a.args();
    runtime::throw_if_failed(vtable_->create(runtime::host_api(), options.get(), &args, &self_),
                             reader);
  }
  ~Codec() { vtable_->destroy(self_); }
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  bool has_slots() const { return vtable_->decode && vtable_->encode; }
  std::string decode(const std::vector<int32_t>& ids) const {
    int64_t length = 0;
    char none = 0;  // a first call with no room learns the length
    runtime::throw_if_failed(
        vtable_->decode(self_, ids.data(), int64_t(ids.size()), &none, 0, &length), "decode");
    std::string text(static_cast<size_t>(length), '\0');
    runtime::throw_if_failed(
        vtable_->decode(self_, ids.data(), int64_t(ids.size()), text.data(), length, &length),
        "decode");
    return text;
  }
  std::vector<int32_t> encode(const std::string& text) const {
    int64_t count = 0;
    int32_t none = 0;
    runtime::throw_if_failed(
        vtable_->encode(self_, text.data(), int64_t(text.size()), &none, 0, &count), "encode");
    std::vector<int32_t> ids(static_cast<size_t>(count));
    runtime::throw_if_failed(
        vtable_->encode(self_, text.data(), int64_t(text.size()), ids.data(), count, &count),
        "encode");
    return ids;
  }

 private:
  const graft_dataset_vtable* vtable_;
  void* self_ = nullptr;
};

// A token file in llm.c's format: 256 little-endian int32 (magic, version, count), then the
// ids as little-endian uint16. `count` < 0 writes the true count.
inline void write_llmc_tokens(const std::filesystem::path& file, const std::vector<uint16_t>& ids,
                              int32_t magic = 20240520, int32_t version = 1, int32_t count = -1) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count < 0 ? static_cast<int32_t>(ids.size()) : count;
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 256 * 4);
  out.write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
}

}  // namespace graft::test
