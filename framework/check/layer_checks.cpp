// The checks of layers and activations: gradients by finite differences on several shapes,
// bit-identical repeats, dx written over y where a layer's entry allows it, and a parameter
// save/load. Losses have theirs in loss_checks.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "check/check_common.hpp"
#include "check/gradient_check.hpp"
#include "checkpoint/safetensors.hpp"
#include "util/errors.hpp"

namespace graft::checker::detail {

namespace {

using runtime::Failure;

// Forward and backward twice on one instance, and forward on a second instance with the same
// parameters: every output bit-identical.
void layer_repeats(const runtime::PluginRecord& record, const graft_options& options,
                   const std::vector<int64_t>& shape, const GradientSettings& inputs) {
  std::mt19937 rng(11);
  LayerUnderTest first(record, options, shape, 4), second(record, options, shape, 4);
  first.init_parameters(rng);
  second.params = first.params;
  fill_inputs(first.x, rng, inputs);
  second.x = first.x;
  fill_random(first.dy, rng, 1.0f);
  const graft_exec_ctx ctx = layer_context(true, 4);
  const std::string on = " on " + shape_text(shape);
  first.forward(ctx);
  const Tensor y = first.y;
  first.forward(ctx);
  expect_same(y, first.y,
              "forward gave different outputs for the same input, context and seed" + on);
  second.forward(ctx);
  expect_same(y, second.y,
              "a second instance with the same options and parameters gave a "
              "different forward output" +
                  on);
  first.zero_gradients();
  first.backward(ctx);
  const Tensor dx = first.dx;
  const std::vector<Tensor> grads = first.grads;
  first.zero_gradients();
  first.forward(ctx);
  first.backward(ctx);
  expect_same(dx, first.dx, "backward gave different dx for the same input" + on);
  for (size_t k = 0; k < grads.size(); ++k)
    expect_same(grads[k], first.grads[k],
                "backward gave a different gradient of '" +
                    std::string(first.desc().params[k].name) + "'" + on);
}

// GRAFT_ENTRY_DX_OVER_OUTPUT's promise: backward reads no element of y after it writes dx.
// Forward and backward run with y and dx in one buffer (dx over y from its first element, and
// past y's end when the input is the larger, which the host never does but the promise
// covers); dx and the parameter gradients must be the bits of a backward with dx apart.
void layer_dx_over_output(const runtime::PluginRecord& record, const graft_options& options,
                          const std::vector<int64_t>& shape, const GradientSettings& inputs) {
  std::mt19937 rng(17);
  LayerUnderTest l(record, options, shape, 4);
  l.init_parameters(rng);
  fill_inputs(l.x, rng, inputs);
  fill_random(l.dy, rng, 1.0f);
  const graft_exec_ctx ctx = layer_context(true, 4);
  const std::string on = " on " + shape_text(shape);
  l.forward(ctx);
  l.zero_gradients();
  l.backward(ctx);
  const Tensor dx = l.dx;
  const std::vector<Tensor> grads = l.grads;

  Tensor shared({std::max(l.y.numel(), l.dx.numel())});
  void* const own_y = l.y.get()->data;
  void* const own_dx = l.dx.get()->data;
  struct Restore {  // the tensors own their memory again, whatever backward throws
    LayerUnderTest& l;
    void *y, *dx;
    ~Restore() {
      l.y.get()->data = y;
      l.dx.get()->data = dx;
    }
  } restore{l, own_y, own_dx};
  l.y.get()->data = shared.f();
  l.forward(ctx);
  l.zero_gradients();
  l.dx.get()->data = shared.f();
  l.backward(ctx);
  Tensor over = dx;
  std::memcpy(over.f(), shared.f(), over.bytes());
  const std::string promise =
      "the library flags it GRAFT_ENTRY_DX_OVER_OUTPUT, but with dx in "
      "y's memory backward gave ";
  expect_same(dx, over,
              promise + "a different dx" + on +
                  " (it reads y after writing dx: drop the flag or read y first)");
  for (size_t k = 0; k < grads.size(); ++k)
    expect_same(
        grads[k], l.grads[k],
        promise + "a different gradient of '" + std::string(l.desc().params[k].name) + "'" + on);
}

// Parameters written to a safetensors file and read into a fresh instance: same output.
void layer_save_load(const runtime::PluginRecord& record, const graft_options& options,
                     const std::vector<int64_t>& shape, const GradientSettings& inputs,
                     const std::filesystem::path& file, CheckResult& r) {
  std::mt19937 rng(13);
  LayerUnderTest saved(record, options, shape, 4), loaded(record, options, shape, 4);
  saved.init_parameters(rng);
  // Off the init values (zeros, ones), so a parameter read into the wrong place shows.
  std::uniform_real_distribution<float> nudge(-0.1f, 0.1f);
  for (Tensor& p : saved.params)
    for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] += nudge(rng);
  fill_inputs(saved.x, rng, inputs);
  loaded.x = saved.x;
  const graft_exec_ctx ctx = layer_context(false, 4);
  saved.forward(ctx);

  std::vector<runtime::NamedTensor> tensors;
  int64_t values = 0;
  for (size_t k = 0; k < saved.params.size(); ++k) {
    const std::string name = saved.desc().params[k].name ? saved.desc().params[k].name : "";
    if (name.empty()) throw Failure("parameter " + std::to_string(k) + " has no name");
    for (const runtime::NamedTensor& t : tensors)
      if (t.name == name)
        throw Failure("two parameters are named '" + name +
                      "'; checkpoints "
                      "keep parameters by name, so names must be unique");
    tensors.push_back({name, saved.params[k].shape(), saved.params[k].f()});
    values += saved.params[k].numel();
  }
  runtime::write_safetensors(file, tensors, {{"plugin", record.name}});
  const runtime::SafetensorsFile read = runtime::read_safetensors(file);
  for (size_t k = 0; k < loaded.params.size(); ++k) {
    const std::string name = loaded.desc().params[k].name;
    auto found = read.tensors.find(name);
    if (found == read.tensors.end())
      throw Failure("a second instance declares parameter '" + name + "', which the first did not");
    if (found->second.shape != loaded.params[k].shape())
      throw Failure("parameter '" + name + "' has shape " + shape_text(found->second.shape) +
                    " in the file but " + shape_text(loaded.params[k].shape()) +
                    " in a second instance with the same options");
    std::copy(found->second.values.begin(), found->second.values.end(), loaded.params[k].f());
  }
  loaded.forward(ctx);
  expect_same(saved.y, loaded.y,
              "after loading the saved parameters into a second instance, "
              "the evaluation output differs");
  r.value = count(int64_t(tensors.size()), "tensor") + " (" + count(values, "value") +
            ") through " + file.filename().string() + ": outputs bit-identical";
}

// True when forward refuses real-valued inputs as invalid but takes integer ids (embedding).
bool takes_ids(const runtime::PluginRecord& record, const graft_options& options,
               const std::vector<int64_t>& shape) {
  try {
    std::mt19937 rng(3);
    LayerUnderTest probe(record, options, shape, 2);
    probe.init_parameters(rng);
    GradientSettings inputs;
    inputs.inputs = GradientSettings::Inputs::spaced;
    fill_inputs(probe.x, rng, inputs);
    try {
      probe.forward(layer_context(true, 2));
      return false;
    } catch (const runtime::UserError&) {
      inputs.inputs = GradientSettings::Inputs::ids;
      fill_inputs(probe.x, rng, inputs);
      probe.forward(layer_context(true, 2));
      return true;
    }
  } catch (const std::exception&) {
    return false;  // the gradient check runs it again and reports what went wrong
  }
}

}  // namespace

std::vector<CheckResult> layer_checks(const runtime::Registry& registry,
                                      const runtime::PluginRecord& record,
                                      const toml::table& options, const CheckSettings& settings) {
  const runtime::BoundOptions bound = bind(record, options);
  std::vector<std::vector<int64_t>> accepted;
  std::vector<std::string> refused;
  for (const std::vector<int64_t>& shape : candidate_layer_shapes()) {
    try {
      LayerUnderTest probe(record, *bound.get(), shape, 1);
      accepted.push_back(shape);
    } catch (const std::exception& e) {
      refused.push_back(shape_text(shape) + " refused: " + e.what());
    }
  }
  GradientSettings gradient;
  gradient.ctx = layer_context(true, gradient.batch);
  gradient.inputs = GradientSettings::Inputs::spaced;
  if (!accepted.empty() && takes_ids(record, *bound.get(), accepted.front()))
    gradient.inputs = GradientSettings::Inputs::ids;
  const bool ids = gradient.inputs == GradientSettings::Inputs::ids;
  std::vector<CheckResult> results;
  results.push_back(run_check(record, "gradient", [&](CheckResult& r) {
    if (accepted.empty())
      throw Failure("the layer accepts none of the input shapes tried: " +
                    runtime::join(refused, "; "));
    GradientTotals totals;
    for (const std::vector<int64_t>& shape : accepted)
      totals.add(shape_text(shape), check_layer(record, *bound.get(), shape, gradient));
    totals.finish(r, shapes_text(accepted), gradient.tolerance);
    if (ids)
      add_note(r, "the layer refuses real-valued inputs, so it was given integer ids in [0, " +
                      std::to_string(gradient.id_limit) + ") and dx was not compared");
    add_note(r, runtime::join(refused, "; "));
  }));
  if (accepted.empty()) {
    for (const char* name : {"determinism", "save_load", "learns"})
      results.push_back(skipped(record, name, "no input shape was accepted"));
    return results;
  }
  results.push_back(run_check(record, "determinism", [&](CheckResult& r) {
    for (const std::vector<int64_t>& shape : accepted)
      layer_repeats(record, *bound.get(), shape, gradient);
    r.value = "forward and backward bit-identical when repeated and in a second instance, on " +
              shapes_text(accepted);
  }));
  if (record.entry->flags & GRAFT_ENTRY_DX_OVER_OUTPUT) {
    if (ids)
      results.push_back(skipped(record, "dx_over_output",
                                "the layer takes integer ids, which "
                                "have no gradient to compare"));
    else
      results.push_back(run_check(record, "dx_over_output", [&](CheckResult& r) {
        for (const std::vector<int64_t>& shape : accepted)
          layer_dx_over_output(record, *bound.get(), shape, gradient);
        r.value = "with dx written over y, dx and every gradient bit-identical, on " +
                  shapes_text(accepted);
      }));
  }
  LayerUnderTest described(record, *bound.get(), accepted.front(), 1);
  if (described.params.empty())
    results.push_back(skipped(record, "save_load", "the layer has no parameters"));
  else
    results.push_back(run_check(record, "save_load", [&](CheckResult& r) {
      layer_save_load(record, *bound.get(), accepted.front(), gradient,
                      settings.work_dir / (record.name + ".safetensors"), r);
    }));
  results.push_back(layer_learns(registry, record, options, accepted.front(), ids, settings));
  if (record.entry->flags & GRAFT_ENTRY_HAS_CUDA) results.push_back(cuda_line(record));
  return results;
}

std::vector<CheckResult> activation_checks(const runtime::Registry& registry,
                                           const runtime::PluginRecord& record,
                                           const toml::table& options,
                                           const CheckSettings& settings) {
  const runtime::BoundOptions bound = bind(record, options);
  // The batch axis first; the last axis is the row a softmax-like activation normalises.
  const std::vector<std::vector<int64_t>> shapes{{3, 8}, {2, 3, 5}};
  std::vector<CheckResult> results;
  results.push_back(run_check(record, "gradient", [&](CheckResult& r) {
    GradientSettings gradient;
    gradient.input_scale = 2.0f;
    gradient.input_margin = 0.05f;  // off the kink at 0 that relu-like activations have
    GradientTotals totals;
    for (const std::vector<int64_t>& shape : shapes)
      totals.add(shape_text(shape), check_activation(record, *bound.get(), shape, gradient));
    totals.finish(r, shapes_text(shapes), gradient.tolerance);
  }));
  results.push_back(run_check(record, "determinism", [&](CheckResult& r) {
    std::mt19937 rng(11);
    ActivationUnderTest first(record, *bound.get(), {4, 8}), second(record, *bound.get(), {4, 8});
    fill_random(first.x, rng, 2.0f);
    second.x = first.x;
    fill_random(first.dy, rng, 1.0f);
    const graft_exec_ctx ctx = layer_context(true, 4);
    first.forward(ctx);
    const Tensor y = first.y;
    first.forward(ctx);
    expect_same(y, first.y, "forward gave different outputs for the same input");
    second.forward(ctx);
    expect_same(y, second.y, "a second instance gave a different forward output");
    first.backward(ctx);
    const Tensor dx = first.dx;
    first.backward(ctx);
    expect_same(dx, first.dx, "backward gave different dx for the same input");
    r.value = "forward and backward bit-identical when repeated and in a second instance";
  }));
  results.push_back(skipped(record, "save_load", "activations have no parameters"));
  results.push_back(activation_learns(registry, record, options, settings));
  if (record.entry->flags & GRAFT_ENTRY_HAS_CUDA) results.push_back(cuda_line(record));
  return results;
}

}  // namespace graft::checker::detail
