// ZeRO's layout of one rank's parameters over the data group (graft_model_api::zero_unit):
// consecutive top-level layers grouped into units (from the last layer back, each closed once
// it holds at least unit_floats, as data_parallel closes its buckets), each unit padded with
// zeros to `parts` equal parts. Part `index` of every unit is this rank's: the only optimizer
// state it keeps. A pure function of the parameters' sizes, so every data rank agrees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace graft::runtime {

struct ZeroUnit {
  int64_t begin = 0, end = 0;  // top-level layers
  size_t first = 0;            // its first float in the padded buffers
  size_t part = 0;             // floats per part; the unit spans parts * part floats
  size_t state = 0;            // where this rank's part starts in the compact state buffers
  int64_t part_shape = 0;      // `part`, as the shape of a 1-D view of one part
};

struct ZeroLayout {
  int32_t parts = 1, index = 0;
  std::vector<ZeroUnit> units;
  std::vector<size_t> offsets;  // per parameter, its first float in the padded buffers
  size_t floats = 0;            // of the padded parameter and gradient buffers
  size_t state_floats = 0;      // of each compact optimizer state buffer

  const int64_t& part_shape(size_t u) const { return units[u].part_shape; }
  // The floats [first, last) of unit u this rank owns.
  size_t own_first(size_t u) const { return units[u].first + size_t(index) * units[u].part; }
  size_t own_last(size_t u) const { return own_first(u) + units[u].part; }
};

// layer_of[i] and numel[i] for each parameter in store order (held ones only: another stage's
// take no floats), all in top-level layers [first_layer, end_layer), which the units cover.
ZeroLayout zero_layout(const std::vector<int64_t>& layer_of, const std::vector<size_t>& numel,
                       int64_t first_layer, int64_t end_layer, size_t unit_floats, int32_t parts,
                       int32_t index);

}  // namespace graft::runtime
