// The mesh layouts `graft verify --layouts` trains: "2x2x1" is data 2 x pipeline 2 x tensor 1
// under the mesh strategy, ":z1" adds [parallel] zero = 1 and ":gpipe" (or ":1f1b") the
// schedule; "all" is every factorization of the job's ranks, each with every zero level where
// it has a data axis and both schedules where it has stages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::cli {

struct Layout {
  int32_t data = 1, pipeline = 1, tensor = 1, zero = 0;
  std::string schedule;  // "" (the strategy's default), "gpipe" or "1f1b"

  int32_t ranks() const { return data * pipeline * tensor; }
  std::string name() const;  // "mesh 2x2x1 z1 gpipe"
  // The --set overrides that train it: parallel.strategy=mesh, parallel.data=2, ...
  std::vector<std::string> overrides() const;
};

// Parses --layouts for a job of `world` ranks; a malformed entry or one whose degrees do not
// multiply to the world is a UserError naming it and the fix.
std::vector<Layout> parse_layouts(const std::string& text, int32_t world);

}  // namespace graft::cli
