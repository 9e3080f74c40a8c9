// An example dataset reader: interleaved spirals, one arm per class, generated on demand.
// It shows the dataset kind's contract: describe() once, then read(indices) for any samples in
// any order, each sample a pure function of (seed, split, index) so every read agrees.
#include <algorithm>
#include <cmath>
#include <string>

#include <graft/random.h>
#include <graft/cpp/plugin.hpp>

namespace {

constexpr float kTwoPi = 6.28318530717958647692f;
// Random streams, one per purpose, so no two draws share a counter.
constexpr uint64_t kPositionStream = 1, kArmStream = 2, kNoiseStream = 3;

class Spirals final : public graft::Dataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_int("samples", 1000, "samples in the train split").range(1, 1e9),
        graft::option_int("test_samples", 200, "samples in the test split").range(1, 1e9),
        graft::option_int("arms", 2, "spiral arms, one class each").range(2, 16),
        graft::option_float("turns", 1.5, "turns each arm makes").range(0.1, 10),
        graft::option_float("noise", 0.05, "standard deviation added to each coordinate")
            .range(0, 10),
    };
  }

  Spirals(const graft::Options& options, const graft_dataset_args& args, graft::Host)
      : arms_(options.get_int("arms")),
        turns_(float(options.get_float("turns"))),
        noise_(float(options.get_float("noise"))) {
    const std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "spirals: unknown split '" << split << "'; expected \"train\" or \"test\"");
    samples_ = options.get_int(split == "train" ? "samples" : "test_samples");
    // Train and test draw from the same spirals with different counters.
    seed_ = args.seed * 2 + (split == "train" ? 0 : 1);
  }

  // Input (2,): a point in the plane; target: the arm it lies on.
  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = samples_;
    info.input = graft::Shape{2};
    info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{},
                                    DLDataType{kDLInt, 32, 1}, arms_};
    return info;
  }

  // x: (n, 2) float32, y: (n,) int32.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    GRAFT_CHECK(graft::numel(x) == 2 * n && graft::numel(y) == n,
                "spirals: read() needs x of " << 2 * n << " and y of " << n << " elements");
    for (int64_t i = 0; i < n; ++i) {
      const int64_t sample = indices[i];
      GRAFT_CHECK(sample >= 0 && sample < samples_,
                  "spirals: sample " << sample << " is outside [0, " << samples_ << ")");
      const uint64_t s = static_cast<uint64_t>(sample);
      const float along = graft_random_uniform(seed_, kPositionStream, s);  // 0 centre, 1 tip
      const int64_t arm = std::min<int64_t>(
          arms_ - 1, int64_t(graft_random_uniform(seed_, kArmStream, s) * float(arms_)));
      const float angle = kTwoPi * (turns_ * along + float(arm) / float(arms_));
      graft::f32(x)[2 * i] =
          along * std::cos(angle) + noise_ * graft_random_normal(seed_, kNoiseStream, 2 * s);
      graft::f32(x)[2 * i + 1] =
          along * std::sin(angle) + noise_ * graft_random_normal(seed_, kNoiseStream, 2 * s + 1);
      graft::i32(y)[i] = static_cast<int32_t>(arm);
    }
  }

 private:
  int64_t arms_, samples_ = 0;
  float turns_, noise_;
  uint64_t seed_ = 0;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("spirals_dataset", "0.1.0",
                     graft::dataset<Spirals>("spirals",
                                             "interleaved spiral arms to classify, "
                                             "one class per arm"))
