// The options of a pipeline schedule, which the pipeline and mesh strategies both take: how many
// micro-batches, in which order, with how much warm-up slack, over which stages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>

namespace graft::pipeline {

// micro_batches' default, least value and meaning differ between the two; the rest is shared.
inline std::vector<OptionDef> schedule_options(int64_t micro_default, int64_t micro_least,
                                               const std::string& micro_help) {
  return {
      option_int("micro_batches", micro_default, micro_help).range(micro_least, 8192),
      option_string("schedule", "1f1b",
                    "gpipe: all forwards, then all backwards (holds every micro-batch); "
                    "1f1b: one forward, one backward in turn (holds at most p - stage)",
                    "gpipe|1f1b"),
      option_int("warmup_extra", 0,
                 "1f1b only: forwards every stage but the last runs ahead of the textbook "
                 "warm-up, each holding one more micro-batch of activations; 1 gives the stages "
                 "slack to absorb a late message or a slow micro-batch (on this 2-core machine "
                 "the 2-stage bubble at 16 micro-batches fell from ~18% to ~13%)")
          .range(0, 64),
      option_int_list("stages", {},
                      "inclusive top-level layer ranges, one [first, last] pair per stage (the "
                      "ranks of pipeline coordinate s run stage s): [[0, 3], [4, 7]] (or flat, "
                      "[0, 3, 4, 7]) is layers 0..3 then 4..7; empty: balanced by parameter "
                      "count"),
  };
}

}  // namespace graft::pipeline
