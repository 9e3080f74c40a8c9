// A GPT small enough for tests: one pre-LayerNorm block (attention, gelu MLP) over a generated
// corpus of 18 characters, written with its config into `dir`. Shared by the integration test
// of text runs and the dist test of sequence models under every strategy.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace graft::test {

// dir/corpus.txt (about 36 KB of words) and dir/gpt.toml; `extra` is appended to the config.
// tied: the output projection is the token embedding's table (nanoGPT's weight tying).
inline std::filesystem::path write_tiny_gpt(const std::filesystem::path& dir,
                                            const std::string& extra = "", bool tied = false) {
  const char* words[] = {"the", "cat", "sat", "on",  "a",    "mat",   "and",   "then",
                         "it",  "ran", "to",  "red", "door", "while", "birds", "sang"};
  std::mt19937 rng(1);
  std::ofstream corpus(dir / "corpus.txt");
  for (int i = 0; i < 8000; ++i) corpus << (i ? " " : "") << words[rng() % 16];
  corpus.close();
  const std::filesystem::path file = dir / "gpt.toml";
  std::ofstream(file) << "[run]\nname = \"g\"\nseed = 5\nsteps = 20\nthreads = 1\n"
                         "output_dir = \""
                      << (dir / "runs").string()
                      << "\"\n[data]\nreader = \"text\"\npath = \"corpus.txt\"\ncontext = 16\n"
                         "batch_size = 8\n"
                         "[[model.layers]]\ntype = \"embedding\"\nnum_embeddings = 18\n"
                         "embedding_dim = 16\n"
                         "[[model.layers]]\ntype = \"positional_embedding\"\nmax_positions = 16\n"
                         "[[model.layers]]\ntype = \"residual\"\n"
                         "[[model.layers.layers]]\ntype = \"layer_norm\"\nnormalized_dims = 1\n"
                         "[[model.layers.layers]]\ntype = \"attention\"\nheads = 2\n"
                         "[[model.layers]]\ntype = \"residual\"\n"
                         "[[model.layers.layers]]\ntype = \"layer_norm\"\nnormalized_dims = 1\n"
                         "[[model.layers.layers]]\ntype = \"linear\"\nflatten = false\nunits = 32\n"
                         "activation = \"gelu\"\n"
                         "[[model.layers.layers]]\ntype = \"linear\"\nflatten = false\nunits = 16\n"
                         "[[model.layers]]\ntype = \"layer_norm\"\nnormalized_dims = 1\n"
                         "[[model.layers]]\ntype = \"linear\"\nflatten = false\nunits = 18\n"
                      << (tied ? "bias = false\ntranspose_weight = true\n"
                                 "tie = { weight = \"layers.0.weight\" }\n"
                               : "")
                      << "[loss]\ntype = \"cross_entropy\"\n"
                         "[optimizer]\ntype = \"adam\"\nlr = 0.01\n"
                      << extra;
  return file;
}

}  // namespace graft::test
