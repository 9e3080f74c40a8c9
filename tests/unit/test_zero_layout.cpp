// ZeRO's units: whole layers grouped from the last back, each padded to equal parts, every
// parameter inside its unit in order, and each rank's compact state covering its parts only.
#include "model/zero_layout.hpp"
#include "test_support.hpp"

using graft::runtime::zero_layout;
using graft::runtime::ZeroLayout;

TEST_CASE("ZeRO units close at the unit size from the last layer, padded to equal parts") {
  // Layers 0..3 with 10, 0 (an activation), 7 and 5 floats; units of at least 8 floats.
  const std::vector<int64_t> layer_of = {0, 0, 2, 3};
  const std::vector<size_t> numel = {6, 4, 7, 5};
  const ZeroLayout z = zero_layout(layer_of, numel, 0, 4, 8, 4, 1);
  REQUIRE(z.units.size() == 2);
  // Backward: layer 3 (5) + layer 2 (7) = 12 >= 8 closes [2, 4); layers 1, 0 close [0, 2).
  CHECK(z.units[0].begin == 0);
  CHECK(z.units[0].end == 2);
  CHECK(z.units[1].begin == 2);
  CHECK(z.units[1].end == 4);
  CHECK(z.units[0].part == 3);  // 10 floats in 4 parts of 3 (2 of padding)
  CHECK(z.units[1].part == 3);  // 12 floats in 4 parts of 3
  CHECK(z.units[1].first == 12);
  CHECK(z.floats == 24);
  CHECK(z.state_floats == 6);  // one part of each unit
  CHECK(z.offsets == std::vector<size_t>{0, 6, 12, 19});
  CHECK(z.own_first(1) == 15);
  CHECK(z.own_last(1) == 18);
  CHECK(z.units[1].state == 3);
}

TEST_CASE("every float of every unit belongs to exactly one rank's part") {
  const std::vector<int64_t> layer_of = {0, 1, 1, 2, 4};
  const std::vector<size_t> numel = {101, 13, 7, 64, 3};
  for (int32_t parts : {1, 2, 3, 8}) {
    std::vector<int> owners(zero_layout(layer_of, numel, 0, 5, 50, parts, 0).floats, 0);
    for (int32_t r = 0; r < parts; ++r) {
      const ZeroLayout z = zero_layout(layer_of, numel, 0, 5, 50, parts, r);
      for (size_t u = 0; u < z.units.size(); ++u)
        for (size_t f = z.own_first(u); f < z.own_last(u); ++f) ++owners[f];
    }
    for (int count : owners) CHECK(count == 1);
  }
}

TEST_CASE("units cover only the given layers (a pipeline stage's)") {
  const ZeroLayout z = zero_layout({2, 3}, {5, 5}, 2, 4, 100, 2, 1);
  REQUIRE(z.units.size() == 1);
  CHECK(z.units[0].begin == 2);
  CHECK(z.units[0].end == 4);
  CHECK(z.units[0].part == 5);
}

TEST_CASE("a unit size of 0 makes one unit per layer; parameters stay in store order") {
  const ZeroLayout z = zero_layout({0, 1, 1}, {4, 2, 2}, 0, 2, 0, 2, 0);
  REQUIRE(z.units.size() == 2);
  CHECK(z.offsets == std::vector<size_t>{0, 4, 6});
  CHECK(z.units[1].part == 2);
}
