// The `csv` dataset: a table of numbers with one label column. One pass at construction
// records each row's byte offset; read() seeks and parses, so a file larger than memory trains.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "csv_text.hpp"
#include "graft/cpp/plugin.hpp"
#include "graft/random.h"

namespace graft_csv {

namespace fs = std::filesystem;

constexpr uint64_t kSplitStream = 0x73706C6974ull;  // "split": the row -> split assignment
// More classes than this means the label column is not a class column.
constexpr int64_t kMaxClasses = 1 << 20;

[[noreturn]] void fail(int32_t code, const std::string& message) {
  throw graft::Error(code, "csv: " + message);
}

class Csv : public graft::Dataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_string("path", "", "the CSV file (relative to the config)")),
        graft::option_string("label_column", "label", "name of the label column (needs a header)"),
        graft::option_int("label_index", -1, "0-based label column; -1: use label_column")
            .range(-1, 1e6),
        graft::option_string("task", "classification",
                             "classification: labels are classes (0..K-1 or names); "
                             "regression: labels are numbers",
                             "classification|regression"),
        graft::option_float("test_fraction", 0.2, "share of rows in the test split").range(0, 1),
        graft::option_int("split_seed", 0, "seed of the row -> split assignment").range(0, 1e18),
        graft::option_bool("has_header", true, "the first line names the columns"),
        graft::option_string("delimiter", ",", "the one character between fields"),
    };
  }

  Csv(const graft::Options& options, const graft_dataset_args& args, graft::Host) {
    std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "csv: unknown split '" << split << "'; expected \"train\" or \"test\"");
    std::string delimiter = options.get_string("delimiter");
    GRAFT_CHECK(delimiter.size() == 1,
                "csv: `delimiter` must be one character, not '" << delimiter << "'");
    delimiter_ = delimiter[0];
    regression_ = options.get_string("task") == "regression";
    file_ = options.get_string("path");
    if (file_.is_relative() && args.config_dir && *args.config_dir)
      file_ = fs::path(args.config_dir) / file_;
    index(options, split == "test");
    fd_ = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(GRAFT_ERR_IO, "cannot open " + file_.string() + ": " + last_error());
    buffer_.resize(longest_row_);
    fields_.reserve(static_cast<size_t>(columns_));
  }
  ~Csv() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Csv(const Csv&) = delete;
  Csv& operator=(const Csv&) = delete;

  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = static_cast<int64_t>(offsets_.size());
    info.input = graft::Shape{columns_ - 1};
    if (regression_)
      info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{1},
                                      DLDataType{kDLFloat, 32, 1}, 0};
    else
      info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{},
                                      DLDataType{kDLInt, 32, 1}, classes_};
    return info;
  }

  // x: (n, columns - 1) float32; y: (n,) int32 classes or (n, 1) float32 values.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    const int64_t features = columns_ - 1;
    GRAFT_CHECK(graft::on_cpu(x) && x.dtype.code == kDLFloat && x.dtype.bits == 32 &&
                    graft::numel(x) == n * features,
                "csv: read() needs x as float32 on the CPU with " << n * features << " elements");
    GRAFT_CHECK(graft::on_cpu(y) && y.dtype.bits == 32 && graft::numel(y) == n &&
                    y.dtype.code == (regression_ ? kDLFloat : kDLInt),
                "csv: read() needs y as " << (regression_ ? "float32" : "int32")
                                          << " on the CPU with " << n << " elements");
    const int64_t samples = static_cast<int64_t>(offsets_.size());
    for (int64_t i = 0; i < n; ++i) {
      int64_t sample = indices[i];
      GRAFT_CHECK(sample >= 0 && sample < samples,
                  "csv: sample " << sample << " is outside [0, " << samples << ")");
      std::string_view row = fetch(sample);
      split_fields(row, delimiter_, fields_);
      const int64_t where = offsets_[sample];
      if (static_cast<int64_t>(fields_.size()) != columns_) changed(where);
      float* out = graft::f32(x) + i * features;
      for (int64_t c = 0; c < columns_; ++c) {
        if (c == label_) continue;
        if (!parse_float(fields_[c], *out++)) changed(where);
      }
      std::string_view label = fields_[label_];
      if (regression_) {
        if (!parse_float(label, graft::f32(y)[i])) changed(where);
      } else if (!class_names_.empty()) {
        auto it = std::lower_bound(class_names_.begin(), class_names_.end(), label);
        if (it == class_names_.end() || *it != label) changed(where);
        graft::i32(y)[i] = static_cast<int32_t>(it - class_names_.begin());
      } else {
        int64_t value = 0;
        if (!parse_integer(label, value) || value < 0 || value >= classes_) changed(where);
        graft::i32(y)[i] = static_cast<int32_t>(value);
      }
    }
  }

 private:
  static std::string last_error() { return std::generic_category().message(errno); }

  // One pass: finds the label column, checks every row and records this split's rows.
  void index(const graft::Options& options, bool test_split) {
    std::ifstream in(file_, std::ios::binary);
    if (!in)
      fail(GRAFT_ERR_IO,
           "cannot open " + file_.string() + ": " + last_error() + "; set `path` to the CSV file");
    const double test_fraction = options.get_float("test_fraction");
    const uint64_t split_seed = static_cast<uint64_t>(options.get_int("split_seed"));
    const bool has_header = options.get_bool("has_header");
    std::vector<std::string> names;
    std::set<std::string> label_names;
    bool all_integers = true, all_numbers = true;
    int64_t highest = -1, line_number = 0, rows = 0, offset = 0;
    std::string line, first_non_integer;
    std::vector<std::string_view> fields;

    for (; std::getline(in, line); offset += static_cast<int64_t>(line.size()) + 1) {
      ++line_number;
      std::string_view row = line;
      if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
      if (line_number == 1 && row.starts_with("\xEF\xBB\xBF")) row.remove_prefix(3);  // UTF-8 BOM
      if (trim(row).empty()) continue;
      split_fields(row, delimiter_, fields);
      auto where = [&] { return file_.string() + ":" + std::to_string(line_number); };
      if (columns_ == 0) {
        columns_ = static_cast<int64_t>(fields.size());
        if (has_header) names.assign(fields.begin(), fields.end());
        label_ = find_label(options, names);
        GRAFT_CHECK(columns_ >= 2, "csv: " << where()
                                           << " has one column; a row needs the label "
                                              "and at least one feature (is `delimiter` right?)");
        if (has_header) continue;
      }
      if (static_cast<int64_t>(fields.size()) != columns_)
        fail(GRAFT_ERR_CORRUPT_DATA, where() + " has " + std::to_string(fields.size()) +
                                         " fields, but " +
                                         (has_header ? "the header" : "the first row") + " has " +
                                         std::to_string(columns_));
      for (int64_t c = 0; c < columns_; ++c) {
        float ignored = 0;
        if (c != label_ && !parse_float(fields[c], ignored))
          fail(GRAFT_ERR_CORRUPT_DATA, where() + ": column " + column_name(names, c) + " holds '" +
                                           std::string(fields[c]) + "', not a number");
      }
      std::string_view label = fields[label_];
      if (regression_) {
        float ignored = 0;
        if (!parse_float(label, ignored))
          fail(GRAFT_ERR_CORRUPT_DATA, where() + ": label '" + std::string(label) +
                                           "' is not a number, which task = \"regression\" needs");
      } else {
        int64_t value = 0;
        float number = 0;
        if (parse_integer(label, value)) {
          if (value < 0)
            fail(GRAFT_ERR_CORRUPT_DATA, where() + ": label " + std::to_string(value) +
                                             " is negative; class labels are 0..K-1 or names");
          highest = std::max(highest, value);
        } else {
          if (all_integers) first_non_integer = where() + " holds '" + std::string(label) + "'";
          all_integers = false;
          all_numbers = all_numbers && parse_float(label, number);
        }
        label_names.emplace(label);
        if (static_cast<int64_t>(label_names.size()) > kMaxClasses || highest >= kMaxClasses)
          fail(GRAFT_ERR_INVALID_ARGUMENT,
               where() + ": the label column holds more than " + std::to_string(kMaxClasses) +
                   " classes; set task = \"regression\" if it holds values");
      }
      // A hash of (split_seed, row): stable whatever else changes in the file.
      bool in_test = graft_random_uniform(split_seed, kSplitStream, static_cast<uint64_t>(rows)) <
                     test_fraction;
      ++rows;
      if (in_test != test_split) continue;
      offsets_.push_back(offset + (row.data() - line.data()));
      lengths_.push_back(static_cast<uint32_t>(row.size()));
      longest_row_ = std::max(longest_row_, row.size());
    }
    if (in.bad()) fail(GRAFT_ERR_IO, "cannot read " + file_.string() + ": " + last_error());
    if (rows == 0) fail(GRAFT_ERR_CORRUPT_DATA, file_.string() + " has no data rows");
    if (regression_) return;
    if (all_integers) {
      classes_ = highest + 1;
      return;
    }
    if (all_numbers)
      fail(GRAFT_ERR_INVALID_ARGUMENT, "the labels of " + file_.string() +
                                           " are numbers but not whole ones (" + first_non_integer +
                                           "); set task = \"regression\", or use classes 0..K-1");
    class_names_.assign(label_names.begin(), label_names.end());  // sorted: class i is name i
    classes_ = static_cast<int64_t>(class_names_.size());
  }

  int64_t find_label(const graft::Options& options, const std::vector<std::string>& names) const {
    int64_t index = options.get_int("label_index");
    if (index >= 0) {
      GRAFT_CHECK(index < columns_, "csv: `label_index` " << index << " is past the last column of "
                                                          << file_.string() << ", which has "
                                                          << columns_ << " columns");
      return index;
    }
    std::string wanted = options.get_string("label_column");
    GRAFT_CHECK(!names.empty(), "csv: " << file_.string()
                                        << " has no header (has_header = false), "
                                           "so set `label_index` to the label's 0-based column");
    auto it = std::find(names.begin(), names.end(), wanted);
    if (it == names.end()) {
      std::string listed;
      for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;
      GRAFT_CHECK(false, "csv: " << file_.string() << " has no column '" << wanted << "'"
                                 << did_you_mean(wanted, names) << "; its columns are " << listed
                                 << "; set `label_column` to one of them");
    }
    return it - names.begin();
  }

  static std::string column_name(const std::vector<std::string>& names, int64_t c) {
    return names.empty() ? std::to_string(c) : "'" + names[static_cast<size_t>(c)] + "'";
  }

  std::string_view fetch(int64_t sample) {
    size_t length = lengths_[sample];
    ssize_t got = ::pread(fd_, buffer_.data(), length, offsets_[sample]);
    if (got < 0) fail(GRAFT_ERR_IO, "cannot read " + file_.string() + ": " + last_error());
    if (static_cast<size_t>(got) != length) changed(offsets_[sample]);
    return std::string_view(buffer_.data(), length);
  }

  [[noreturn]] void changed(int64_t offset) const {
    fail(GRAFT_ERR_CORRUPT_DATA, file_.string() +
                                     " changed after it was indexed (the row at byte " +
                                     std::to_string(offset) +
                                     " no longer reads as it did); "
                                     "restart the run");
  }

  fs::path file_;
  char delimiter_ = ',';
  bool regression_ = false;
  int64_t columns_ = 0, label_ = -1, classes_ = 0;
  std::vector<std::string> class_names_;  // sorted; empty when labels are 0..K-1
  std::vector<int64_t> offsets_;          // byte offset of each of this split's rows
  std::vector<uint32_t> lengths_;         // its length without the line ending
  size_t longest_row_ = 0;
  int fd_ = -1;
  std::vector<char> buffer_;              // one row, sized once
  std::vector<std::string_view> fields_;  // its fields, capacity reserved once
};

}  // namespace graft_csv

GRAFT_PLUGIN_LIBRARY("csv", "0.1.0",
                     graft::dataset<graft_csv::Csv>("csv", "a CSV table of numbers and a label"))
