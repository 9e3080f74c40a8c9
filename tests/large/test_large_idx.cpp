// A dataset larger than 2 GB read for one whole epoch through the batch loader, then trained on
// for one epoch by `graft train`: every sample arrives once and intact while each process stays
// far smaller than the file (label `large`).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>

#include "data/batch_loader.hpp"
#include "idx_writer.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kImages = 2'750'000;  // 28 x 28 each: 2.16 GB, past 2^31 bytes
constexpr int64_t kPixels = 28 * 28;
constexpr int64_t kBatch = 1024;
constexpr uintmax_t kNeededBytes = uintmax_t{3} << 30;
constexpr int64_t kResidentLimitKiB = 400 * 1024;

// The peak resident set of this process (VmHWM), in KiB.
int64_t peak_resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

// Runs the graft executable with `args`; returns its exit code and peak resident set in KiB.
std::pair<int, long> run_and_measure(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string program = GRAFT_EXECUTABLE;
  argv.push_back(program.data());
  std::vector<std::string> copies = args;
  for (std::string& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = fork();
  if (child == 0) {
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(child, &status, 0, &usage);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, usage.ru_maxrss};
}

// Removes the generated files however the test ends.
struct RemoveOnExit {
  fs::path dir;
  ~RemoveOnExit() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

}  // namespace

TEST_CASE("one epoch over a 2 GB IDX file, read and trained, stays under 400 MB resident") {
  fs::path dir = graft::test::temp_dir("large_idx");
  RemoveOnExit cleanup{dir};
  if (fs::space(dir).available < kNeededBytes) {
    MESSAGE("SKIPPED: less than 3 GB free in " << dir.string());
    return;
  }
  graft::test::GeneratedIdx files = graft::test::write_generated_idx(dir, kImages);
  REQUIRE(fs::file_size(files.images) == 16 + kImages * kPixels);

  graft::runtime::BoundOptions options =
      graft::test::options(GRAFT_KIND_DATASET, "idx", "path = '" + dir.string() + "'");
  std::string cache = (dir / "cache").string();
  graft_dataset_args args{sizeof(graft_dataset_args), "train", nullptr, cache.c_str(), 1, 0, 1};
  graft::runtime::DatasetInstance dataset(
      graft::test::builtin_registry().get(GRAFT_KIND_DATASET, "idx"), options, args);
  REQUIRE(dataset.info().samples == kImages);

  graft::runtime::BatchLoader loader(dataset, kBatch, true, 11, false);
  CHECK(loader.batches_per_epoch() == (kImages + kBatch - 1) / kBatch);
  std::vector<uint8_t> seen(static_cast<size_t>(kImages), 0);
  int64_t rows = 0, batches = 0, bad_labels = 0, bad_indices = 0;
  uint64_t pixel_sum = 0;
  loader.start_epoch(0);
  while (const graft::runtime::Batch* batch = loader.next()) {
    const float* x = static_cast<const float*>(batch->x.data);
    const int32_t* y = static_cast<const int32_t*>(batch->y.data);
    for (int64_t row = 0; row < batch->rows; ++row) {
      const float* image = x + row * kPixels;
      int64_t index = 0;
      for (int64_t k = 0; k < kPixels; ++k) {
        const uint64_t value = static_cast<uint64_t>(image[k] * 255.0f + 0.5f);
        pixel_sum += value;
        if (k < 3) index |= static_cast<int64_t>(value) << (8 * k);
      }
      if (index >= kImages) {
        ++bad_indices;
        continue;
      }
      seen[static_cast<size_t>(index)] += 1;
      bad_labels += y[row] != graft::test::generated_label(index);
    }
    rows += batch->rows;
    ++batches;
  }
  CHECK(batches == loader.batches_per_epoch());
  CHECK(rows == kImages);
  CHECK(std::count(seen.begin(), seen.end(), uint8_t{1}) == kImages);
  CHECK(bad_indices == 0);
  CHECK(bad_labels == 0);
  CHECK(pixel_sum == files.pixel_sum);
  const int64_t peak = peak_resident_kib();
  MESSAGE("peak resident set: " << peak / 1024 << " MB for a "
                                << fs::file_size(files.images) / (1 << 20) << " MB file");
  CHECK(peak > 0);
  CHECK(peak < kResidentLimitKiB);

  // Training: the same file through `graft train`, one epoch of a linear classifier, in a
  // separate process whose peak resident set the kernel reports.
  std::vector<uint8_t> test_pixels(100 * kPixels, 7), test_labels(100, 3);
  graft::test::write_idx_images(dir / "t10k-images-idx3-ubyte", test_pixels, 100, 28, 28);
  graft::test::write_idx_labels(dir / "t10k-labels-idx1-ubyte", test_labels);
  std::ofstream(dir / "large.toml") << "[run]\nname = \"large\"\nepochs = 1\nprogress = \"none\"\n"
                                    << "output_dir = \"" << (dir / "runs").string() << "\"\n"
                                    << "[data]\nreader = \"idx\"\npath = \"" << dir.string()
                                    << "\"\nshape = \"flat\"\nbatch_size = 1024\n"
                                    << "[[model.layers]]\ntype = \"linear\"\nunits = 10\n"
                                    << "[loss]\ntype = \"cross_entropy\"\n"
                                    << "[optimizer]\ntype = \"sgd\"\nlr = 0.01\n"
                                    << "[checkpoint]\nenabled = false\n";
  auto [code, train_peak] = run_and_measure({"train", (dir / "large.toml").string()});
  REQUIRE(code == 0);
  std::ifstream metrics(dir / "runs" / "large" / "metrics.jsonl");
  std::string line, last_train;
  while (std::getline(metrics, line))
    if (line.find("\"event\":\"train\"") != std::string::npos) last_train = line;
  const int64_t steps = (kImages + kBatch - 1) / kBatch;
  CHECK(last_train.find("\"step\":" + std::to_string(steps) + ",") != std::string::npos);
  MESSAGE("graft train peak resident set: " << train_peak / 1024 << " MB");
  CHECK(train_peak > 0);
  CHECK(train_peak < kResidentLimitKiB);
}
