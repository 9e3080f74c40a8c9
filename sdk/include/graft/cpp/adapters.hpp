// The C trampolines graft::layer<T>() and the others register: each adapter turns a C++
// plugin class (kinds.hpp) into its kind's C table, every call guarded so that an exception
// becomes a graft_status. plugin.hpp includes it; a plugin never names it.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "graft/cpp/core.hpp"
#include "graft/cpp/kinds.hpp"

namespace graft::detail {

// A created plugin object plus what describe() must keep alive.
template <class T>
struct Holder {
  Host host;
  std::unique_ptr<T> impl;
  std::vector<Param> params;
  std::vector<graft_param_spec> specs;
  std::vector<std::string> names;
  std::vector<const char*> name_ptrs;  // a strategy's report
  std::vector<double> values;
  std::string message;
};

template <class T>
Holder<T>* holder(void* self) {
  return static_cast<Holder<T>*>(self);
}

template <class T>
void destroy(void* self) noexcept {
  delete holder<T>(self);
}

template <class T>
struct LayerAdapter {
  static graft_status* create(Host host, const graft_options* o, const graft_shape* in,
                              void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), Shape(*in), host);
      *self = h.release();
    });
  }
  static graft_status* describe(void* self, graft_layer_desc* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      h->params = h->impl->parameters();
      h->specs.clear();
      for (const Param& p : h->params)
        h->specs.push_back(graft_param_spec{
            sizeof(graft_param_spec), p.name.c_str(), p.shape, p.init, p.fan_in, p.fan_out, p.gain,
            p.no_weight_decay ? 1 : 0, p.buffer ? 1 : 0, p.shard_axis});
      *out = graft_layer_desc{sizeof(graft_layer_desc),
                              h->impl->output_shape(),
                              h->specs.size(),
                              h->specs.data(),
                              h->impl->workspace_per_sample(),
                              int32_t(h->impl->workspace_use()),
                              h->impl->scratch_per_sample()};
    });
  }
  static graft_status* forward(void* self, const graft_exec_ctx* ctx, const DLTensor* const* p,
                               const DLTensor* x, DLTensor* y, DLTensor* ws) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->forward(*ctx, p, *x, *y, ws); });
  }
  static graft_status* backward(void* self, const graft_exec_ctx* ctx, const DLTensor* const* p,
                                const DLTensor* x, const DLTensor* y, const DLTensor* dy,
                                DLTensor* dx, DLTensor* const* g, DLTensor* ws) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->backward(*ctx, p, *x, *y, *dy, dx, g, ws); });
  }
  static graft_status* shard(void* self, int32_t mode, int32_t index, int32_t count) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->shard(mode, index, count); });
  }
  static graft_status* set_positions(void* self, int64_t first, int64_t capacity) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->set_positions(first, capacity); });
  }
  static const graft_layer_vtable* vtable() {
    static const graft_layer_vtable v{sizeof(graft_layer_vtable),
                                      create,
                                      destroy<T>,
                                      describe,
                                      forward,
                                      backward,
                                      shard,
                                      set_positions};
    return &v;
  }
};

template <class T>
struct ActivationAdapter {
  static graft_status* create(Host host, const graft_options* o, void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), host);
      *self = h.release();
    });
  }
  static uint32_t flags(void* self) {
    return holder<T>(self)->impl->elementwise() ? GRAFT_ACTIVATION_ELEMENTWISE : 0u;
  }
  static graft_status* forward(void* self, const graft_exec_ctx* ctx, const DLTensor* x,
                               DLTensor* y) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->forward(*ctx, *x, *y); });
  }
  static graft_status* backward(void* self, const graft_exec_ctx* ctx, const DLTensor* x,
                                const DLTensor* y, const DLTensor* dy, DLTensor* dx) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->backward(*ctx, *x, *y, *dy, *dx); });
  }
  static const graft_activation_vtable* vtable() {
    static const graft_activation_vtable v{
        sizeof(graft_activation_vtable), create, destroy<T>, flags, forward, backward};
    return &v;
  }
};

template <class T>
struct LossAdapter {
  static graft_status* create(Host host, const graft_options* o, const graft_shape* pred,
                              const graft_target_info* target, void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), Shape(*pred), *target, host);
      *self = h.release();
    });
  }
  static graft_status* describe(void* self, graft_loss_desc* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      h->names = h->impl->metrics();
      GRAFT_CHECK(h->names.size() <= GRAFT_MAX_METRICS,
                  "a loss reports at most " << GRAFT_MAX_METRICS << " metrics");
      *out = graft_loss_desc{sizeof(graft_loss_desc), h->names.size(), {}};
      for (size_t i = 0; i < h->names.size(); ++i) out->metric_names[i] = h->names[i].c_str();
    });
  }
  static graft_status* forward(void* self, const graft_exec_ctx* ctx, const DLTensor* pred,
                               const DLTensor* target, double* loss, double* metrics) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->forward(*ctx, *pred, *target, *loss, metrics); });
  }
  static graft_status* backward(void* self, const graft_exec_ctx* ctx, const DLTensor* pred,
                                const DLTensor* target, float scale, DLTensor* dpred) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->backward(*ctx, *pred, *target, scale, *dpred); });
  }
  static const graft_loss_vtable* vtable() {
    static const graft_loss_vtable v{
        sizeof(graft_loss_vtable), create, destroy<T>, describe, forward, backward};
    return &v;
  }
};

template <class T>
struct OptimizerAdapter {
  static graft_status* create(Host host, const graft_options* o, void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), host);
      *self = h.release();
    });
  }
  static graft_status* describe(void* self, graft_optimizer_desc* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      h->names = h->impl->state_names();
      GRAFT_CHECK(h->names.size() <= GRAFT_MAX_OPTIMIZER_STATE,
                  "an optimizer keeps at most " << GRAFT_MAX_OPTIMIZER_STATE << " state tensors");
      *out = graft_optimizer_desc{sizeof(graft_optimizer_desc), h->names.size(), {}};
      for (size_t i = 0; i < h->names.size(); ++i) out->state_names[i] = h->names[i].c_str();
    });
  }
  static graft_status* step(void* self, const graft_exec_ctx* ctx, const graft_param_update* u) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->step(*ctx, *u); });
  }
  static const graft_optimizer_vtable* vtable() {
    static const graft_optimizer_vtable v{sizeof(graft_optimizer_vtable), create, destroy<T>,
                                          describe, step};
    return &v;
  }
};

template <class T>
struct DatasetAdapter {
  static graft_status* create(Host host, const graft_options* o, const graft_dataset_args* a,
                              void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), *a, host);
      *self = h.release();
    });
  }
  static graft_status* describe(void* self, graft_dataset_info* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      *out = h->impl->info();
      out->struct_size = sizeof *out;
    });
  }
  static graft_status* read(void* self, const int64_t* idx, int64_t n, DLTensor* x, DLTensor* y) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->read(idx, n, *x, *y); });
  }
  static graft_status* decode(void* self, const int32_t* ids, int64_t n, char* out,
                              int64_t capacity, int64_t* length) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      if constexpr (std::is_base_of_v<TextDataset, T>) {
        const std::string text = h->impl->decode(ids, n);
        *length = static_cast<int64_t>(text.size());
        std::memcpy(out, text.data(), static_cast<size_t>(std::min(*length, capacity)));
      }
    });
  }
  static graft_status* encode(void* self, const char* text, int64_t length, int32_t* ids,
                              int64_t capacity, int64_t* count) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      if constexpr (std::is_base_of_v<TextDataset, T>) {
        const std::vector<int32_t> given =
            h->impl->encode(std::string(text, static_cast<size_t>(length)));
        *count = static_cast<int64_t>(given.size());
        std::copy_n(given.begin(), std::min(*count, capacity), ids);
      }
    });
  }
  static const graft_dataset_vtable* vtable() {
    constexpr bool text = std::is_base_of_v<TextDataset, T>;
    static const graft_dataset_vtable v{
        sizeof(graft_dataset_vtable), create, destroy<T>, describe, read, text ? decode : nullptr,
        text ? encode : nullptr};
    return &v;
  }
};

template <class T>
struct StrategyAdapter {
  static graft_status* create(Host host, const graft_options* o, const graft_world* w,
                              void** self) {
    return guard(host, [&] {
      auto h = std::make_unique<Holder<T>>();
      h->host = host;
      h->impl = std::make_unique<T>(Options(o), *w, host);
      *self = h.release();
    });
  }
  static graft_status* train(void* self, const graft_model_api* api, graft_model* m,
                             const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y,
                             graft_step_result* r) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->train_step(*api, m, *ctx, *x, *y, *r); });
  }
  static graft_status* eval(void* self, const graft_model_api* api, graft_model* m,
                            const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y,
                            graft_step_result* r) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->eval_step(*api, m, *ctx, *x, *y, *r); });
  }
  static graft_status* plan(void* self, const graft_layer_info* layers, int64_t n,
                            int64_t global_batch, graft_plan* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] { h->impl->plan(layers, n, global_batch, *out); });
  }
  static void batch_rows(void* self, int64_t rows, int32_t training, int64_t* begin, int64_t* end) {
    holder<T>(self)->impl->batch_rows(rows, training != 0, *begin, *end);
  }
  static graft_status* report(void* self, graft_strategy_report* out) {
    auto* h = holder<T>(self);
    return guard(h->host, [&] {
      typename T::Report r = h->impl->report();
      h->message = std::move(r.message);
      h->names.clear();
      h->values.clear();
      for (auto& [name, value] : r.values) {
        h->names.push_back(std::move(name));
        h->values.push_back(value);
      }
      h->name_ptrs.clear();
      for (const std::string& name : h->names) h->name_ptrs.push_back(name.c_str());
      out->message = h->message.empty() ? nullptr : h->message.c_str();
      out->n_values = static_cast<int64_t>(h->values.size());
      out->names = h->name_ptrs.data();
      out->values = h->values.data();
    });
  }
  static const graft_strategy_vtable* vtable() {
    static const graft_strategy_vtable v{
        sizeof(graft_strategy_vtable), create, destroy<T>, train, eval, plan, batch_rows, report};
    return &v;
  }
};

}  // namespace graft::detail
