// The one include a plugin needs: base classes, the C trampolines generated from them, and
// GRAFT_PLUGIN_LIBRARY, the single explicit registration line (no static initializers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graft/cpp/adapters.hpp"
#include "graft/cpp/core.hpp"
#include "graft/cpp/kinds.hpp"

#ifndef GRAFT_PLUGIN_CUDA_VERSION
#define GRAFT_PLUGIN_CUDA_VERSION "none"
#endif

namespace graft {

// One registration: what GRAFT_PLUGIN_LIBRARY lists.
struct EntryDef {
  graft_kind kind;
  std::string name, summary;
  std::vector<OptionDef> options;
  const void* vtable;
  uint32_t flags = 0;
};

// T declares `static std::vector<graft::OptionDef> options()`.
template <class T>
EntryDef layer(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_LAYER,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::LayerAdapter<T>::vtable(),
          flags};
}
template <class T>
EntryDef activation(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_ACTIVATION,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::ActivationAdapter<T>::vtable(),
          flags};
}
template <class T>
EntryDef loss(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_LOSS,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::LossAdapter<T>::vtable(),
          flags};
}
template <class T>
EntryDef optimizer(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_OPTIMIZER,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::OptimizerAdapter<T>::vtable(),
          flags};
}
template <class T>
EntryDef dataset(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_DATASET,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::DatasetAdapter<T>::vtable(),
          flags};
}
template <class T>
EntryDef strategy(std::string name, std::string summary, uint32_t flags = 0) {
  return {GRAFT_KIND_STRATEGY,
          std::move(name),
          std::move(summary),
          T::options(),
          detail::StrategyAdapter<T>::vtable(),
          flags};
}

namespace detail {

// Owns the C tables a library hands out; built on the first call of the entry symbol.
class Library {
 public:
  Library(const char* name, const char* version, std::vector<EntryDef> defs)
      : name_(name), version_(version), defs_(std::move(defs)) {
    build_ = std::string("compiler ") + compiler() + "; C++ " + std::to_string(__cplusplus) +
             "; cuda " + GRAFT_PLUGIN_CUDA_VERSION;
    specs_.resize(defs_.size());
    for (size_t i = 0; i < defs_.size(); ++i) {
      for (const OptionDef& o : defs_[i].options) specs_[i].push_back(o.spec());
      const EntryDef& d = defs_[i];
      entries_.push_back(graft_plugin_entry{sizeof(graft_plugin_entry), d.kind, d.name.c_str(),
                                            d.summary.c_str(), specs_[i].size(), specs_[i].data(),
                                            d.vtable, d.flags});
    }
    info_ = graft_plugin_info{
        sizeof(graft_plugin_info), GRAFT_ABI_MAJOR, GRAFT_ABI_MINOR, name_.c_str(),
        version_.c_str(),          build_.c_str(),  entries_.size(), entries_.data()};
  }
  const graft_plugin_info* info() const { return &info_; }

 private:
  static const char* compiler() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
  }
  std::string name_, version_, build_;
  std::vector<EntryDef> defs_;
  std::vector<std::vector<graft_option_spec>> specs_;
  std::vector<graft_plugin_entry> entries_;
  graft_plugin_info info_{};
};

}  // namespace detail
}  // namespace graft

#define GRAFT_EXPORT __attribute__((visibility("default")))

// GRAFT_PLUGIN_LIBRARY("my_layers", "0.1.0", graft::layer<Swish>("swish", "..."), ...)
#define GRAFT_PLUGIN_LIBRARY(NAME, VERSION, ...)                                        \
  extern "C" GRAFT_EXPORT const graft_plugin_info* graft_get_plugin_info(               \
      const graft_host_api* /*host*/) {                                                 \
    static const ::graft::detail::Library graft_library_(NAME, VERSION, {__VA_ARGS__}); \
    return graft_library_.info();                                                       \
  }
