// A GPT trained from a TOML file on text, as a user runs it: the run learns and prints samples,
// `graft generate` gives the same text for the same seed, the key-value cache gives the text
// that recomputing every window gives, and bad input is a clear error.
#include <fstream>
#include <iterator>
#include <string>

#include "test_support.hpp"
#include "tiny_gpt.hpp"

namespace fs = std::filesystem;
using graft::test::has;
using graft::test::run_graft;

namespace {

// The text `graft generate` printed (stdout and stderr are combined: drop the timing line).
std::string generated(const std::string& output) {
  std::string text = output;
  const size_t at = text.find("graft generate: ");
  if (at != std::string::npos) text.erase(at, text.find('\n', at) + 1 - at);
  return text;
}

}  // namespace

TEST_CASE("a tiny GPT learns from text, prints samples, and generates the same text per seed") {
  const fs::path dir = graft::test::temp_dir("text_models_train");
  const fs::path config = graft::test::write_tiny_gpt(dir);
  auto trained = run_graft("train " + config.string() +
                           " --set run.steps=120 --set run.eval_every=60 --set run.log_every=60");
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  CHECK(has(trained.output, "step 60 sample \""));
  CHECK(has(trained.output, "step 120 sample \""));
  // 18 characters: chance is ln 18 = 2.89 nats; word-level structure takes it well below.
  const size_t at = trained.output.find("test loss ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(trained.output.substr(at + 10)) < 2.0);

  const std::string run = (dir / "runs" / "g").string();
  const std::string base = "generate " + config.string() + " --checkpoint " + run +
                           " --prompt \"the \" --tokens 40 --temperature 0.8 --top-k 5";
  auto one = run_graft(base + " --seed 7");
  auto again = run_graft(base + " --seed 7");
  auto recomputed = run_graft(base + " --seed 7 --no-cache");
  auto other = run_graft(base + " --seed 8");
  REQUIRE_MESSAGE(one.exit_code == 0, one.output);
  CHECK(has(one.output, "40 tokens in"));
  CHECK(generated(one.output).rfind("the ", 0) == 0);
  CHECK(generated(one.output).size() >= 44);
  CHECK(generated(one.output) == generated(again.output));
  CHECK(generated(one.output) == generated(recomputed.output));
  CHECK(has(recomputed.output, "whole window recomputed"));
  CHECK(generated(one.output) != generated(other.output));
  // The vocabulary is saved with the run, and a changed corpus is refused.
  CHECK(fs::exists(dir / "runs" / "g" / "vocabulary.json"));
  // As many characters as the corpus has (17, so the model's shapes fit), other ones.
  std::string letters;
  for (int i = 0; i < 4000; ++i) letters += char('A' + (i * 7) % 17);
  std::ofstream(dir / "other.txt") << letters;
  auto changed = run_graft(base + " --set data.path=other.txt");
  CHECK(changed.exit_code == 2);
  CHECK(has(changed.output, "vocabulary.json"));
  // Longer than the context (16): the window restarts from its last 8 tokens, alike either way.
  auto longer = run_graft(base + " --seed 3 --tokens 100");
  auto longer_recomputed = run_graft(base + " --seed 3 --tokens 100 --no-cache");
  CHECK(generated(longer.output) == generated(longer_recomputed.output));
}

TEST_CASE("a GPT with its output projection tied to its embedding learns and generates") {
  const fs::path dir = graft::test::temp_dir("text_models_tied");
  const fs::path config = graft::test::write_tiny_gpt(dir, "", /*tied=*/true);
  auto shown = run_graft("validate " + config.string());
  REQUIRE_MESSAGE(shown.exit_code == 0, shown.output);
  CHECK(has(shown.output, "tied     layers.5.weight is layers.0.weight"));
  auto trained = run_graft("train " + config.string() +
                           " --set run.steps=120 --set run.eval_every=120 --set run.log_every=60" +
                           " --set model.layers.0.init_std=0.1");
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  const size_t at = trained.output.find("test loss ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(trained.output.substr(at + 10)) < 2.0);  // chance: ln 18 = 2.89
  auto text = run_graft("generate " + config.string() + " --checkpoint " +
                        (dir / "runs" / "g").string() + " --prompt \"the \" --tokens 20 --seed 1");
  REQUIRE_MESSAGE(text.exit_code == 0, text.output);
  CHECK(generated(text.output).rfind("the ", 0) == 0);
  // A tie the model cannot make names the config's line and key.
  std::string toml;
  {
    std::ifstream in(config);
    toml.assign(std::istreambuf_iterator<char>(in), {});
  }
  toml.replace(toml.find("layers.0.weight"), 15, "layers.0.wieght");
  std::ofstream(dir / "typo.toml") << toml;
  auto typo = run_graft("validate " + (dir / "typo.toml").string());
  CHECK(typo.exit_code == 2);
  CHECK(has(typo.output, "typo.toml:"));
  CHECK(has(typo.output, "tie.weight"));
  CHECK(has(typo.output, "did you mean 'layers.0.weight'"));
}

TEST_CASE("sequence models: bad input is a clear error naming the key and the fix") {
  const fs::path dir = graft::test::temp_dir("text_models_errors");
  const fs::path config = graft::test::write_tiny_gpt(dir);
  // Heads that do not divide the width.
  auto heads = run_graft("validate " + config.string() + " --set model.layers.2.layers.1.heads=3");
  CHECK(heads.exit_code == 2);
  CHECK(has(heads.output, "heads"));
  // A binary file read as characters.
  std::ofstream(dir / "binary.bin", std::ios::binary) << std::string("ab\xff\xfe\x01", 5);
  auto binary = run_graft("validate " + config.string() + " --set data.path=binary.bin");
  CHECK(binary.exit_code == 2);
  CHECK(has(binary.output, "binary.bin"));
  CHECK(has(binary.output, "mode = \"byte\""));
  // A context longer than the corpus.
  auto context = run_graft("validate " + config.string() + " --set data.context=100000");
  CHECK(context.exit_code == 2);
  CHECK(has(context.output, "context"));
  // Ids beyond the model's vocabulary: the embedding names the table size.
  auto vocabulary =
      run_graft("train " + config.string() + " --set model.layers.0.num_embeddings=10");
  CHECK(vocabulary.exit_code != 0);
  CHECK(has(vocabulary.output, "num_embeddings = 10"));
  // generate on a model of images.
  auto images = run_graft(
      "generate " + (graft::test::source_dir() / "configs" / "sine_regression.toml").string() +
      " --checkpoint " + (dir / "none").string());
  CHECK(images.exit_code == 2);
}

TEST_CASE("configs/char_gpt.toml reads the fortunes corpus, trains and prints a sample") {
  const fs::path dir = graft::test::temp_dir("text_models_char_gpt");
  const std::string config = (graft::test::source_dir() / "configs" / "char_gpt.toml").string();
  auto r = run_graft("train " + config + " --set run.steps=4 --set run.eval_every=4 " +
                     "--set run.output_dir=\"" + dir.string() + "\"");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(has(r.output, "step 4 sample \""));
  CHECK(fs::exists(dir / "char_gpt" / "vocabulary.json"));
}
