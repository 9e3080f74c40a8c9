// The `text` dataset: a UTF-8 file or a folder of them as one stream of characters (or bytes),
// served as windows of `context` tokens with their next-token targets, read on demand.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../common/file_stream.hpp"
#include "../common/token_windows.hpp"
#include "graft/cpp/plugin.hpp"
#include "text_index.hpp"

namespace graft_text {

namespace fs = std::filesystem;
using graft_datasets::Windows;

constexpr char32_t kReplacement = 0xFFFD;  // what id 0, a character training never saw, shows
constexpr char32_t kDense = 0x10000;       // code points below it map to ids through a table

class Text : public graft::TextDataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_string(
            "path", "", "a UTF-8 text file, or a folder whose files are read in name order")),
        graft::option_string("mode", "char",
                             "char: a token is a Unicode character, the vocabulary those of the "
                             "training split; byte: a token is a byte, 256 of them",
                             "char|byte"),
        graft::required(graft::option_int("context", 0, "tokens per sample").range(1, 1e9)),
        graft::option_int("stride", 0, "tokens between two samples' starts (0: context)")
            .range(0, 1e12),
        graft::option_float("test_fraction", 0.1, "the last share of the text, the test split")
            .range(0, 1),
        graft::option_string_list("exclude", {},
                                  "glob patterns of file names to leave out of a folder, "
                                  "e.g. [\"*.dat\"]"),
    };
  }

  Text(const graft::Options& options, const graft_dataset_args& args, graft::Host)
      : stream_("text") {
    const std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "text: unknown split '" << split << "'; expected \"train\" or \"test\"");
    fs::path path = options.get_string("path");
    if (path.is_relative() && args.config_dir && *args.config_dir)
      path = fs::path(args.config_dir) / path;
    open(path, options.get_string_list("exclude"));
    bytes_ = options.get_string("mode") == "byte";

    int64_t total = stream_.size();
    std::vector<std::pair<char32_t, int64_t>> first_seen;
    if (!bytes_) {
      const fs::path cache = args.cache_dir && *args.cache_dir
                                 ? fs::path(args.cache_dir)
                                 : fs::temp_directory_path() / "graft-cache";
      CharIndex index = index_characters(stream_, cache);
      total = index.characters;
      checkpoints_ = std::move(index.checkpoints);
      first_seen = std::move(index.first_seen);
    }
    const int64_t train = graft_datasets::train_tokens(total, options.get_float("test_fraction"));
    const bool test = split == "test";
    const std::string unit = bytes_ ? " bytes" : " characters";
    windows_ = graft_datasets::make_windows(
        "text", test ? train : 0, test ? total - train : train, options.get_int("context"),
        options.get_int("stride"),
        "the " + split + " split of " + path.string() + " (" + std::to_string(total) + unit +
            ", test_fraction = " +
            graft_datasets::show_fraction(options.get_float("test_fraction")) + ")");

    // Both splits take the training split's characters, so that an id means the same in each.
    dense_.assign(kDense, 0);
    for (const auto& [code_point, position] : first_seen)
      if (position < train) {
        vocabulary_.push_back(code_point);
        if (code_point < kDense) dense_[code_point] = static_cast<int32_t>(vocabulary_.size());
      }
  }

  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = windows_.samples();
    info.input = graft::Shape{windows_.context};
    info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{windows_.context},
                                    DLDataType{kDLInt, 32, 1}, classes()};
    return info;
  }

  // x: (n, context) float32 token ids; y: (n, context) int32, the ids one token later.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    const int64_t context = windows_.context;
    graft_datasets::check_batch("text", x, y, n, context);
    tokens_.resize(static_cast<size_t>(context + 1));
    for (int64_t i = 0; i < n; ++i) {
      GRAFT_CHECK(indices[i] >= 0 && indices[i] < windows_.samples(),
                  "text: sample " << indices[i] << " is outside [0, " << windows_.samples() << ")");
      const int64_t start = windows_.start(indices[i]);
      if (bytes_)
        read_bytes(start, context + 1);
      else
        read_characters(start, context + 1);
      float* inputs = graft::f32(x) + i * context;
      int32_t* targets = graft::i32(y) + i * context;
      for (int64_t k = 0; k < context; ++k) {
        inputs[k] = static_cast<float>(tokens_[k]);
        targets[k] = tokens_[k + 1];
      }
    }
  }

  std::string decode(const int32_t* ids, int64_t n) const override {
    std::string text;
    for (int64_t i = 0; i < n; ++i) {
      GRAFT_CHECK(ids[i] >= 0 && ids[i] < classes(),
                  "text: id " << ids[i] << " (at " << i << ") is outside the vocabulary of "
                              << classes() << " tokens");
      if (bytes_)
        text += static_cast<char>(ids[i]);
      else
        utf8_append(text, ids[i] == 0 ? kReplacement : vocabulary_[ids[i] - 1]);
    }
    return text;
  }

  std::vector<int32_t> encode(const std::string& text) const override {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    std::vector<int32_t> ids;
    for (size_t at = 0; at < text.size();) {
      char32_t code_point = 0;
      int length = 1;
      if (bytes_)
        code_point = p[at];
      else
        length = utf8_decode(p + at, text.size() - at, code_point);
      GRAFT_CHECK(length > 0, "text: the text to encode is not valid UTF-8 at byte "
                                  << at << "; give UTF-8 text");
      ids.push_back(bytes_ ? static_cast<int32_t>(code_point) : id_of(code_point));
      at += static_cast<size_t>(length);
    }
    return ids;
  }

 private:
  int64_t classes() const { return bytes_ ? 256 : int64_t(vocabulary_.size()) + 1; }

  int32_t id_of(char32_t code_point) const {
    if (code_point < kDense) return dense_[code_point];
    auto it = std::lower_bound(vocabulary_.begin(), vocabulary_.end(), code_point);
    return it != vocabulary_.end() && *it == code_point
               ? static_cast<int32_t>(it - vocabulary_.begin()) + 1
               : 0;
  }

  void open(const fs::path& path, const std::vector<std::string>& exclude) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      const std::vector<fs::path> files = graft_datasets::folder_files(path, exclude, "text");
      if (files.empty())
        throw graft::Error(GRAFT_ERR_IO, "text: the folder " + path.string() +
                                             " holds no text file" +
                                             (exclude.empty() ? "" : " that `exclude` leaves") +
                                             "; set `path` to a folder of text files");
      for (const fs::path& file : files) stream_.add(file);
    } else if (fs::exists(path, error)) {
      stream_.add(path);
    } else {
      throw graft::Error(GRAFT_ERR_IO, "text: `path` " + path.string() +
                                           " does not exist; set it to a UTF-8 text file or a "
                                           "folder of them (relative to the config file)");
    }
  }

  void read_bytes(int64_t start, int64_t count) {
    bytes_read_.resize(static_cast<size_t>(count));
    stream_.read(start, count, bytes_read_.data());
    for (int64_t k = 0; k < count; ++k) tokens_[k] = bytes_read_[k];
  }

  // The characters [start, start + count): the bytes from the checkpoint at or before `start`
  // to the one after the last character, decoded.
  void read_characters(int64_t start, int64_t count) {
    const size_t first = static_cast<size_t>(start / kCheckpointEvery);
    const size_t last =
        static_cast<size_t>((start + count + kCheckpointEvery - 1) / kCheckpointEvery);
    const int64_t begin = checkpoints_[first];
    const int64_t end = last < checkpoints_.size() ? checkpoints_[last] : stream_.size();
    bytes_read_.resize(static_cast<size_t>(std::max<int64_t>(end - begin, 0)));
    stream_.read(begin, end - begin, bytes_read_.data());
    int64_t position = static_cast<int64_t>(first) * kCheckpointEvery;
    for (size_t at = 0; position < start + count;) {
      char32_t code_point = 0;
      const int length = at < bytes_read_.size()
                             ? utf8_decode(&bytes_read_[at], bytes_read_.size() - at, code_point)
                             : 0;
      if (length <= 0)
        throw graft::Error(GRAFT_ERR_CORRUPT_DATA,
                           "text: the text changed since it was indexed; do not change a "
                           "dataset's files during a run");
      if (position >= start) tokens_[position - start] = id_of(code_point);
      ++position;
      at += static_cast<size_t>(length);
    }
  }

  graft_datasets::FileStream stream_;
  bool bytes_ = false;
  Windows windows_;
  std::vector<int64_t> checkpoints_;  // char mode: see CharIndex
  std::vector<char32_t> vocabulary_;  // id k + 1 is vocabulary_[k], increasing
  std::vector<int32_t> dense_;        // code point < kDense -> id (0: not in the vocabulary)
  std::vector<int32_t> tokens_;       // read(): one window's ids and the target after it
  std::vector<uint8_t> bytes_read_;
};

}  // namespace graft_text

GRAFT_PLUGIN_LIBRARY(
    "text", "0.1.0",
    graft::dataset<graft_text::Text>("text",
                                     "UTF-8 text as windows of characters or bytes, for next-token "
                                     "prediction"))
