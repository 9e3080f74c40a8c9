// Grouping layers into ZeRO units and padding each to equal parts.
#include "model/zero_layout.hpp"

#include <algorithm>

namespace graft::runtime {

ZeroLayout zero_layout(const std::vector<int64_t>& layer_of, const std::vector<size_t>& numel,
                       int64_t first_layer, int64_t end_layer, size_t unit_floats, int32_t parts,
                       int32_t index) {
  ZeroLayout z;
  z.parts = std::max(parts, 1);
  z.index = index;
  std::vector<size_t> per_layer(size_t(std::max<int64_t>(end_layer, 0)), 0);
  for (size_t i = 0; i < numel.size(); ++i) per_layer[size_t(layer_of[i])] += numel[i];
  // Units from the last layer back (backward finishes them in that order), then reversed so
  // they lie in layer order, as the buffers do. Layers without floats join a unit all the same,
  // so the unit's lowest layer is where backward is done with it.
  std::vector<ZeroUnit> backwards;
  int64_t end = end_layer;
  size_t floats = 0;
  for (int64_t l = end_layer - 1; l >= first_layer; --l) {
    floats += per_layer[size_t(l)];
    if (floats < std::max<size_t>(unit_floats, 1) && l > first_layer) continue;
    ZeroUnit u;
    u.begin = l;
    u.end = end;
    u.part = (floats + size_t(z.parts) - 1) / size_t(z.parts);
    u.part_shape = int64_t(u.part);
    backwards.push_back(u);
    end = l;
    floats = 0;
  }
  z.units.assign(backwards.rbegin(), backwards.rend());
  // Lay the units out one after another, each `parts * part` floats long.
  size_t at = 0, state = 0;
  for (ZeroUnit& u : z.units) {
    u.first = at;
    u.state = state;
    at += u.part * size_t(z.parts);
    state += u.part;
  }
  z.floats = at;
  z.state_floats = state;
  // Each parameter at its unit's start plus the floats of the parameters before it there.
  z.offsets.resize(numel.size());
  size_t unit = 0, within = 0;
  for (size_t i = 0; i < numel.size(); ++i) {
    while (unit + 1 < z.units.size() && layer_of[i] >= z.units[unit].end) {
      ++unit;
      within = 0;
    }
    z.offsets[i] = z.units.empty() ? 0 : z.units[unit].first + within;
    within += numel[i];
  }
  return z;
}

}  // namespace graft::runtime
