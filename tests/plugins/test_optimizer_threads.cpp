// The built-in optimizers split across the host's threads (graft::parallel_for in step()):
// a parameter large enough to be split must get exactly the bits it gets when it is stepped
// in small pieces, each on one thread, on one host thread or on two.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "device/host_api.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::throw_if_failed;

// An optimizer made as the framework makes one (options bound from TOML), stepping any
// tensors it is given.
class LoadedOptimizer {
 public:
  LoadedOptimizer(const std::string& name, const std::string& toml_text)
      : who_("optimizer '" + name + "'") {
    vtable_ = &graft::test::builtin_registry()
                   .get(GRAFT_KIND_OPTIMIZER, name)
                   .vtable<graft_optimizer_vtable>();
    graft::runtime::BoundOptions options =
        graft::test::options(GRAFT_KIND_OPTIMIZER, name, toml_text);
    throw_if_failed(vtable_->create(graft::runtime::host_api(), options.get(), &self_), who_);
    graft_optimizer_desc desc{};
    desc.struct_size = sizeof desc;
    throw_if_failed(vtable_->describe(self_, &desc), who_);
    n_state_ = desc.n_state;
  }
  ~LoadedOptimizer() { vtable_->destroy(self_); }
  LoadedOptimizer(const LoadedOptimizer&) = delete;
  LoadedOptimizer& operator=(const LoadedOptimizer&) = delete;

  size_t n_state() const { return n_state_; }
  // One update, with weight decay on.
  void step_tensors(DLTensor* param, DLTensor* grad, DLTensor* const* state, float lr,
                    int64_t step) {
    graft_exec_ctx ctx = graft::test::cpu_ctx();
    ctx.step = step - 1;
    graft_param_update update{sizeof(graft_param_update), param, grad, state, lr, step, 1};
    throw_if_failed(vtable_->step(self_, &ctx, &update), who_);
  }

 private:
  std::string who_;
  const graft_optimizer_vtable* vtable_ = nullptr;
  void* self_ = nullptr;
  size_t n_state_ = 0;
};

// A 1-D float32 view of n elements at p (the shape lives with it, so it stays put).
struct View {
  View(float* p, int64_t n) : shape{n} {
    tensor.data = p;
    tensor.device = DLDevice{kDLCPU, 0};
    tensor.ndim = 1;
    tensor.dtype = DLDataType{kDLFloat, 32, 1};
    tensor.shape = shape;
  }
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  int64_t shape[1];
  DLTensor tensor{};
};

// Parameter, gradient and state arrays of n elements, and views of [begin, begin + count).
struct Arrays {
  std::vector<float> param, grad;
  std::vector<std::vector<float>> state;
  void step(LoadedOptimizer& optimizer, int64_t begin, int64_t count, float lr, int64_t t) {
    View p(param.data() + begin, count), g(grad.data() + begin, count);
    std::vector<std::unique_ptr<View>> views;
    std::vector<DLTensor*> pointers;
    for (auto& s : state) {
      views.push_back(std::make_unique<View>(s.data() + begin, count));
      pointers.push_back(&views.back()->tensor);
    }
    optimizer.step_tensors(&p.tensor, &g.tensor, pointers.data(), lr, t);
  }
};
}  // namespace

TEST_CASE("a parameter split across the host's threads gets the bits of one stepped in pieces") {
  // Large enough for step() to split it over threads (optimizers.cpp: ranges of >= 32768),
  // and an odd size, so the last range is short; pieces of 1000 are always stepped whole.
  constexpr int64_t n = 150001, piece = 1000;
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"sgd", ""},
      {"sgd", "momentum = 0.9\ndampening = 0.25\nweight_decay = 0.01"},
      {"sgd", "momentum = 0.9\nnesterov = true"},
      {"adam", "weight_decay = 0.01\namsgrad = true"},
      {"adamw", ""},
      {"rmsprop", "momentum = 0.9\ncentered = true\nweight_decay = 0.01"},
      {"rmsprop", ""}};
  for (int threads : {2, 1}) {
    graft::runtime::set_cpu_threads(threads);
    for (const auto& c : cases) {
      const auto& [name, options] = c;
      CAPTURE(threads);
      CAPTURE(std::string(c.first));  // members: clang 14's CAPTURE rejects bindings
      CAPTURE(std::string(c.second));
      LoadedOptimizer whole_optimizer(name, options), pieces_optimizer(name, options);
      std::mt19937 rng(17);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      Arrays whole;
      whole.param.resize(n);
      for (float& v : whole.param) v = normal(rng);
      whole.state.assign(whole_optimizer.n_state(), std::vector<float>(n, 0.0f));
      Arrays pieces = whole;
      for (int64_t t = 1; t <= 3; ++t) {
        whole.grad.resize(n);
        for (float& v : whole.grad) v = 0.1f * normal(rng);
        pieces.grad = whole.grad;
        whole.step(whole_optimizer, 0, n, 0.01f, t);
        for (int64_t begin = 0; begin < n; begin += piece)
          pieces.step(pieces_optimizer, begin, std::min(piece, n - begin), 0.01f, t);
      }
      CHECK(std::memcmp(whole.param.data(), pieces.param.data(), n * sizeof(float)) == 0);
      for (size_t k = 0; k < whole.state.size(); ++k)
        CHECK(std::memcmp(whole.state[k].data(), pieces.state[k].data(), n * sizeof(float)) == 0);
    }
  }
  graft::runtime::set_cpu_threads(0);
}
