// The `idx` dataset: MNIST / Fashion-MNIST IDX files (a .gz is unpacked once into the cache
// folder), memory-mapped or read sample by sample, so a file larger than memory trains.
#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "graft/cpp/plugin.hpp"
#include "idx_file.hpp"

namespace graft_idx {

namespace fs = std::filesystem;

constexpr uint32_t kImagesMagic = 2051;  // 0x00000803: unsigned bytes, 3 dimensions
constexpr uint32_t kLabelsMagic = 2049;  // 0x00000801: unsigned bytes, 1 dimension
// normalize = "standard" uses Fashion-MNIST's training-set pixel mean and standard deviation
// (of pixels scaled to [0, 1]); MNIST's would be 0.1307 and 0.3081.
constexpr float kStandardMean = 0.2860f;
constexpr float kStandardDeviation = 0.3530f;

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

[[noreturn]] void corrupt(const std::string& message) {
  throw graft::Error(GRAFT_ERR_CORRUPT_DATA, "idx: " + message);
}

// The file `name` in `folder`, or its other form: without ".gz" when only the unpacked file is
// there, with ".gz" when only the packed one is.
fs::path find_file(const fs::path& folder, const std::string& name, const std::string& option) {
  fs::path file = folder / name;
  if (fs::exists(file)) return file;
  fs::path other = file;
  if (name.ends_with(".gz"))
    other.replace_extension();
  else
    other += ".gz";
  if (fs::exists(other)) return other;
  throw graft::Error(GRAFT_ERR_IO, "idx: cannot find " + file.string() + " (nor " + other.string() +
                                       "); set `path` to the folder holding "
                                       "the IDX files, or `" +
                                       option + "` to the file's name");
}

// An IDX file whose header agrees with its size.
struct IdxFile {
  std::unique_ptr<SampleFile> file;
  std::string shown;  // how messages name it
  std::vector<uint32_t> dims;
  size_t header = 0;
};

IdxFile open_idx(const fs::path& file, const fs::path& cache_dir, size_t map_limit, uint32_t magic,
                 size_t ndims, const std::string& what) {
  IdxFile idx;
  fs::path raw = is_gzip(file) ? unpacked_copy(file, cache_dir) : file;
  idx.shown = raw == file ? file.string() : raw.string() + " (unpacked from " + file.string() + ")";
  idx.file = std::make_unique<SampleFile>(raw, map_limit);
  idx.header = 4 + 4 * ndims;
  const size_t size = idx.file->size();
  uint8_t header[16] = {};
  const uint8_t* data = idx.file->view(0, std::min(size, idx.header), header);
  uint32_t found = size >= 4 ? big_endian(data) : 0;
  if (found != magic)
    corrupt(idx.shown +
            (size < 4 ? " is too short to hold a magic number"
                      : " starts with magic number " + std::to_string(found)) +
            ", not " + std::to_string(magic) + " (IDX " + what +
            "); check that the option "
            "names the " +
            what + " file of the set");
  if (size < idx.header)
    corrupt(idx.shown + " has " + std::to_string(size) + " bytes, fewer than the " +
            std::to_string(idx.header) + "-byte header of an IDX " + what +
            " file; the file is truncated");
  std::string layout;
  size_t body = 1;
  bool overflow = false;
  for (size_t d = 0; d < ndims; ++d) {
    idx.dims.push_back(big_endian(data + 4 + 4 * d));
    layout += (d ? " x " : "") + std::to_string(idx.dims.back());
    overflow = overflow || __builtin_mul_overflow(body, size_t{idx.dims.back()}, &body);
    if (d > 0 && idx.dims[d] == 0)
      corrupt(idx.shown + " declares images of " + layout + " pixels; a side cannot be 0");
  }
  size_t expected = overflow ? SIZE_MAX : idx.header + body;
  if (size != expected)
    corrupt(idx.shown + (size < expected ? " is truncated" : " has trailing bytes") +
            ": its header declares " + layout + " one-byte values, so the file should have " +
            std::to_string(expected) + " bytes, but it has " + std::to_string(size) +
            "; download the file again");
  return idx;
}

class Idx : public graft::Dataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_string(
            "path", "", "folder holding the IDX files (relative to the config file)")),
        graft::option_string("train_images", "train-images-idx3-ubyte.gz",
                             "training images (.gz or unpacked)"),
        graft::option_string("train_labels", "train-labels-idx1-ubyte.gz", "training labels"),
        graft::option_string("test_images", "t10k-images-idx3-ubyte.gz", "test images"),
        graft::option_string("test_labels", "t10k-labels-idx1-ubyte.gz", "test labels"),
        graft::option_string("normalize", "unit",
                             "unit: pixels / 255 in [0, 1]; standard: also minus Fashion-MNIST's "
                             "mean 0.2860, divided by its deviation 0.3530",
                             "unit|standard"),
        graft::option_int("limit", 0, "use only the first N samples (0: all)").range(0, 1e15),
        graft::option_int("classes", 0,
                          "number of classes; every label must be below it (0: from the "
                          "labels, at least 10, and the labels above 9 must have no gaps)")
            .range(0, 256),
        graft::option_string("shape", "image", "image: input (1, rows, cols); flat: (rows*cols,)",
                             "image|flat"),
        // Larger files are read sample by sample, so a set larger than memory keeps the
        // process small (see SampleFile for why not through the mapping).
        graft::option_int("map_limit_mb", 256,
                          "files up to this many MiB are memory-mapped and stay resident; "
                          "larger ones are read sample by sample")
            .range(0, 1e9),
    };
  }

  Idx(const graft::Options& options, const graft_dataset_args& args, graft::Host) {
    std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "idx: unknown split '" << split << "'; expected \"train\" or \"test\"");
    fs::path folder = options.get_string("path");
    if (folder.is_relative() && args.config_dir && *args.config_dir)
      folder = fs::path(args.config_dir) / folder;
    if (!fs::is_directory(folder))
      throw graft::Error(GRAFT_ERR_IO, "idx: `path` " + folder.string() +
                                           " is not a folder; set it to the folder holding "
                                           "the IDX files");
    fs::path cache = args.cache_dir && *args.cache_dir ? fs::path(args.cache_dir)
                                                       : fs::temp_directory_path() / "graft-cache";

    const size_t map_limit = static_cast<size_t>(options.get_int("map_limit_mb")) << 20;
    std::string images_option = split + "_images", labels_option = split + "_labels";
    images_ = open_idx(find_file(folder, options.get_string(images_option.c_str()), images_option),
                       cache, map_limit, kImagesMagic, 3, "images");
    labels_ = open_idx(find_file(folder, options.get_string(labels_option.c_str()), labels_option),
                       cache, map_limit, kLabelsMagic, 1, "labels");
    int64_t count = images_.dims[0];
    if (images_.dims[0] != labels_.dims[0])
      corrupt(images_.shown + " holds " + std::to_string(images_.dims[0]) + " images but " +
              labels_.shown + " holds " + std::to_string(labels_.dims[0]) +
              " labels; both files must come from the same set");
    int64_t limit = options.get_int("limit");
    samples_ = limit > 0 ? std::min(limit, count) : count;
    pixels_ = int64_t{images_.dims[1]} * images_.dims[2];

    classes_ = count_classes(options.get_int("classes"), count, labels_option);
    scratch_.resize(static_cast<size_t>(pixels_));

    bool standard = options.get_string("normalize") == "standard";
    for (int value = 0; value < 256; ++value) {
      float unit = static_cast<float>(value) / 255.0f;
      pixel_value_[value] = standard ? (unit - kStandardMean) / kStandardDeviation : unit;
    }
    if (options.get_string("shape") == "flat")
      input_ = graft::Shape{pixels_};
    else
      input_ = graft::Shape{1, images_.dims[1], images_.dims[2]};
  }

  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = samples_;
    info.input = input_;
    info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{},
                                    DLDataType{kDLInt, 32, 1}, classes_};
    return info;
  }

  // x: (n, input...) float32, y: (n,) int32.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    GRAFT_CHECK(graft::on_cpu(x) && x.dtype.code == kDLFloat && x.dtype.bits == 32 &&
                    graft::numel(x) == n * pixels_,
                "idx: read() needs x as float32 on the CPU with " << n * pixels_ << " elements");
    GRAFT_CHECK(
        graft::on_cpu(y) && y.dtype.code == kDLInt && y.dtype.bits == 32 && graft::numel(y) == n,
        "idx: read() needs y as int32 on the CPU with " << n << " elements");
    float* out = graft::f32(x);
    int32_t* targets = graft::i32(y);
    const size_t image_bytes = static_cast<size_t>(pixels_);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t sample = indices[i];
      GRAFT_CHECK(sample >= 0 && sample < samples_,
                  "idx: sample " << sample << " is outside [0, " << samples_ << ")");
      const uint8_t* source =
          images_.file->view(images_.header + sample * image_bytes, image_bytes, scratch_.data());
      float* row = out + i * pixels_;
      for (int64_t k = 0; k < pixels_; ++k) row[k] = pixel_value_[source[k]];
      uint8_t label = 0;
      targets[i] = *labels_.file->view(labels_.header + static_cast<size_t>(sample), 1, &label);
    }
  }

 private:
  // The class count: `declared` when set (every label below it), else ten (the MNIST sets) or
  // more when a label says so, a byte capping them at 256. One pass over all labels, not only
  // the first `limit`, so both splits agree. A lone label far past the others is more likely
  // a damaged byte than a class, and would otherwise reach the user as a model too narrow.
  int64_t count_classes(int64_t declared, int64_t count, const std::string& option) {
    std::array<int64_t, 256> occurrences{}, first_sample{};
    std::vector<uint8_t> chunk(size_t{1} << 20);
    for (int64_t first = 0; first < count; first += static_cast<int64_t>(chunk.size())) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(count - first, chunk.size()));
      const uint8_t* labels = labels_.file->view(labels_.header + first, n, chunk.data());
      for (size_t i = 0; i < n; ++i)
        if (occurrences[labels[i]]++ == 0) first_sample[labels[i]] = first + int64_t(i);
    }
    int highest = 0, lowest = 255;
    for (int value = 0; value < 256; ++value)
      if (occurrences[value] > 0) {
        highest = value;
        lowest = std::min(lowest, value);
      }
    auto holds = [&](int value) {
      return labels_.shown + ": sample " + std::to_string(first_sample[value]) + " holds label " +
             std::to_string(value);
    };
    if (declared > 0) {
      // The first sample, in file order, whose label is not below the declared count.
      int worst = -1;
      for (int value = static_cast<int>(declared); value < 256; ++value)
        if (occurrences[value] > 0 && (worst < 0 || first_sample[value] < first_sample[worst]))
          worst = value;
      if (worst >= 0)
        throw graft::Error(GRAFT_ERR_INVALID_ARGUMENT,
                           "idx: " + holds(worst) +
                               ", but [data] declares classes = " + std::to_string(declared) +
                               " (labels 0.." + std::to_string(declared - 1) +
                               "); set classes = " + std::to_string(highest + 1) +
                               " or more (0 infers it from the labels), or check that `" + option +
                               "` names the right file");
      return declared;
    }
    if (highest >= 10) {
      int missing = -1;
      for (int value = 10; value < highest && missing < 0; ++value)
        if (occurrences[value] == 0) missing = value;
      if (missing >= 0) {
        int next = -1;  // the highest label below `highest`: the others lie in lowest..next
        for (int value = highest - 1; value >= 0 && next < 0; --value)
          if (occurrences[value] > 0) next = value;
        const std::string others = next < 0 ? "no other label occurs"
                                            : "the other labels lie in " + std::to_string(lowest) +
                                                  ".." + std::to_string(next) + " and label " +
                                                  std::to_string(missing) + " never occurs";
        corrupt(holds(highest) + " (the highest), but " + others +
                ", so the labels above 9 are not contiguous and the file is likely damaged; "
                "download it again, or, if it really has " +
                std::to_string(highest + 1) +
                " classes, set `classes = " + std::to_string(highest + 1) + "` in [data]");
      }
    }
    return std::max(10, highest + 1);
  }

  IdxFile images_, labels_;
  int64_t samples_ = 0, pixels_ = 0, classes_ = 0;
  graft::Shape input_;
  std::array<float, 256> pixel_value_{};  // byte -> normalised value
  std::vector<uint8_t> scratch_;          // one image, for a file that is not mapped
};

}  // namespace graft_idx

GRAFT_PLUGIN_LIBRARY("idx", "0.1.0",
                     graft::dataset<graft_idx::Idx>("idx", "MNIST / Fashion-MNIST IDX files"))
