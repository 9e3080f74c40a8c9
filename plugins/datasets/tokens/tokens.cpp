// The `tokens` dataset: token ids in llm.c's binary format (a 256 x int32 header, then uint16
// ids), one file or a folder of shards, served as windows of `context` tokens read on demand.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/file_stream.hpp"
#include "../common/token_windows.hpp"
#include "graft/cpp/plugin.hpp"

namespace graft_tokens {

namespace fs = std::filesystem;
using graft_datasets::FileStream;

constexpr int32_t kMagic = 20240520;  // llm.c's dev/data/data_common.py, write_datafile
constexpr int32_t kVersion = 1;       // uint16 tokens (version 2, uint32 tokens, is not read)
constexpr int64_t kHeaderBytes = 256 * 4;

[[noreturn]] void corrupt(const std::string& message) {
  throw graft::Error(GRAFT_ERR_CORRUPT_DATA, "tokens: " + message);
}

int32_t little_endian(const uint8_t* p) {
  return static_cast<int32_t>(uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
                              (uint32_t{p[3]} << 24));
}

// Appends the tokens of the llm.c file `file` to `stream`, after checking its header.
void add_shard(FileStream& stream, const fs::path& file) {
  const std::string name = file.string();
  uint8_t header[kHeaderBytes] = {};
  std::ifstream in(file, std::ios::binary);
  if (!in) throw graft::Error(GRAFT_ERR_IO, "tokens: cannot open " + name + "; check `path`");
  in.read(reinterpret_cast<char*>(header), kHeaderBytes);
  const int64_t got = in.gcount();
  std::error_code error;
  const int64_t size = static_cast<int64_t>(fs::file_size(file, error));
  const int32_t magic = little_endian(header);
  if (got < 4 || magic != kMagic) {
    const std::string raw =
        "python3 -c \"import numpy as n; t = n.fromfile('" + name +
        "', n.uint16); h = n.zeros(256, n.int32); h[:3] = " + std::to_string(kMagic) +
        ", 1, len(t); open('with_header.bin', 'wb').write(h.tobytes() + "
        "t.tobytes())\"";
    corrupt(name +
            (got < 4 ? " is too short to hold a header"
                     : " starts with magic number " + std::to_string(magic)) +
            ", not " + std::to_string(kMagic) +
            " (llm.c's token file header). A file written by nanoGPT's prepare.py is a bare "
            "uint16 array without a header; add one with: " +
            raw);
  }
  const int32_t version = little_endian(header + 4);
  if (version != kVersion)
    corrupt(name + " has format version " + std::to_string(version) + "; only version " +
            std::to_string(kVersion) +
            " (uint16 tokens) is read; write the file with llm.c's write_datafile(..., "
            "model_desc=\"gpt-2\")");
  const int32_t count = little_endian(header + 8);
  const int64_t expected = kHeaderBytes + 2 * int64_t{count};
  if (count < 0 || got < kHeaderBytes || size < expected)
    corrupt(name + " is truncated: its header declares " + std::to_string(count) +
            " tokens, so the file should have " + std::to_string(expected) + " bytes, but it has " +
            std::to_string(size) + "; write or download it again");
  stream.add(file, kHeaderBytes, 2 * int64_t{count});
}

class Tokens : public graft::Dataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_string(
            "path", "",
            "an llm.c token file (.bin), or a folder of *.bin shards read in name "
            "order")),
        graft::required(graft::option_int("context", 0, "tokens per sample").range(1, 1e9)),
        graft::option_int("stride", 0, "tokens between two samples' starts (0: context)")
            .range(0, 1e12),
        graft::option_float("test_fraction", 0.1,
                            "the last share of the tokens, the test split (without test_path)")
            .range(0, 1),
        graft::option_int("vocabulary", 50257, "number of token ids (GPT-2's: 50257)")
            .range(1, 65536),
        graft::option_string("test_path", "",
                             "a separate file or folder for the test split, as llm.c's "
                             "*_val.bin (then `path` is all training)"),
    };
  }

  Tokens(const graft::Options& options, const graft_dataset_args& args, graft::Host)
      : stream_("tokens") {
    const std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "tokens: unknown split '" << split << "'; expected \"train\" or \"test\"");
    const bool test = split == "test";
    const std::string test_path = options.get_string("test_path");
    const bool separate = !test_path.empty();
    const std::string option = test && separate ? "test_path" : "path";
    open(resolve(options.get_string(option.c_str()), args), option);
    vocabulary_ = options.get_int("vocabulary");

    const int64_t total = stream_.size() / 2;
    const double fraction = separate ? 0.0 : options.get_float("test_fraction");
    const int64_t train = graft_datasets::train_tokens(total, fraction);
    std::string what =
        "the " + split + " split of `" + option + "` (" + std::to_string(total) + " tokens" +
        (separate ? "" : ", test_fraction = " + graft_datasets::show_fraction(fraction)) + ")";
    windows_ = graft_datasets::make_windows(
        "tokens", test && !separate ? train : 0, test && !separate ? total - train : train,
        options.get_int("context"), options.get_int("stride"), what);
  }

  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = windows_.samples();
    info.input = graft::Shape{windows_.context};
    info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{windows_.context},
                                    DLDataType{kDLInt, 32, 1}, vocabulary_};
    return info;
  }

  // x: (n, context) float32 token ids; y: (n, context) int32, the ids one token later.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    const int64_t context = windows_.context;
    graft_datasets::check_batch("tokens", x, y, n, context);
    bytes_.resize(static_cast<size_t>(2 * (context + 1)));
    for (int64_t i = 0; i < n; ++i) {
      GRAFT_CHECK(
          indices[i] >= 0 && indices[i] < windows_.samples(),
          "tokens: sample " << indices[i] << " is outside [0, " << windows_.samples() << ")");
      const int64_t start = windows_.start(indices[i]);
      stream_.read(2 * start, 2 * (context + 1), bytes_.data());
      float* inputs = graft::f32(x) + i * context;
      int32_t* targets = graft::i32(y) + i * context;
      for (int64_t k = 0; k <= context; ++k) {
        const int32_t id = bytes_[2 * k] | (bytes_[2 * k + 1] << 8);
        if (id >= vocabulary_) too_large(start + k, id);
        if (k < context) inputs[k] = static_cast<float>(id);
        if (k > 0) targets[k - 1] = id;
      }
    }
  }

 private:
  static fs::path resolve(const fs::path& path, const graft_dataset_args& args) {
    if (path.is_relative() && args.config_dir && *args.config_dir)
      return fs::path(args.config_dir) / path;
    return path;
  }

  void open(const fs::path& path, const std::string& option) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      std::vector<fs::path> shards;
      for (const fs::path& file : graft_datasets::folder_files(path, {}, "tokens"))
        if (file.extension() == ".bin") shards.push_back(file);
      if (shards.empty())
        throw graft::Error(GRAFT_ERR_IO, "tokens: the folder " + path.string() +
                                             " holds no *.bin file; set `" + option +
                                             "` to an llm.c token file or a folder of them");
      for (const fs::path& shard : shards) add_shard(stream_, shard);
    } else if (fs::exists(path, error)) {
      add_shard(stream_, path);
    } else {
      throw graft::Error(GRAFT_ERR_IO, "tokens: `" + option + "` " + path.string() +
                                           " does not exist; set it to an llm.c token file "
                                           "(.bin) or a folder of them (relative to the config "
                                           "file)");
    }
  }

  [[noreturn]] void too_large(int64_t position, int32_t id) const {
    const FileStream::Piece& piece = stream_.pieces()[stream_.piece_at(2 * position)];
    throw graft::Error(GRAFT_ERR_CORRUPT_DATA,
                       "tokens: " + piece.name + " holds token id " + std::to_string(id) +
                           " at token " + std::to_string((2 * position - piece.first) / 2) +
                           ", not below `vocabulary` = " + std::to_string(vocabulary_) +
                           "; raise `vocabulary` to the tokenizer's size (at least " +
                           std::to_string(id + 1) + "), or check that the file holds tokens");
  }

  FileStream stream_;
  int64_t vocabulary_ = 0;
  graft_datasets::Windows windows_;
  std::vector<uint8_t> bytes_;  // read(): one window's little-endian uint16 ids
};

}  // namespace graft_tokens

GRAFT_PLUGIN_LIBRARY("tokens", "0.1.0",
                     graft::dataset<graft_tokens::Tokens>(
                         "tokens",
                         "llm.c / nanoGPT token files (.bin) as windows of token ids, "
                         "for next-token prediction"))
