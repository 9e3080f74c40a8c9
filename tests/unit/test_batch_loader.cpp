// The batch loader over real dataset plugins: each sample once per epoch, seeded shuffles,
// resuming mid-epoch, the short last batch, and a failed read reaching the caller.
#include <algorithm>
#include <fstream>
#include <memory>
#include <set>

#include "data/batch_loader.hpp"
#include "idx_writer.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::Batch;
using graft::runtime::BatchLoader;
using graft::runtime::DatasetInstance;

namespace {

constexpr int64_t kSamples = 103;

std::unique_ptr<DatasetInstance> make(const std::string& name, const std::string& toml,
                                      const fs::path& dir) {
  graft::runtime::BoundOptions options = graft::test::options(GRAFT_KIND_DATASET, name, toml);
  std::string config = dir.string(), cache = (dir / "cache").string();
  graft_dataset_args args{
      sizeof(graft_dataset_args), "train", config.c_str(), cache.c_str(), 1, 0, 1};
  return std::make_unique<DatasetInstance>(
      graft::test::builtin_registry().get(GRAFT_KIND_DATASET, name), options, args);
}

// kSamples generated 2 x 2 images whose first three pixels spell their index.
std::unique_ptr<DatasetInstance> generated(const std::string& test) {
  fs::path dir = graft::test::temp_dir(test);
  graft::test::write_generated_idx(dir, kSamples, 2, 2);
  return make("idx", "path = '.'", dir);
}

int64_t sample_of(const Batch& batch, int64_t row) {
  const float* x = static_cast<const float*>(batch.x.data) + row * 4;
  int64_t index = 0;
  for (int k = 0; k < 3; ++k) index |= std::lround(x[k] * 255.0f) << (8 * k);
  return index;
}

// The samples of each batch of one epoch, checking shapes and labels on the way.
std::vector<std::vector<int64_t>> epoch(BatchLoader& loader, int64_t number, int64_t skip = 0) {
  loader.start_epoch(number, skip);
  std::vector<std::vector<int64_t>> batches;
  while (const Batch* batch = loader.next()) {
    CHECK(batch->index == skip + static_cast<int64_t>(batches.size()));
    CHECK(batch->x.ndim == 4);
    CHECK(batch->x.shape[0] == batch->rows);
    CHECK(batch->y.shape[0] == batch->rows);
    std::vector<int64_t> samples;
    for (int64_t row = 0; row < batch->rows; ++row) {
      samples.push_back(sample_of(*batch, row));
      CHECK(static_cast<const int32_t*>(batch->y.data)[row] ==
            graft::test::generated_label(samples.back()));
    }
    batches.push_back(samples);
  }
  return batches;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

}  // namespace

TEST_CASE("every sample comes exactly once per epoch, in the order order() reports") {
  auto dataset = generated("loader_once");
  BatchLoader loader(*dataset, 10, true, 42, false);
  CHECK(loader.batches_per_epoch() == 11);
  for (int64_t e = 0; e < 3; ++e) {
    auto batches = epoch(loader, e);
    REQUIRE(batches.size() == 11);
    CHECK(batches.back().size() == 3);  // the short last batch
    std::vector<int64_t> all = flatten(batches);
    CHECK(all == loader.order());
    CHECK(std::set<int64_t>(all.begin(), all.end()).size() == kSamples);
    CHECK(*std::min_element(all.begin(), all.end()) == 0);
    CHECK(*std::max_element(all.begin(), all.end()) == kSamples - 1);
  }
}

TEST_CASE("the shuffle differs between epochs and repeats for the same seed") {
  auto dataset = generated("loader_shuffle");
  BatchLoader first(*dataset, 16, true, 5, false);
  std::vector<int64_t> epoch0 = flatten(epoch(first, 0)), epoch1 = flatten(epoch(first, 1));
  CHECK(epoch0 != epoch1);
  std::vector<int64_t> identity(kSamples);
  for (int64_t i = 0; i < kSamples; ++i) identity[i] = i;
  CHECK(epoch0 != identity);
  {
    BatchLoader same(*dataset, 16, true, 5, false);
    CHECK(flatten(epoch(same, 1)) == epoch1);
    CHECK(flatten(epoch(same, 0)) == epoch0);
  }
  {
    BatchLoader other_seed(*dataset, 16, true, 6, false);
    CHECK(flatten(epoch(other_seed, 0)) != epoch0);
  }
  BatchLoader ordered(*dataset, 16, false, 5, false);
  CHECK(flatten(epoch(ordered, 3)) == identity);
}

TEST_CASE("skip_batches resumes an epoch where it stopped; drop_last leaves the short batch") {
  auto dataset = generated("loader_resume");
  BatchLoader loader(*dataset, 10, true, 9, false);
  auto full = epoch(loader, 2);
  auto resumed = epoch(loader, 2, 4);
  REQUIRE(resumed.size() == full.size() - 4);
  for (size_t b = 0; b < resumed.size(); ++b) CHECK(resumed[b] == full[b + 4]);
  CHECK(epoch(loader, 2, 11).empty());
  CHECK_THROWS_AS(loader.start_epoch(2, 12), graft::runtime::UserError);

  BatchLoader dropping(*dataset, 10, true, 9, true);
  CHECK(dropping.batches_per_epoch() == 10);
  auto batches = epoch(dropping, 2);
  REQUIRE(batches.size() == 10);
  for (size_t b = 0; b < batches.size(); ++b) CHECK(batches[b] == full[b]);
}

TEST_CASE("a row selection reads only its rows of each batch, the short last one too") {
  auto dataset = generated("loader_rows");
  BatchLoader whole(*dataset, 10, true, 4, false);
  const auto full = epoch(whole, 1);
  // The middle third, as rank 1 of 3 of data_parallel would read it.
  auto middle = [](int64_t rows) { return std::pair<int64_t, int64_t>{rows / 3, 2 * rows / 3}; };
  BatchLoader part(*dataset, 10, true, 4, false, middle);
  part.start_epoch(1);
  size_t b = 0;
  while (const Batch* batch = part.next()) {
    REQUIRE(b < full.size());
    const int64_t rows = int64_t(full[b].size());
    CHECK(batch->rows == rows);  // the whole batch's, for ctx.global_batch
    CHECK(batch->row_offset == rows / 3);
    REQUIRE(batch->x.shape[0] == 2 * rows / 3 - rows / 3);
    CHECK(batch->y.shape[0] == batch->x.shape[0]);
    for (int64_t row = 0; row < batch->x.shape[0]; ++row)
      CHECK(sample_of(*batch, row) == full[b][size_t(batch->row_offset + row)]);
    ++b;
  }
  CHECK(b == full.size());
  // A rank with no rows of a batch gets an empty one, and a selection outside the batch is
  // the strategy's error.
  BatchLoader none(*dataset, 10, true, 4, false, [](int64_t rows) {
    return std::pair<int64_t, int64_t>{rows, rows};
  });
  none.start_epoch(0);
  const Batch* first = none.next();
  REQUIRE(first);
  CHECK(first->x.shape[0] == 0);
  CHECK(first->rows == 10);
  CHECK_THROWS_AS(BatchLoader(*dataset, 10, true, 4, false,
                              [](int64_t rows) {
                                return std::pair<int64_t, int64_t>{0, rows + 1};
                              }),
                  graft::runtime::Failure);
}

TEST_CASE("two buffer sets serve every batch; a new epoch may start mid-epoch") {
  auto dataset = generated("loader_buffers");
  BatchLoader loader(*dataset, 7, true, 3, false);
  std::set<const void*> buffers;
  loader.start_epoch(0);
  for (int i = 0; i < 5; ++i) buffers.insert(loader.next()->x.data);
  loader.start_epoch(1);  // drops the prefetched batch of epoch 0
  while (const Batch* batch = loader.next()) buffers.insert(batch->x.data);
  CHECK(buffers.size() == 2);
  CHECK(flatten(epoch(loader, 1)) == loader.order());
}

TEST_CASE("a failed read is rethrown by next() on the caller's thread") {
  fs::path dir = graft::test::temp_dir("loader_failure");
  std::string rows = "a,label\n";
  for (int i = 0; i < 40; ++i) rows += std::to_string(i) + "," + std::to_string(i % 3) + "\n";
  std::ofstream(dir / "rows.csv") << rows;
  auto dataset = make("csv", "path = 'rows.csv'\ntest_fraction = 0.0", dir);
  // Rows 16 on now start with 'x' (same lengths, so the indexed offsets still hold): batches
  // 0 and 1 read, batch 2 fails on the worker thread.
  std::string broken = "a,label\n";
  for (int i = 0; i < 40; ++i) {
    std::string row = std::to_string(i) + "," + std::to_string(i % 3) + "\n";
    if (i >= 16) row[0] = 'x';
    broken += row;
  }
  std::ofstream(dir / "rows.csv") << broken;
  BatchLoader loader(*dataset, 8, false, 0, false);
  loader.start_epoch(0);
  CHECK(loader.next() != nullptr);
  CHECK(loader.next() != nullptr);
  std::string message;
  try {
    loader.next();
  } catch (const graft::runtime::UserError& e) {
    message = e.what();
  }
  CHECK(message.find("dataset 'csv' (graft_csv.so)") != std::string::npos);
  CHECK(message.find("changed after it was indexed") != std::string::npos);
  CHECK(loader.next() == nullptr);  // the epoch ended with the failure
}

TEST_CASE("bad use of the loader is a clear error") {
  auto dataset = generated("loader_misuse");
  CHECK_THROWS_AS(BatchLoader(*dataset, 0, true, 1, false), graft::runtime::UserError);
  BatchLoader loader(*dataset, 4, true, 1, false);
  CHECK_THROWS_AS(loader.next(), graft::runtime::Failure);
}
