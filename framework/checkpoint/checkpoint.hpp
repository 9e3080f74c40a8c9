// Checkpoints (DESIGN.md §7): checkpoints/step_N.safetensors with whole parameters and
// optimizer state, plus step_N.json with the training position. The .json is written last, so
// a checkpoint counts only when both files exist. Tensors are always whole (gathered from
// tensor-parallel parts and pipeline stages), so any strategy on any world can resume them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "checkpoint/parameters_gather.hpp"
#include "comm/communicator.hpp"
#include "config/config.hpp"
#include "model/model.hpp"

namespace graft::runtime {

class Session;

struct TrainingPosition {
  int64_t step = 0;            // optimizer steps done
  int64_t epoch = 0;           // the epoch to continue in
  int64_t batch_in_epoch = 0;  // batches of that epoch already trained
  uint64_t seed = 0;
};

// Where a training run stands when a duty that falls due now and then (a checkpoint, a test
// evaluation) is asked whether it does.
enum class RunPoint {
  after_step,  // each optimizer step
  epoch_end,   // an epoch's batches ran out and the run goes on
  run_end,     // the last step, or early stopping: nothing follows
};

// What step_N.json says: where training stopped, and the optimizer's step count.
struct CheckpointMeta {
  TrainingPosition position;
  int64_t optimizer_steps = 0;
};

// Parses a step_N.json's text; `where` names it in messages ("checkpoint runs/x/step_8.json").
// Any text that is not such a file is a UserError saying what is wrong with it, never another
// exception (a fuzz target calls this directly).
CheckpointMeta read_checkpoint_meta(const std::string& text, const std::string& where);

// Saves and then deletes all but the newest `keep` checkpoints (keep <= 0 keeps all).
// Collective over the world `comm` (NULL: a world of one) and the mesh's `groups` the whole
// tensors are gathered over: every rank calls it, rank 0 alone writes.
std::filesystem::path save_checkpoint(const std::filesystem::path& folder, Model& model,
                                      const TrainingPosition& position, int64_t keep,
                                      Communicator* comm = nullptr,
                                      const GatherGroups* groups = nullptr);

// Loads parameters and optimizer state into the model; returns where training stopped.
// `path` is a step_N.safetensors or step_N.json file, or a run folder / checkpoints folder
// (its newest complete checkpoint). Every rank reads the file and keeps its own parts; no
// communication.
TrainingPosition load_checkpoint(const std::filesystem::path& path, Model& model);

// The newest complete checkpoint in a checkpoints folder, or "" when there is none.
std::filesystem::path latest_checkpoint(const std::filesystem::path& folder);

// A training run's checkpoints under <run>/checkpoints: every [checkpoint] `every` steps (at
// each epoch's end when every = 0) and always at the run's end, the newest `keep` kept; and
// the run's start from one of them when [checkpoint] resume asks.
class Checkpoints {
 public:
  Checkpoints(const Session& session, int64_t batches_per_epoch);

  // Loads this run's newest checkpoint (resume = "latest"; none yet: a fresh start) or the one
  // resume names into the model. Returns where training continues.
  TrainingPosition resume();
  bool resumed() const { return resumed_; }
  // "resumed from step 20 (epoch 1, batch 4)", or "" for a fresh start.
  std::string resumed_from() const;

  // Saves `at` when a checkpoint falls due at `point`. Collective: every rank calls it at the
  // same points (the checkpoint gathers whole tensors from parts and stages); rank 0 writes.
  void maybe_save(const TrainingPosition& at, RunPoint point);

 private:
  const CheckpointConfig& config_;
  std::filesystem::path folder_;
  Model& model_;
  Communicator* comm_;
  GatherGroups groups_;
  bool write_;     // SessionOptions::write_outputs: `graft verify` saves nothing
  uint64_t seed_;  // this run's, which its checkpoints record
  int64_t batches_per_epoch_;
  bool resumed_ = false;
  TrainingPosition from_;
};

}  // namespace graft::runtime
