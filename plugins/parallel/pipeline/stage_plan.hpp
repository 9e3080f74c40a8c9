// Which top-level layers form which pipeline stage, and in what order a stage runs its
// micro-batches. Pure functions of the layer survey and the options, so plan() on every rank
// (and `graft validate --world N`, which has no communicator) reaches the same answer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::pipeline {

// Stage s holds top-level layers [first[s], first[s + 1]); first has stages + 1 entries.
struct StageBounds {
  std::vector<int64_t> first;
  int32_t stages() const { return static_cast<int32_t>(first.size()) - 1; }
  int64_t begin(int32_t s) const { return first[size_t(s)]; }
  int64_t end(int32_t s) const { return first[size_t(s) + 1]; }
};

// Balanced by parameter count: the contiguous split into `stages` non-empty stages whose
// largest stage holds the fewest parameters; among those, each stage takes as many layers as
// that bound allows, so a parameter-free layer (an activation, dropout) stays with the layer
// before it. Throws graft::Error (invalid argument) when there are more stages than layers.
StageBounds balance_stages(const std::vector<int64_t>& parameters, int32_t stages);

// The explicit `stages` option: inclusive [first, last] layer pairs, flattened ([0, 3, 4, 7]:
// layers 0..3, then 4..7; TOML options hold flat integer lists). They must cover layers
// 0 .. n_layers - 1 in order, each exactly once; anything else throws graft::Error naming the
// key and the fix.
StageBounds explicit_stages(const std::vector<int64_t>& pairs, int64_t n_layers);

// "[0, 3, 4, 7]", as the user wrote it
std::string format_pairs(const std::vector<int64_t>& pairs);

// One step of a stage's schedule: the forward or the backward of micro-batch `micro`.
struct Op {
  bool forward;
  int64_t micro;
};

// Op i (0 <= i < 2 * micro) of a stage's order. gpipe: every forward, then every backward.
// 1f1b: min(stages - stage - 1 (+ extra but on the last stage), micro) warm-up forwards, then
// one forward and one backward in turn, then the remaining backwards; a stage never holds more
// than in_flight(...) micro-batches between their forward and backward. Computed, not listed:
// no allocation.
Op schedule_op(bool one_f_one_b, int32_t stage, int32_t stages, int64_t micro, int64_t i,
               int32_t extra = 0);

// Micro-batches in flight at once on a stage: the model's buffer sets (plan.slots).
int32_t in_flight(bool one_f_one_b, int32_t stage, int32_t stages, int64_t micro,
                  int32_t extra = 0);

// The micro-batches a global batch of `rows` is split into: ceil(rows / requested) rows each,
// so there may be fewer than requested (10 rows as 4 -> 3, 3, 3, 1; 5 rows as 4 -> 2, 2, 1).
struct MicroBatches {
  int64_t size = 0, count = 0, rows = 0;
  MicroBatches(int64_t global_rows, int64_t requested);
  int64_t begin(int64_t k) const { return k * size; }
  int64_t rows_of(int64_t k) const { return begin(k) + size <= rows ? size : rows - begin(k); }
};

// The bubble of a p-stage pipeline running m micro-batches: (p - 1) / (m + p - 1).
inline double predicted_bubble(int32_t stages, int64_t micro) {
  return micro < 1 ? 0.0 : double(stages - 1) / double(micro + stages - 1);
}

}  // namespace graft::pipeline
