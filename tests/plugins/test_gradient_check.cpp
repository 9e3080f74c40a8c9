// The gradient checker itself must fail on wrong gradients: a wrong analytic vector, and
// deliberately broken layers driven through the same C vtables as real plugins.
#include <cmath>
#include <string>

#include "gradient_check.hpp"
#include "graft/cpp/plugin.hpp"

namespace {

using namespace graft::test;

enum class Bug { none, wrong_dx, overwrites_gradient, forgets_input_in_gradient };

// y = x * w per feature (w: (F,)); backward with the chosen bug.
template <Bug B>
class ScaleLayer : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }
  ScaleLayer(const graft::Options&, const graft::Shape& input, graft::Host)
      : features_(input.numel()) {}
  graft::Shape output_shape() const override { return graft::Shape{features_}; }
  std::vector<graft::Param> parameters() const override {
    return {graft::Param{"weight", graft::Shape{features_}, GRAFT_INIT_ONES, 1, 1, 1.0f, false}};
  }
  void forward(const graft::Context&, const DLTensor* const* params, const DLTensor& x, DLTensor& y,
               DLTensor*) override {
    const float* w = graft::f32(*params[0]);
    for (int64_t e = 0; e < graft::numel(x); ++e)
      graft::f32(y)[e] = graft::f32(x)[e] * w[e % features_];
  }
  void backward(const graft::Context&, const DLTensor* const* params, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor*) override {
    const float* w = graft::f32(*params[0]);
    float* dw = graft::f32(*grads[0]);
    if (B == Bug::overwrites_gradient)
      for (int64_t j = 0; j < features_; ++j) dw[j] = 0.0f;
    for (int64_t e = 0; e < graft::numel(x); ++e) {
      const float input = B == Bug::forgets_input_in_gradient ? 1.0f : graft::f32(x)[e];
      dw[e % features_] += graft::f32(dy)[e] * input;
      const float factor = B == Bug::wrong_dx ? 1.5f : 1.0f;
      if (dx) graft::f32(*dx)[e] = graft::f32(dy)[e] * w[e % features_] * factor;
    }
  }

 private:
  int64_t features_;
};

// A registry record for a layer class compiled into this test, as the loader would make it.
template <class T>
struct TestPlugin {
  graft_plugin_entry entry{sizeof(graft_plugin_entry),
                           GRAFT_KIND_LAYER,
                           "scale",
                           "test layer",
                           0,
                           nullptr,
                           graft::detail::LayerAdapter<T>::vtable(),
                           0};
  graft::runtime::PluginRecord record{GRAFT_KIND_LAYER, "scale", "test", nullptr, &entry};
};

}  // namespace

TEST_CASE("compare_gradient accepts the right gradient and reports a wrong one") {
  // f(v) = sum v_i^3, so df/dv_i = 3 v_i^2.
  std::vector<float> v{0.5f, -1.0f, 2.0f, 0.25f};
  auto numeric = [&](int64_t i, double step) {
    auto f = [&](double vi) {
      double s = 0.0;
      for (size_t k = 0; k < v.size(); ++k) {
        const double value = static_cast<int64_t>(k) == i ? vi : v[k];
        s += value * value * value;
      }
      return s;
    };
    return (f(v[i] + step) - f(v[i] - step)) / (2 * step);
  };
  std::vector<float> right, wrong;
  for (float x : v) right.push_back(3 * x * x);
  wrong = right;
  wrong[2] *= 1.05f;  // 5 % off in one element

  GradientSettings settings;
  GradientReport good;
  compare_gradient("dv", right.data(), 4, numeric, settings, good);
  CHECK_MESSAGE(good.ok, good.summary());
  CHECK(good.checked == 4);

  GradientReport bad;
  compare_gradient("dv", wrong.data(), 4, numeric, settings, bad);
  CHECK_FALSE(bad.ok);
  REQUIRE(bad.failures.size() == 1);
  CHECK(bad.failures[0].find("dv[2]") != std::string::npos);

  std::vector<float> not_a_number = right;
  not_a_number[0] = std::nanf("");
  GradientReport nan_report;
  compare_gradient("dv", not_a_number.data(), 4, numeric, settings, nan_report);
  CHECK_FALSE(nan_report.ok);
}

TEST_CASE("check_layer passes a correct layer and fails each kind of broken backward") {
  TestPlugin<ScaleLayer<Bug::none>> correct;
  GradientReport report = check_layer(correct.record, "", {5});
  CHECK_MESSAGE(report.ok, report.summary());

  TestPlugin<ScaleLayer<Bug::wrong_dx>> wrong_dx;
  report = check_layer(wrong_dx.record, "", {5});
  CHECK_FALSE(report.ok);
  CHECK(report.summary().find("dx[") != std::string::npos);

  TestPlugin<ScaleLayer<Bug::overwrites_gradient>> overwrites;
  report = check_layer(overwrites.record, "", {5});
  CHECK_FALSE(report.ok);
  CHECK(report.summary().find("grad of weight") != std::string::npos);

  TestPlugin<ScaleLayer<Bug::forgets_input_in_gradient>> forgets;
  report = check_layer(forgets.record, "", {5});
  CHECK_FALSE(report.ok);
}
