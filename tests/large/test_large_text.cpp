// A text corpus and a token corpus of more than 4 GB each, read at random through the text and
// tokens readers: every window arrives intact while the process stays under 500 MB resident,
// and the text's character index, once cached, makes the next create instant (label `large`).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>

#include "sequence_datasets.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kBlocks = 16;                      // distinct shuffled paragraphs
constexpr int64_t kTextBytes = 4'500'000'000;    // past 2^32, so offsets need 64 bits
constexpr int64_t kShardTokens = 1'100'000'000;  // two shards: 2.2 G tokens, 4.4 GB
constexpr int64_t kContext = 256, kBatch = 64, kBatches = 300;
constexpr int64_t kResidentLimitKiB = 500 * 1024;

int64_t peak_resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct RemoveOnExit {
  fs::path dir;
  ~RemoveOnExit() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

// Blocks that are permutations of one multiset of words, so each has the same bytes and the
// same characters, and character p of the corpus is found by arithmetic.
struct TextBlocks {
  std::vector<std::string> bytes;
  std::vector<std::u32string> chars;
};
TextBlocks make_blocks() {
  const std::vector<std::string> words{
      "the",   "quick",  "brown", "fox",       "jumps",      "over",         "lazy",      "dog",
      "graft", "trains", "text",  "caf\u00e9", "na\u00efve", "\u4e2d\u6587", "\U0001F600"};
  const std::vector<std::u32string> words32{
      U"the",  U"quick",     U"brown",      U"fox",          U"jumps",
      U"over", U"lazy",      U"dog",        U"graft",        U"trains",
      U"text", U"caf\u00e9", U"na\u00efve", U"\u4e2d\u6587", U"\U0001F600"};
  std::vector<size_t> order;
  for (int r = 0; r < 2000; ++r)
    for (size_t w = 0; w < words.size(); ++w) order.push_back(w);
  TextBlocks blocks;
  for (int b = 0; b < kBlocks; ++b) {
    std::shuffle(order.begin(), order.end(), std::mt19937(b));
    std::string text;
    std::u32string chars;
    for (size_t i = 0; i < order.size(); ++i) {
      text += words[order[i]] + (i % 13 == 12 ? "\n" : " ");
      chars += words32[order[i]] + (i % 13 == 12 ? U"\n" : U" ");
    }
    blocks.bytes.push_back(std::move(text));
    blocks.chars.push_back(std::move(chars));
  }
  return blocks;
}
int block_at(int64_t written) { return static_cast<int>((written * 7 + written / 5) % kBlocks); }

uint16_t token_at(int64_t t) { return static_cast<uint16_t>((t * 7919 + (t >> 20)) % 50257); }

void write_shard(const fs::path& file, int64_t first, int64_t count) {
  std::vector<uint16_t> chunk(size_t{1} << 22);
  std::vector<uint16_t> none;
  graft::test::write_llmc_tokens(file, none, 20240520, 1, static_cast<int32_t>(count));
  std::FILE* out = std::fopen(file.c_str(), "ab");
  REQUIRE(out);
  for (int64_t done = 0; done < count;) {
    const int64_t n = std::min<int64_t>(count - done, static_cast<int64_t>(chunk.size()));
    for (int64_t k = 0; k < n; ++k) chunk[k] = token_at(first + done + k);
    REQUIRE(std::fwrite(chunk.data(), 2, size_t(n), out) == size_t(n));
    done += n;
  }
  REQUIRE(std::fclose(out) == 0);
}

// Reads kBatches random batches of kBatch windows; `expected(position)` is the id there.
template <class Expected>
void read_random(graft::runtime::DatasetInstance& dataset, int64_t first, Expected expected) {
  const int64_t samples = dataset.info().samples;
  const int64_t stride = kContext;
  std::mt19937_64 random(5);
  graft::test::Tensor x({kBatch, kContext}), y({kBatch, kContext}, DLDataType{kDLInt, 32, 1});
  int64_t wrong = 0;
  for (int64_t b = 0; b < kBatches; ++b) {
    std::vector<int64_t> indices(kBatch);
    for (int64_t& i : indices) i = static_cast<int64_t>(random() % uint64_t(samples));
    dataset.read(indices.data(), kBatch, *x.get(), *y.get());
    for (int64_t i = 0; i < kBatch; ++i)
      for (int64_t k = 0; k < kContext; ++k) {
        const int64_t p = first + indices[i] * stride + k;
        wrong += static_cast<int32_t>(x.f()[i * kContext + k]) != expected(p);
        wrong += y.i()[i * kContext + k] != expected(p + 1);
      }
  }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("text and tokens corpora past 4 GB read at random under 500 MB resident") {
  const fs::path dir = graft::test::temp_dir("large_text");
  RemoveOnExit cleanup{dir};
  if (fs::space(dir).available < (uintmax_t{12} << 30)) {
    MESSAGE("SKIPPED: less than 12 GB free in " << dir.string());
    return;
  }
  auto start = std::chrono::steady_clock::now();
  const TextBlocks blocks = make_blocks();
  const int64_t block_bytes = static_cast<int64_t>(blocks.bytes[0].size());
  const int64_t block_chars = static_cast<int64_t>(blocks.chars[0].size());
  const int64_t writes = (kTextBytes + block_bytes - 1) / block_bytes;
  {
    std::FILE* out = std::fopen((dir / "corpus.txt").c_str(), "wb");
    REQUIRE(out);
    for (int64_t w = 0; w < writes; ++w) {
      const std::string& block = blocks.bytes[size_t(block_at(w))];
      REQUIRE(std::fwrite(block.data(), 1, block.size(), out) == block.size());
    }
    REQUIRE(std::fclose(out) == 0);
  }
  fs::create_directories(dir / "shards");
  write_shard(dir / "shards" / "train_000001.bin", 0, kShardTokens);
  write_shard(dir / "shards" / "train_000002.bin", kShardTokens, kShardTokens);
  MESSAGE("wrote " << writes * block_bytes / 1000000 << " MB of text and "
                   << 4 * kShardTokens / 1000000 << " MB of tokens in " << seconds_since(start)
                   << " s");

  // Text, by characters: the index pass, then the cached index.
  std::set<char32_t> distinct(blocks.chars[0].begin(), blocks.chars[0].end());
  const std::vector<char32_t> vocabulary(distinct.begin(), distinct.end());
  auto char_id = [&](int64_t p) {
    const char32_t c = blocks.chars[size_t(block_at(p / block_chars))][size_t(p % block_chars)];
    return static_cast<int32_t>(std::lower_bound(vocabulary.begin(), vocabulary.end(), c) -
                                vocabulary.begin()) +
           1;
  };
  const std::string chars = "path = 'corpus.txt'\ncontext = 256";
  start = std::chrono::steady_clock::now();
  auto text = graft::test::make_sequence("text", chars, dir);
  const double indexing = seconds_since(start);
  start = std::chrono::steady_clock::now();
  auto cached = graft::test::make_sequence("text", chars, dir, "test");
  const double cached_create = seconds_since(start);
  MESSAGE("text, char mode: index pass " << indexing << " s, cached create " << cached_create
                                         << " s, " << text->info().samples << " train windows");
  CHECK(text->info().target.classes == int64_t(vocabulary.size()) + 1);
  CHECK(cached_create < indexing / 10);
  start = std::chrono::steady_clock::now();
  read_random(*text, 0, char_id);
  const int64_t total_chars = writes * block_chars;
  read_random(*cached, total_chars - std::llround(total_chars * 0.1), char_id);
  MESSAGE("text, char mode: " << 2 * kBatches << " batches of " << kBatch << " x " << kContext
                              << " in " << seconds_since(start) << " s");
  text.reset();
  cached.reset();

  auto bytes = graft::test::make_sequence("text", chars + "\nmode = 'byte'", dir);
  start = std::chrono::steady_clock::now();
  read_random(*bytes, 0, [&](int64_t p) {
    return static_cast<int32_t>(static_cast<uint8_t>(
        blocks.bytes[size_t(block_at(p / block_bytes))][size_t(p % block_bytes)]));
  });
  MESSAGE("text, byte mode: " << kBatches << " batches in " << seconds_since(start) << " s");
  bytes.reset();

  auto tokens = graft::test::make_sequence("tokens", "path = 'shards'\ncontext = 256", dir);
  CHECK(tokens->info().samples ==
        (2 * kShardTokens - std::llround(2 * kShardTokens * 0.1) - 1 - kContext) / kContext + 1);
  start = std::chrono::steady_clock::now();
  read_random(*tokens, 0, [](int64_t p) { return static_cast<int32_t>(token_at(p)); });
  MESSAGE("tokens: " << kBatches << " batches in " << seconds_since(start) << " s");
  tokens.reset();

  const int64_t peak = peak_resident_kib();
  MESSAGE("peak resident set: " << peak / 1024 << " MB");
  CHECK(peak > 0);
  CHECK(peak < kResidentLimitKiB);
}
