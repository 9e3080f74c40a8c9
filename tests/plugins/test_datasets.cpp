// The dataset readers (idx, csv, synthetic) against small files written here: values, shapes,
// splits, the gzip cache, and the messages for truncated, mislabelled and malformed files.
#include <cmath>
#include <fstream>
#include <memory>
#include <set>

#include "data/dataset_instance.hpp"
#include "graft/cpp/core.hpp"
#include "idx_writer.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::DatasetInstance;
using graft::runtime::UserError;
using graft::test::has;
using graft::test::Tensor;
using graft::test::user_error;

namespace {

// A dataset plugin created as the trainer would: config folder `dir`, cache `dir`/cache.
std::unique_ptr<DatasetInstance> make(const std::string& name, const std::string& toml,
                                      const fs::path& dir, const std::string& split = "train",
                                      uint64_t seed = 7) {
  graft::runtime::BoundOptions options = graft::test::options(GRAFT_KIND_DATASET, name, toml);
  std::string config = dir.string(), cache = (dir / "cache").string();
  graft_dataset_args args{
      sizeof(graft_dataset_args), split.c_str(), config.c_str(), cache.c_str(), seed, 0, 1};
  return std::make_unique<DatasetInstance>(
      graft::test::builtin_registry().get(GRAFT_KIND_DATASET, name), options, args);
}

// x: (n, input...), y: (n, target...) for the given samples.
struct Samples {
  Tensor x, y;
};
Samples read(DatasetInstance& dataset, std::vector<int64_t> indices) {
  const graft_dataset_info& info = dataset.info();
  const int64_t n = static_cast<int64_t>(indices.size());
  std::vector<int64_t> x_shape{n}, y_shape{n};
  for (int d = 0; d < info.input.ndim; ++d) x_shape.push_back(info.input.dims[d]);
  for (int d = 0; d < info.target.shape.ndim; ++d) y_shape.push_back(info.target.shape.dims[d]);
  Samples s{Tensor(x_shape), Tensor(y_shape, info.target.dtype)};
  dataset.read(indices.data(), n, *s.x.get(), *s.y.get());
  return s;
}

void write_text(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

// Five 2 x 3 images whose pixel k of image i is 40 i + k, labels 4 - i.
constexpr uint32_t kCount = 5, kRows = 2, kCols = 3;
std::vector<uint8_t> small_pixels() {
  std::vector<uint8_t> p;
  for (uint32_t i = 0; i < kCount; ++i)
    for (uint32_t k = 0; k < kRows * kCols; ++k) p.push_back(static_cast<uint8_t>(40 * i + k));
  return p;
}
void write_small_idx(const fs::path& dir, bool gzip, const std::string& prefix = "train") {
  fs::create_directories(dir);
  const std::string suffix = gzip ? ".gz" : "";
  const std::string images =
      prefix == "train" ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
  const std::string labels =
      prefix == "train" ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
  graft::test::write_idx_images(dir / (images + suffix), small_pixels(), kCount, kRows, kCols,
                                gzip);
  graft::test::write_idx_labels(dir / (labels + suffix), {4, 3, 2, 1, 0}, gzip);
}

}  // namespace

TEST_CASE("idx reads raw files by their un-gzipped names, relative to the config folder") {
  fs::path dir = graft::test::temp_dir("idx_raw");
  write_small_idx(dir / "data", false);
  auto dataset = make("idx", "path = 'data'", dir);
  const graft_dataset_info& info = dataset->info();
  CHECK(info.samples == kCount);
  CHECK(graft::Shape(info.input) == graft::Shape{1, kRows, kCols});
  CHECK(info.target.shape.ndim == 0);
  CHECK(info.target.classes == 10);
  Samples s = read(*dataset, {3, 0});
  for (uint32_t k = 0; k < kRows * kCols; ++k) {
    CHECK(s.x.f()[k] == doctest::Approx((120.0 + k) / 255.0));
    CHECK(s.x.f()[6 + k] == doctest::Approx(k / 255.0));
  }
  CHECK(s.y.i()[0] == 1);
  CHECK(s.y.i()[1] == 4);

  // map_limit_mb = 0: read with pread instead of through a mapping, to the same values.
  auto unmapped = make("idx", "path = 'data'\nmap_limit_mb = 0", dir);
  Samples u = read(*unmapped, {3, 0});
  CHECK(std::vector<float>(u.x.f(), u.x.f() + 12) == std::vector<float>(s.x.f(), s.x.f() + 12));
  CHECK(u.y.i()[0] == 1);
  CHECK(u.y.i()[1] == 4);

  auto flat = make("idx", "path = 'data'\nshape = 'flat'\nlimit = 2\nnormalize = 'standard'", dir);
  CHECK(flat->info().samples == 2);
  CHECK(graft::Shape(flat->info().input) == graft::Shape{kRows * kCols});
  Samples f = read(*flat, {1});
  CHECK(f.x.f()[1] == doctest::Approx((41.0 / 255.0 - 0.2860) / 0.3530).epsilon(1e-5));
  CHECK_THROWS_AS(read(*flat, {2}), UserError);  // past the limit
}

TEST_CASE("idx unpacks gzip files once into the cache and again when the source changes") {
  fs::path dir = graft::test::temp_dir("idx_gzip");
  write_small_idx(dir, true, "test");
  auto first = make("idx", "path = '" + dir.string() + "'", dir, "test");
  Samples s = read(*first, {4});
  CHECK(s.x.f()[5] == doctest::Approx(165.0 / 255.0));
  CHECK(s.y.i()[0] == 0);
  auto cached = [&] {
    std::set<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir / "cache")) files.insert(entry.path());
    return files;
  };
  std::set<fs::path> once = cached();
  REQUIRE(once.size() == 2);  // images and labels, no temporary left behind
  auto stamp = fs::last_write_time(*once.begin());
  make("idx", "path = '" + dir.string() + "'", dir, "test");
  CHECK(cached() == once);
  CHECK(fs::last_write_time(*once.begin()) == stamp);

  // A changed source (a different count, so a different size) is unpacked anew.
  std::vector<uint8_t> pixels(3 * kRows * kCols, 255);
  graft::test::write_idx_images(dir / "t10k-images-idx3-ubyte.gz", pixels, 3, kRows, kCols, true);
  graft::test::write_idx_labels(dir / "t10k-labels-idx1-ubyte.gz", {7, 7, 7}, true);
  auto changed = make("idx", "path = '" + dir.string() + "'", dir, "test");
  CHECK(changed->info().samples == 3);
  CHECK(read(*changed, {2}).x.f()[0] == doctest::Approx(1.0));
  CHECK(cached().size() == 4);
}

TEST_CASE("idx names the file and the fix for truncated, mislabelled and mismatched files") {
  fs::path dir = graft::test::temp_dir("idx_errors");
  write_small_idx(dir, false);
  fs::path images = dir / "train-images-idx3-ubyte";
  fs::resize_file(images, 16 + 20);
  std::string truncated = user_error([&] { make("idx", "path = '" + dir.string() + "'", dir); });
  CHECK(has(truncated, images.string()));
  CHECK(has(truncated, "truncated"));
  CHECK(has(truncated, "should have 46 bytes, but it has 36"));

  write_small_idx(dir, false);
  std::string magic = user_error([&] {
    make("idx", "path = '" + dir.string() + "'\ntrain_images = 'train-labels-idx1-ubyte'", dir);
  });
  CHECK(has(magic, "train-labels-idx1-ubyte starts with magic number 2049, not 2051"));

  graft::test::write_idx_labels(dir / "train-labels-idx1-ubyte", {1, 2, 3});
  std::string mismatch = user_error([&] { make("idx", "path = '" + dir.string() + "'", dir); });
  CHECK(has(mismatch, "holds 5 images but"));
  CHECK(has(mismatch, "holds 3 labels"));

  std::string missing =
      user_error([&] { make("idx", "path = '" + dir.string() + "'", dir, "test"); });
  CHECK(has(missing, "cannot find " + (dir / "t10k-images-idx3-ubyte.gz").string()));
  CHECK(has(missing, "test_images"));

  // A gzip file cut short is corrupt, and no half-unpacked file stays in the cache.
  write_small_idx(dir / "gz", true);
  fs::resize_file(dir / "gz" / "train-images-idx3-ubyte.gz", 30);
  std::string cut = user_error([&] { make("idx", "path = 'gz'", dir); });
  CHECK(has(cut, "train-images-idx3-ubyte.gz is not a valid gzip file"));
  CHECK(fs::is_empty(dir / "cache"));
}

// Blank 2 x 3 images, one per label, under the training-set names.
void write_labelled_idx(const fs::path& dir, const std::vector<uint8_t>& labels) {
  fs::create_directories(dir);
  const auto count = static_cast<uint32_t>(labels.size());
  graft::test::write_idx_images(dir / "train-images-idx3-ubyte",
                                std::vector<uint8_t>(count * kRows * kCols, 0), count, kRows,
                                kCols);
  graft::test::write_idx_labels(dir / "train-labels-idx1-ubyte", labels);
}

TEST_CASE("idx calls a lone far label damage, and checks labels against a declared class count") {
  fs::path dir = graft::test::temp_dir("idx_classes");
  const std::string path = "path = '" + dir.string() + "'";
  const std::string file = (dir / "train-labels-idx1-ubyte").string();

  // 0..9 and one 200 (twice, first at sample 7): a damaged byte, not 201 classes.
  write_labelled_idx(dir, {0, 1, 2, 3, 4, 5, 6, 200, 7, 8, 9, 200});
  std::string lone = user_error([&] { make("idx", path, dir); });
  CHECK(has(lone, file + ": sample 7 holds label 200"));
  CHECK(has(lone, "the other labels lie in 0..9 and label 10 never occurs"));
  CHECK(has(lone, "likely damaged"));
  CHECK(has(lone, "set `classes = 201` in [data]"));
  // Declared, 201 classes hold it; 10 do not, and the first sample past them is named.
  CHECK(make("idx", path + "\nclasses = 201", dir)->info().target.classes == 201);
  std::string declared = user_error([&] { make("idx", path + "\nclasses = 10", dir); });
  CHECK(has(declared, file + ": sample 7 holds label 200"));
  CHECK(has(declared, "declares classes = 10 (labels 0..9)"));
  CHECK(has(declared, "set classes = 201 or more"));

  // A gap above 9 is damage too, even when the highest label is not alone.
  write_labelled_idx(dir, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 11});
  std::string gap = user_error([&] { make("idx", path, dir); });
  CHECK(has(gap, file + ": sample 10 holds label 12"));
  CHECK(has(gap, "the other labels lie in 0..11 and label 10 never occurs"));

  // Contiguous labels past 9 are classes; fewer than ten still count ten unless declared.
  write_labelled_idx(dir, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(make("idx", path, dir)->info().target.classes == 13);
  write_labelled_idx(dir, {0, 1, 2, 3, 4, 4, 3, 2, 1, 0});
  CHECK(make("idx", path, dir)->info().target.classes == 10);
  CHECK(make("idx", path + "\nclasses = 5", dir)->info().target.classes == 5);
  std::string few = user_error([&] { make("idx", path + "\nclasses = 3", dir); });
  CHECK(has(few, file + ": sample 3 holds label 3"));
  CHECK(has(few, "`train_labels`"));
}

TEST_CASE("idx reads the first 100 samples of the real Fashion-MNIST") {
  const fs::path folder = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(folder / "train-images-idx3-ubyte.gz")) {
    MESSAGE("SKIPPED: Fashion-MNIST is not in " << folder.string());
    return;
  }
  fs::path dir = graft::test::temp_dir("idx_fashion");
  for (const char* split : {"train", "test"}) {
    auto dataset = make("idx", "path = '" + folder.string() + "'\nlimit = 100", dir, split);
    CHECK(dataset->info().samples == 100);
    CHECK(graft::Shape(dataset->info().input) == graft::Shape{1, 28, 28});
    CHECK(dataset->info().target.classes == 10);
    std::vector<int64_t> all(100);
    for (int64_t i = 0; i < 100; ++i) all[i] = i;
    Samples s = read(*dataset, all);
    std::set<int32_t> labels(s.y.i(), s.y.i() + 100);
    CHECK(*labels.begin() >= 0);
    CHECK(*labels.rbegin() <= 9);
    CHECK(labels.size() == 10);  // the first 100 hold every class
    float low = 1, high = 0;
    for (int64_t k = 0; k < s.x.numel(); ++k) {
      low = std::min(low, s.x.f()[k]);
      high = std::max(high, s.x.f()[k]);
    }
    CHECK(low == 0.0f);
    CHECK(high == 1.0f);
  }
}

TEST_CASE("csv reads integer, named and numeric labels from a file with a header") {
  fs::path dir = graft::test::temp_dir("csv_labels");
  write_text(dir / "ints.csv", "a, b ,label\n1.5,2,2\n-3,4e1,0\n\n5,6,1\n");
  auto ints = make("csv", "path = 'ints.csv'\ntest_fraction = 0.0", dir);
  CHECK(ints->info().samples == 3);
  CHECK(graft::Shape(ints->info().input) == graft::Shape{2});
  CHECK(ints->info().target.classes == 3);
  Samples s = read(*ints, {1, 2});
  CHECK(s.x.f()[0] == -3.0f);
  CHECK(s.x.f()[1] == 40.0f);
  CHECK(s.x.f()[2] == 5.0f);
  CHECK(s.y.i()[0] == 0);
  CHECK(s.y.i()[1] == 1);

  write_text(dir / "names.csv", "species;x\r\ncat;1\r\ndog;2\r\nbird;3\r\ncat;4\r\n");
  auto names = make("csv",
                    "path = 'names.csv'\nlabel_column = 'species'\ndelimiter = ';'\n"
                    "test_fraction = 0.0",
                    dir);
  CHECK(names->info().target.classes == 3);
  Samples n = read(*names, {0, 1, 2, 3});
  CHECK(std::vector<int32_t>(n.y.i(), n.y.i() + 4) == std::vector<int32_t>{1, 2, 0, 1});
  CHECK(n.x.f()[3] == 4.0f);

  write_text(dir / "values.csv",
             "\xEF\xBB\xBF"
             "0.5,1,2\n-1.25,3,4\n");  // with a byte-order mark
  auto values = make("csv",
                     "path = 'values.csv'\nhas_header = false\nlabel_index = 0\n"
                     "task = 'regression'\ntest_fraction = 0.0",
                     dir);
  CHECK(values->info().samples == 2);
  CHECK(values->info().target.dtype.code == kDLFloat);
  CHECK(graft::Shape(values->info().target.shape) == graft::Shape{1});
  Samples v = read(*values, {1, 0});
  CHECK(v.y.f()[0] == -1.25f);
  CHECK(v.y.f()[1] == 0.5f);
  CHECK(v.x.f()[0] == 3.0f);
  CHECK(v.x.f()[3] == 2.0f);
}

TEST_CASE("csv splits rows by a seeded hash: disjoint, complete and stable") {
  fs::path dir = graft::test::temp_dir("csv_split");
  std::string text = "id,label\n";
  for (int row = 0; row < 200; ++row)
    text += std::to_string(row) + "," + std::to_string(row % 2) + "\n";
  write_text(dir / "rows.csv", text);
  auto ids = [&](const std::string& split, int seed) {
    auto dataset =
        make("csv", "path = 'rows.csv'\ntest_fraction = 0.3\nsplit_seed = " + std::to_string(seed),
             dir, split);
    std::vector<int64_t> all(static_cast<size_t>(dataset->info().samples));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    Samples s = read(*dataset, all);
    std::set<int> seen;
    for (size_t i = 0; i < all.size(); ++i) {
      seen.insert(static_cast<int>(s.x.f()[i]));
      CHECK(s.y.i()[i] == static_cast<int>(s.x.f()[i]) % 2);
    }
    return seen;
  };
  std::set<int> train = ids("train", 0), test = ids("test", 0);
  CHECK(train.size() + test.size() == 200);
  std::set<int> both(train.begin(), train.end());
  both.insert(test.begin(), test.end());
  CHECK(both.size() == 200);
  CHECK(test.size() > 30);
  CHECK(test.size() < 90);
  CHECK(ids("test", 0) == test);
  CHECK(ids("test", 1) != test);
}

TEST_CASE("csv names file:line for bad rows and lists the columns for a missing label") {
  fs::path dir = graft::test::temp_dir("csv_errors");
  write_text(dir / "short.csv", "a,b,label\n1,2,0\n3,4,1\n5,1\n");
  std::string fields = user_error([&] { make("csv", "path = 'short.csv'", dir); });
  CHECK(has(fields, (dir / "short.csv").string() + ":4 has 2 fields, but the header has 3"));

  write_text(dir / "word.csv", "a,b,label\n1,2,0\n3,x,1\n");
  std::string word = user_error([&] { make("csv", "path = 'word.csv'", dir); });
  CHECK(has(word, (dir / "word.csv").string() + ":3: column 'b' holds 'x', not a number"));

  std::string column =
      user_error([&] { make("csv", "path = 'word.csv'\nlabel_column = 'lable'", dir); });
  CHECK(has(column, "no column 'lable' (did you mean 'label'?)"));
  CHECK(has(column, "its columns are a, b, label"));

  write_text(dir / "fractions.csv", "a,label\n1,0.5\n");
  CHECK(has(user_error([&] { make("csv", "path = 'fractions.csv'", dir); }),
            "set task = \"regression\""));
  CHECK(has(user_error([&] { make("csv", "path = 'absent.csv'", dir); }),
            "cannot open " + (dir / "absent.csv").string()));
}

TEST_CASE("synthetic samples depend on their index alone, and train differs from test") {
  fs::path dir = graft::test::temp_dir("synthetic");
  auto blobs = make("synthetic", "features = 3\nclasses = 4\nsamples = 50", dir);
  CHECK(blobs->info().samples == 50);
  CHECK(graft::Shape(blobs->info().input) == graft::Shape{3});
  CHECK(blobs->info().target.classes == 4);
  Samples together = read(*blobs, {0, 1, 2, 3, 4, 5, 6, 7});
  Samples reversed = read(*blobs, {7, 6, 5, 4, 3, 2, 1, 0});
  std::set<int32_t> classes;
  for (int i = 0; i < 8; ++i) {
    Samples alone = read(*blobs, {i});
    for (int f = 0; f < 3; ++f) {
      CHECK(together.x.f()[i * 3 + f] == alone.x.f()[f]);
      CHECK(reversed.x.f()[(7 - i) * 3 + f] == alone.x.f()[f]);
    }
    CHECK(together.y.i()[i] == alone.y.i()[0]);
    CHECK(together.y.i()[i] >= 0);
    CHECK(together.y.i()[i] < 4);
    classes.insert(together.y.i()[i]);
  }
  CHECK(classes.size() > 1);
  auto again = make("synthetic", "features = 3\nclasses = 4\nsamples = 50", dir);
  CHECK(read(*again, {5}).x.f()[1] == together.x.f()[5 * 3 + 1]);
  auto test = make("synthetic", "features = 3\nclasses = 4", dir, "test");
  CHECK(test->info().samples == 200);
  CHECK(read(*test, {5}).x.f()[1] != together.x.f()[5 * 3 + 1]);
  auto other_seed = make("synthetic", "features = 3\nclasses = 4", dir, "train", 8);
  CHECK(read(*other_seed, {5}).x.f()[1] != together.x.f()[5 * 3 + 1]);

  auto sine = make("synthetic", "kind = 'sine'\nsamples = 64", dir);
  CHECK(graft::Shape(sine->info().input) == graft::Shape{1});
  CHECK(graft::Shape(sine->info().target.shape) == graft::Shape{1});
  CHECK(sine->info().target.dtype.code == kDLFloat);
  std::vector<int64_t> all(64);
  for (int64_t i = 0; i < 64; ++i) all[i] = i;
  Samples s = read(*sine, all);
  for (int i = 0; i < 64; ++i) {
    CHECK(std::abs(s.x.f()[i]) <= 3.14159275f);
    CHECK(s.y.f()[i] == doctest::Approx(std::sin(s.x.f()[i])));
  }
  auto noisy = make("synthetic", "kind = 'sine'\nnoise = 0.1", dir);
  Samples n = read(*noisy, {3});
  CHECK(n.y.f()[0] != std::sin(n.x.f()[0]));
  CHECK(std::abs(n.y.f()[0] - std::sin(n.x.f()[0])) < 1.0f);
}
