// The `synthetic` dataset: seeded generated data for tests and examples — Gaussian blobs to
// classify, and sin(x) to regress (the universal-approximation example).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "graft/cpp/plugin.hpp"
#include "graft/random.h"

namespace graft_synthetic {

constexpr float kPi = 3.14159265358979323846f;
// Random streams, one per purpose, so no two draws share a counter.
constexpr uint64_t kCenterStream = 1, kClassStream = 2, kFeatureStream = 3, kNoiseStream = 4;
// sklearn's make_blobs box: each class centre is uniform in [-10, 10) per feature.
constexpr float kCenterBox = 10.0f;

// A 64-bit mix (splitmix64's finaliser) that keys the train and test samples apart.
uint64_t mix(uint64_t value) {
  value += 0x9E3779B97F4A7C15ull;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

class Synthetic : public graft::Dataset {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_string("kind", "blobs",
                             "blobs: Gaussian clusters to classify; sine: x in [-pi, pi], "
                             "target sin(x)",
                             "blobs|sine"),
        graft::option_int("samples", 1000, "samples in the train split").range(1, 1e12),
        graft::option_int("test_samples", 200, "samples in the test split").range(1, 1e12),
        graft::option_int("features", 2, "blobs: input features").range(1, 1e6),
        graft::option_int("classes", 3, "blobs: clusters, one per class").range(1, 1e6),
        graft::option_float("spread", 0.5, "blobs: standard deviation around each centre")
            .range(0, 1e6),
        graft::option_float("noise", 0.0, "sine: standard deviation added to sin(x)").range(0, 1e6),
    };
  }

  Synthetic(const graft::Options& options, const graft_dataset_args& args, graft::Host)
      : seed_(args.seed) {
    std::string split = args.split ? args.split : "";
    GRAFT_CHECK(split == "train" || split == "test",
                "synthetic: unknown split '" << split << "'; expected \"train\" or \"test\"");
    // The class centres come from the run seed alone (both splits share the distribution);
    // the samples from the seed mixed with the split, so train and test differ.
    sample_seed_ = mix(args.seed ^ (split == "train" ? 0x7472616Eull : 0x74657374ull));
    sine_ = options.get_string("kind") == "sine";
    samples_ = options.get_int(split == "train" ? "samples" : "test_samples");
    features_ = sine_ ? 1 : options.get_int("features");
    classes_ = options.get_int("classes");
    spread_ = static_cast<float>(options.get_float("spread"));
    noise_ = static_cast<float>(options.get_float("noise"));
    if (!sine_) {
      centers_.resize(static_cast<size_t>(classes_ * features_));
      for (size_t i = 0; i < centers_.size(); ++i)
        centers_[i] = kCenterBox * (2.0f * graft_random_uniform(seed_, kCenterStream, i) - 1.0f);
    }
  }

  graft_dataset_info info() const override {
    graft_dataset_info info{};
    info.samples = samples_;
    info.input = graft::Shape{features_};
    if (sine_)
      info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{1},
                                      DLDataType{kDLFloat, 32, 1}, 0};
    else
      info.target = graft_target_info{sizeof(graft_target_info), graft::Shape{},
                                      DLDataType{kDLInt, 32, 1}, classes_};
    return info;
  }

  // x: (n, features) float32; y: (n,) int32 (blobs) or (n, 1) float32 (sine).
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) override {
    GRAFT_CHECK(
        graft::on_cpu(x) && x.dtype.code == kDLFloat && x.dtype.bits == 32 &&
            graft::numel(x) == n * features_,
        "synthetic: read() needs x as float32 on the CPU with " << n * features_ << " elements");
    GRAFT_CHECK(graft::on_cpu(y) && y.dtype.bits == 32 && graft::numel(y) == n &&
                    y.dtype.code == (sine_ ? kDLFloat : kDLInt),
                "synthetic: read() needs y as " << (sine_ ? "float32" : "int32")
                                                << " on the CPU with " << n << " elements");
    for (int64_t i = 0; i < n; ++i) {
      int64_t sample = indices[i];
      GRAFT_CHECK(sample >= 0 && sample < samples_,
                  "synthetic: sample " << sample << " is outside [0, " << samples_ << ")");
      if (sine_)
        sine_sample(static_cast<uint64_t>(sample), graft::f32(x)[i], graft::f32(y)[i]);
      else
        blob_sample(static_cast<uint64_t>(sample), graft::f32(x) + i * features_, graft::i32(y)[i]);
    }
  }

 private:
  // Every value below depends only on the sample's index, never on the batch asking for it.
  void sine_sample(uint64_t sample, float& x, float& y) const {
    x = kPi * (2.0f * graft_random_uniform(sample_seed_, kFeatureStream, sample) - 1.0f);
    y = std::sin(x);
    if (noise_ > 0) y += noise_ * graft_random_normal(sample_seed_, kNoiseStream, sample);
  }
  void blob_sample(uint64_t sample, float* x, int32_t& label) const {
    float u = graft_random_uniform(sample_seed_, kClassStream, sample);
    int64_t cls = std::min<int64_t>(classes_ - 1, static_cast<int64_t>(u * classes_));
    label = static_cast<int32_t>(cls);
    const uint64_t first = sample * static_cast<uint64_t>(features_);
    for (int64_t f = 0; f < features_; ++f)
      x[f] = centers_[cls * features_ + f] +
             spread_ * graft_random_normal(sample_seed_, kFeatureStream, first + f);
  }

  uint64_t seed_, sample_seed_ = 0;
  bool sine_ = false;
  int64_t samples_ = 0, features_ = 0, classes_ = 0;
  float spread_ = 0, noise_ = 0;
  std::vector<float> centers_;  // (classes, features)
};

}  // namespace graft_synthetic

GRAFT_PLUGIN_LIBRARY("synthetic", "0.1.0",
                     graft::dataset<graft_synthetic::Synthetic>(
                         "synthetic", "seeded generated data: Gaussian blobs or sin(x)"))
