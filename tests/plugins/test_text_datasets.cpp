// The sequence readers (text, tokens) against small files written here: windows and their
// next-token targets, the split by position, stride, folders, the character vocabulary, the
// codec, and the messages for invalid UTF-8, short splits and damaged token files.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "sequence_datasets.hpp"

namespace fs = std::filesystem;
using graft::test::Codec;
using graft::test::has;
using graft::test::make_sequence;
using graft::test::read_windows;
using graft::test::user_error;

namespace {

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::binary) << text;
}

std::vector<int32_t> ids_of(const std::string& bytes) {
  return std::vector<int32_t>(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("text in byte mode: windows of bytes, targets one byte later, stride") {
  const fs::path dir = graft::test::temp_dir("text_bytes");
  write_text(dir / "hello.txt", "hello world\n");
  auto dataset = make_sequence("text",
                               "path = 'hello.txt'\nmode = 'byte'\ncontext = 4\n"
                               "test_fraction = 0.0",
                               dir);
  const graft_dataset_info& info = dataset->info();
  CHECK(info.samples == 2);  // (12 - 1 - 4) / 4 + 1
  CHECK(info.input.ndim == 1);
  CHECK(info.input.dims[0] == 4);
  CHECK(info.target.shape.ndim == 1);
  CHECK(info.target.shape.dims[0] == 4);
  CHECK(info.target.classes == 256);
  auto w = read_windows(*dataset, {1, 0});
  CHECK(w.x[0] == ids_of("o wo"));
  CHECK(w.y[0] == ids_of(" wor"));
  CHECK(w.x[1] == ids_of("hell"));
  CHECK(w.y[1] == ids_of("ello"));

  auto strided = make_sequence("text",
                               "path = 'hello.txt'\nmode = 'byte'\ncontext = 4\n"
                               "stride = 3\ntest_fraction = 0.0",
                               dir);
  CHECK(strided->info().samples == 3);  // starts 0, 3, 6: the last target is byte 10
  CHECK(read_windows(*strided, {2}).x[0] == ids_of("worl"));
  CHECK(read_windows(*strided, {2}).y[0] == ids_of("orld"));

  Codec codec("text", "path = 'hello.txt'\nmode = 'byte'\ncontext = 4", dir);
  REQUIRE(codec.has_slots());
  const std::string binary("\xff\x00\x80z", 4);
  CHECK(codec.encode(binary) == std::vector<int32_t>{255, 0, 128, 'z'});
  CHECK(codec.decode(codec.encode(binary)) == binary);
  CHECK(has(user_error([&] { codec.decode({65, 256}); }), "id 256"));
}

TEST_CASE("text splits by position: training windows never reach the test part") {
  const fs::path dir = graft::test::temp_dir("text_split");
  std::string text;
  for (int i = 0; i < 100; ++i) text += static_cast<char>('!' + i % 90);
  write_text(dir / "t.txt", text);
  const std::string options =
      "path = 't.txt'\nmode = 'byte'\ncontext = 9\nstride = 1\n"
      "test_fraction = 0.2";
  auto train = make_sequence("text", options, dir);
  auto test = make_sequence("text", options, dir, "test");
  CHECK(train->info().samples == 71);  // 80 bytes: starts 0..70, the last target byte 79
  CHECK(test->info().samples == 11);   // 20 bytes from 80
  auto last = read_windows(*train, {70});
  CHECK(last.y[0].back() == text[79]);
  auto first = read_windows(*test, {0, 10});
  CHECK(first.x[0] == ids_of(text.substr(80, 9)));
  CHECK(first.y[1] == ids_of(text.substr(91, 9)));
}

TEST_CASE("text reads a folder's regular files in name order, leaving out excluded ones") {
  const fs::path dir = graft::test::temp_dir("text_folder");
  fs::create_directories(dir / "corpus" / "sub");
  write_text(dir / "corpus" / "b", "BBB");
  write_text(dir / "corpus" / "a", "AAA");
  write_text(dir / "corpus" / "a.dat", "###");
  write_text(dir / "corpus" / "sub" / "c", "CCC");
  fs::create_symlink("a", dir / "corpus" / "a.u8");  // as fortunes' links: a file twice
  auto dataset = make_sequence("text",
                               "path = 'corpus'\nmode = 'byte'\ncontext = 5\nexclude = ['*.dat']\n"
                               "test_fraction = 0.0",
                               dir);
  CHECK(dataset->info().samples == 1);
  auto w = read_windows(*dataset, {0});
  CHECK(w.x[0] == ids_of("AAABB"));
  CHECK(w.y[0] == ids_of("AABBB"));

  fs::create_directories(dir / "empty");
  std::string empty =
      user_error([&] { make_sequence("text", "path = 'empty'\ncontext = 2", dir); });
  CHECK(has(empty, (dir / "empty").string()));
  CHECK(has(empty, "holds no text file"));
  std::string none = user_error(
      [&] { make_sequence("text", "path = 'corpus'\ncontext = 2\nexclude = ['*']", dir); });
  CHECK(has(none, "that `exclude` leaves"));
}

TEST_CASE("text in char mode: the training split's characters, sorted, with 0 for unknown") {
  const fs::path dir = graft::test::temp_dir("text_chars");
  // Training: the first 18 characters; test: the last 2 ("zz"), which training never saw.
  write_text(dir / "t.txt", "cabcabcabcabcabcabzz");
  const std::string options = "path = 't.txt'\ncontext = 3\ntest_fraction = 0.1";
  auto train = make_sequence("text", options, dir);
  CHECK(train->info().target.classes == 4);  // unknown, a, b, c
  auto w = read_windows(*train, {0});
  CHECK(w.x[0] == std::vector<int32_t>{3, 1, 2});
  CHECK(w.y[0] == std::vector<int32_t>{1, 2, 3});

  const std::string wide = "path = 't.txt'\ncontext = 3\ntest_fraction = 0.2\nstride = 1";
  auto test = make_sequence("text", wide, dir, "test");
  CHECK(test->info().target.classes == 4);  // the same vocabulary in both splits
  auto t = read_windows(*test, {0});        // "abzz": z is unknown
  CHECK(t.x[0] == std::vector<int32_t>{1, 2, 0});
  CHECK(t.y[0] == std::vector<int32_t>{2, 0, 0});

  Codec codec("text", options, dir);
  CHECK(codec.encode("abcz") == std::vector<int32_t>{1, 2, 3, 0});
  CHECK(codec.decode({3, 0, 1}) ==
        "c\xEF\xBF\xBD"
        "a");  // 0 is U+FFFD
  CHECK(codec.decode(codec.encode("cab")) == "cab");
  CHECK(has(user_error([&] { codec.decode({4}); }), "vocabulary of 4"));
  CHECK(has(user_error([&] { codec.encode("a\xC3"); }), "not valid UTF-8 at byte 1"));
}

TEST_CASE("text in char mode reads multi-byte characters anywhere in a long file") {
  const fs::path dir = graft::test::temp_dir("text_unicode");
  // 3 x 7000 characters, past the index's 4096-character checkpoints, of 1 to 4 bytes.
  const std::vector<std::string> pieces{"a", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", " "};
  const std::map<std::string, int32_t> id{
      {" ", 1}, {"a", 2}, {"\xC3\xA9", 3}, {"\xE4\xB8\xAD", 4}, {"\xF0\x9F\x98\x80", 5}};
  std::string text;
  std::vector<int32_t> expected;
  for (int i = 0; i < 21000; ++i) {
    const std::string& piece = pieces[(i * 7 + i / 13) % pieces.size()];
    text += piece;
    expected.push_back(id.at(piece));
  }
  write_text(dir / "u.txt", text);
  const std::string options = "path = 'u.txt'\ncontext = 300\nstride = 997\ntest_fraction = 0.0";
  for (int pass = 0; pass < 2; ++pass) {  // the second create reads the cached index
    auto dataset = make_sequence("text", options, dir);
    CHECK(dataset->info().target.classes == 6);
    const int64_t samples = dataset->info().samples;
    CHECK(samples == (21000 - 1 - 300) / 997 + 1);
    for (int64_t s = 0; s < samples; ++s) {
      auto w = read_windows(*dataset, {s});
      CHECK(w.x[0] ==
            std::vector<int32_t>(expected.begin() + s * 997, expected.begin() + s * 997 + 300));
      CHECK(w.y[0] ==
            std::vector<int32_t>(expected.begin() + s * 997 + 1, expected.begin() + s * 997 + 301));
    }
  }
  CHECK(std::distance(fs::directory_iterator(dir / "cache"), fs::directory_iterator{}) == 1);
  Codec codec("text", options, dir);
  const std::string sample = "a\xC3\xA9 \xE4\xB8\xAD\xF0\x9F\x98\x80";
  CHECK(codec.encode(sample) == std::vector<int32_t>{2, 3, 1, 4, 5});
  CHECK(codec.decode(codec.encode(sample)) == sample);
}

TEST_CASE("text names the file, the byte and the fix for invalid UTF-8, and the short split") {
  const fs::path dir = graft::test::temp_dir("text_errors");
  write_text(dir / "binary.dat", std::string("abc\xff", 4));
  std::string invalid =
      user_error([&] { make_sequence("text", "path = 'binary.dat'\ncontext = 1", dir); });
  CHECK(has(invalid, (dir / "binary.dat").string()));
  CHECK(has(invalid, "not valid UTF-8 at byte 3"));
  CHECK(has(invalid, "mode = \"byte\""));
  CHECK(has(invalid, "exclude"));
  write_text(dir / "cut.txt", "ab\xE4\xB8");
  std::string cut =
      user_error([&] { make_sequence("text", "path = 'cut.txt'\ncontext = 1", dir); });
  CHECK(has(cut, "at byte 2"));
  CHECK(has(cut, "ends inside a character"));
  // The same file as bytes is fine.
  CHECK(make_sequence("text", "path = 'binary.dat'\ncontext = 1\nmode = 'byte'", dir)
            ->info()
            .samples == 3);

  write_text(dir / "short.txt", "0123456789");
  std::string too_long =
      user_error([&] { make_sequence("text", "path = 'short.txt'\ncontext = 50", dir); });
  CHECK(has(too_long, "`context` = 50"));
  CHECK(has(too_long, "10 characters"));
  CHECK(has(too_long, "lower `context`"));
  std::string missing =
      user_error([&] { make_sequence("text", "path = 'nowhere.txt'\ncontext = 5", dir); });
  CHECK(has(missing, (dir / "nowhere.txt").string()));
  CHECK(has(missing, "does not exist"));
}

namespace {
std::vector<uint16_t> counting_tokens(int n, int first = 0) {
  std::vector<uint16_t> ids;
  for (int i = first; i < first + n; ++i) ids.push_back(static_cast<uint16_t>((i * 37) % 50257));
  return ids;
}
std::vector<int32_t> slice(const std::vector<uint16_t>& ids, size_t from, size_t n) {
  return std::vector<int32_t>(ids.begin() + from, ids.begin() + from + n);
}
}  // namespace

TEST_CASE("tokens reads llm.c files back exactly: one file, shards, the split, test_path") {
  const fs::path dir = graft::test::temp_dir("tokens_read");
  const std::vector<uint16_t> ids = counting_tokens(1000);
  graft::test::write_llmc_tokens(dir / "train.bin", ids);
  auto train = make_sequence("tokens", "path = 'train.bin'\ncontext = 16", dir);
  const graft_dataset_info& info = train->info();
  CHECK(info.samples == (900 - 1 - 16) / 16 + 1);
  CHECK(info.input.dims[0] == 16);
  CHECK(info.target.shape.dims[0] == 16);
  CHECK(info.target.classes == 50257);
  auto w = read_windows(*train, {54, 3});
  CHECK(w.x[0] == slice(ids, 54 * 16, 16));
  CHECK(w.y[0] == slice(ids, 54 * 16 + 1, 16));
  CHECK(w.x[1] == slice(ids, 48, 16));
  auto test = make_sequence("tokens", "path = 'train.bin'\ncontext = 16\nstride = 1", dir, "test");
  CHECK(test->info().samples == 100 - 16);
  CHECK(read_windows(*test, {0}).x[0] == slice(ids, 900, 16));

  // Shards in name order, as one stream: a window across the boundary.
  fs::create_directories(dir / "shards");
  graft::test::write_llmc_tokens(dir / "shards" / "b_000001.bin", counting_tokens(50, 50));
  graft::test::write_llmc_tokens(dir / "shards" / "a_000000.bin", counting_tokens(50));
  write_text(dir / "shards" / "README", "not a shard");
  auto shards = make_sequence("tokens", "path = 'shards'\ncontext = 10\ntest_fraction = 0", dir);
  CHECK(shards->info().samples == (100 - 1 - 10) / 10 + 1);
  CHECK(read_windows(*shards, {4}).x[0] == slice(counting_tokens(100), 40, 10));
  CHECK(read_windows(*shards, {4}).y[0] == slice(counting_tokens(100), 41, 10));

  // test_path: training takes all of `path`, test all of `test_path`.
  graft::test::write_llmc_tokens(dir / "val.bin", counting_tokens(40, 5000));
  const std::string both = "path = 'train.bin'\ntest_path = 'val.bin'\ncontext = 8";
  CHECK(make_sequence("tokens", both, dir)->info().samples == (1000 - 1 - 8) / 8 + 1);
  auto val = make_sequence("tokens", both, dir, "test");
  CHECK(val->info().samples == (40 - 1 - 8) / 8 + 1);
  CHECK(read_windows(*val, {1}).x[0] == slice(counting_tokens(40, 5000), 8, 8));

  Codec codec("tokens", "path = 'train.bin'\ncontext = 16", dir);
  CHECK_FALSE(codec.has_slots());  // no tokenizer: generate shows ids
}

TEST_CASE("tokens names the file and the fix for a damaged file or an id past the vocabulary") {
  const fs::path dir = graft::test::temp_dir("tokens_errors");
  auto error = [&](const std::string& file, const std::string& extra = "", int context = 4) {
    return user_error([&] {
      auto d = make_sequence(
          "tokens", "path = '" + file + "'\ncontext = " + std::to_string(context) + "\n" + extra,
          dir);
      read_windows(*d, {0, 1});
    });
  };
  // nanoGPT's prepare.py: the uint16 array alone.
  std::ofstream(dir / "raw.bin", std::ios::binary).write("\x01\x00\x02\x00\x03\x00\x04\x00", 8);
  std::string raw = error("raw.bin");
  CHECK(has(raw, (dir / "raw.bin").string()));
  CHECK(has(raw, "magic number 131073, not 20240520"));
  CHECK(has(raw, "prepare.py"));
  CHECK(has(raw, "h[:3] = 20240520, 1, len(t)"));

  graft::test::write_llmc_tokens(dir / "v2.bin", counting_tokens(100), 20240520, 2);
  std::string version = error("v2.bin");
  CHECK(has(version, (dir / "v2.bin").string()));
  CHECK(has(version, "version 2"));

  graft::test::write_llmc_tokens(dir / "cut.bin", counting_tokens(100), 20240520, 1, 150);
  std::string cut = error("cut.bin");
  CHECK(has(cut, (dir / "cut.bin").string()));
  CHECK(has(cut, "truncated"));
  CHECK(has(cut, "should have 1324 bytes, but it has 1224"));

  std::vector<uint16_t> ids(40, 7);
  ids[6] = 150;
  graft::test::write_llmc_tokens(dir / "big.bin", ids);
  auto d = make_sequence("tokens", "path = 'big.bin'\ncontext = 4\nvocabulary = 100", dir);
  CHECK(read_windows(*d, {0}).x[0] == std::vector<int32_t>{7, 7, 7, 7});  // before the id
  std::string big = error("big.bin", "vocabulary = 100");
  CHECK(has(big, (dir / "big.bin").string()));
  CHECK(has(big, "token id 150 at token 6"));
  CHECK(has(big, "raise `vocabulary`"));

  std::string too_long = error("big.bin", "", 64);
  CHECK(has(too_long, "`context` = 64"));
  CHECK(has(too_long, "40 tokens"));
  CHECK(has(error("missing.bin"), "does not exist"));
}
