// For the fuzz targets of dataset readers: open a reader on the scratch folder as the trainer
// would, and read every sample (a bounded number) of a split.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "config/options.hpp"
#include "data/dataset_instance.hpp"
#include "fuzz_support.hpp"

namespace graft::fuzz {

// Opens `reader` with the TOML options `toml` (its path options relative to the scratch
// folder) on `split`, and reads up to `most` samples in batches of 7 (a last short one too).
inline void read_split(const std::string& reader, const std::string& toml, const std::string& split,
                       int64_t most) {
  const runtime::PluginRecord& record = builtin_registry().get(GRAFT_KIND_DATASET, reader);
  toml::table table = toml::parse(toml, std::string("fuzz options"));
  runtime::BoundOptions options = runtime::bind_options(*record.entry, &table, "[data]", {});
  const std::string config_dir = scratch_dir().string(), cache = (scratch_dir() / "cache").string();
  graft_dataset_args args{
      sizeof(graft_dataset_args), split.c_str(), config_dir.c_str(), cache.c_str(), 1, 0, 1};
  runtime::DatasetInstance dataset(record, options, args);
  const graft_dataset_info& info = dataset.info();
  const int64_t samples = std::min(info.samples, most);
  const int64_t batch = 7;
  for (int64_t first = 0; first < samples; first += batch) {
    const int64_t n = std::min(batch, samples - first);
    std::vector<int64_t> indices(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), first);
    std::vector<int64_t> x_shape{n}, y_shape{n};
    for (int d = 0; d < info.input.ndim; ++d) x_shape.push_back(info.input.dims[d]);
    for (int d = 0; d < info.target.shape.ndim; ++d) y_shape.push_back(info.target.shape.dims[d]);
    HostTensor x(x_shape, DLDataType{kDLFloat, 32, 1}), y(y_shape, info.target.dtype);
    dataset.read(indices.data(), n, x.tensor, y.tensor);
    // What a reader promises the trainer (dataset.h): finite inputs, labels within classes.
    const auto* xs = reinterpret_cast<const float*>(x.storage.data());
    for (size_t i = 0; i < x.storage.size() / sizeof(float); ++i)
      GRAFT_FUZZ_REQUIRE(std::isfinite(xs[i]), "an input value is not finite");
    if (info.target.classes > 0) {
      const auto* labels = reinterpret_cast<const int32_t*>(y.storage.data());
      for (size_t i = 0; i < y.storage.size() / sizeof(int32_t); ++i)
        GRAFT_FUZZ_REQUIRE(labels[i] >= 0 && labels[i] < info.target.classes,
                           "a label lies outside [0, classes)");
    }
  }
}

}  // namespace graft::fuzz
