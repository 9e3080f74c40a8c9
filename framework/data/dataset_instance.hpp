// One created dataset plugin object: the runtime's side of graft_dataset_vtable, which checks
// what the plugin describes and turns its statuses into exceptions naming the plugin.
#pragma once

#include <string>
#include <vector>

#include "config/options.hpp"
#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::runtime {

class DatasetInstance {
 public:
  // Creates the plugin object and reads its description. Throws UserError naming
  // "dataset 'idx' (graft_idx.so)" when the plugin refuses or describes nonsense.
  DatasetInstance(const PluginRecord& record, const BoundOptions& options,
                  const graft_dataset_args& args);
  ~DatasetInstance();
  DatasetInstance(const DatasetInstance&) = delete;
  DatasetInstance& operator=(const DatasetInstance&) = delete;

  // Samples, the per-sample input shape (float32) and the targets.
  const graft_dataset_info& info() const { return info_; }
  // Bytes of one sample's input and target.
  size_t input_bytes() const;
  size_t target_bytes() const;
  // x: (n, input...) float32, y: (n, target...) on the CPU. One thread at a time.
  void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y);
  // "dataset 'idx' (graft_idx.so)", for messages.
  const std::string& who() const { return who_; }

  // A dataset of token sequences (dataset.h's decode and encode, ABI 1.3): text <-> token ids
  // for generation. The others throw UserError saying the dataset holds no text.
  bool has_text() const { return has_text_; }
  std::string decode(const int32_t* ids, int64_t n) const;
  std::vector<int32_t> encode(const std::string& text) const;

 private:
  const graft_dataset_vtable* vtable_ = nullptr;
  void* self_ = nullptr;
  graft_dataset_info info_{};
  std::string who_;
  bool has_text_ = false;
};

}  // namespace graft::runtime
