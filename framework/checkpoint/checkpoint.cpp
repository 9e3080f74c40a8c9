// Saving and restoring a model's parameters, optimizer state and training position.
#include "checkpoint/checkpoint.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/parameters_gather.hpp"
#include "checkpoint/safetensors.hpp"
#include "session/session.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

namespace {

// "(784, 512)"
std::string dims_string(const std::vector<int64_t>& dims) {
  std::string out;
  for (int64_t d : dims) out += (out.empty() ? "" : ", ") + std::to_string(d);
  return "(" + out + (dims.size() == 1 ? ",)" : ")");
}

// Steps of the complete checkpoints in a folder, ascending.
std::vector<int64_t> complete_steps(const fs::path& folder) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(folder, ec)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("step_", 0) != 0 || item.path().extension() != ".json") continue;
    try {
      int64_t step = std::stoll(name.substr(5));
      fs::path tensors = folder / ("step_" + std::to_string(step) + ".safetensors");
      if (fs::exists(tensors)) steps.push_back(step);
    } catch (const std::exception&) {
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// The field `key` of `meta`, which must be a non-negative integer no larger than `most`.
uint64_t count_field(const nlohmann::json& meta, const char* key, uint64_t most,
                     const std::string& where) {
  auto it = meta.find(key);
  if (it == meta.end())
    throw UserError(where + " lacks the field \"" + std::string(key) + "\"" + kDamagedCheckpoint);
  const bool fits = it->is_number_unsigned() ? it->get<uint64_t>() <= most
                                             : it->is_number_integer() && it->get<int64_t>() >= 0;
  if (!fits)
    throw UserError(where + ": field \"" + std::string(key) + "\" is " + shown(*it) +
                    ", not a non-negative integer" +
                    (it->is_number_unsigned() ? " below 2^63" : "") + kDamagedCheckpoint);
  return it->is_number_unsigned() ? it->get<uint64_t>() : uint64_t(it->get<int64_t>());
}

}  // namespace

CheckpointMeta read_checkpoint_meta(const std::string& text, const std::string& where) {
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    if (why.size() > 200) why = why.substr(0, 197) + "...";
    throw UserError(where + " is not valid JSON (" + why + ")" + kDamagedCheckpoint);
  }
  if (!meta.is_object())
    throw UserError(where + " holds " + shown(meta) + ", not a JSON object" + kDamagedCheckpoint);
  constexpr uint64_t kInt64Max = uint64_t(INT64_MAX);
  CheckpointMeta out;
  out.position.step = int64_t(count_field(meta, "step", kInt64Max, where));
  out.position.epoch = int64_t(count_field(meta, "epoch", kInt64Max, where));
  out.position.batch_in_epoch = int64_t(count_field(meta, "batch_in_epoch", kInt64Max, where));
  out.position.seed = count_field(meta, "seed", UINT64_MAX, where);
  out.optimizer_steps = int64_t(count_field(meta, "optimizer_steps", kInt64Max, where));
  return out;
}

fs::path latest_checkpoint(const fs::path& folder) {
  std::vector<int64_t> steps = complete_steps(folder);
  if (steps.empty()) return {};
  return folder / ("step_" + std::to_string(steps.back()) + ".safetensors");
}

fs::path save_checkpoint(const fs::path& folder, Model& model, const TrainingPosition& position,
                         int64_t keep, Communicator* comm, const GatherGroups* groups) {
  // Parameters first, then each optimizer state: the order of the tensors in the file.
  const std::vector<WholeTensor> whole = groups ? gather_whole_parameters(model, *groups, true)
                                                : gather_whole_parameters(model, comm, true);
  const std::string stem = "step_" + std::to_string(position.step);
  const fs::path tensor_file = folder / (stem + ".safetensors");
  if (comm && comm->rank() != 0) return tensor_file;
  fs::create_directories(folder);
  std::vector<NamedTensor> tensors;
  for (const WholeTensor& w : whole) tensors.push_back({w.name, w.shape, w.values.data()});
  const auto& states = model.optimizer_state_names();
  write_safetensors(tensor_file, tensors,
                    {{"format", "graft"}, {"step", std::to_string(position.step)}});
  nlohmann::ordered_json meta = {{"step", position.step},
                                 {"epoch", position.epoch},
                                 {"batch_in_epoch", position.batch_in_epoch},
                                 {"seed", position.seed},
                                 {"optimizer_steps", model.optimizer_steps()},
                                 {"optimizer_state", states},
                                 {"tensors", stem + ".safetensors"}};
  write_file_atomically(folder / (stem + ".json"), meta.dump(2) + "\n");

  if (keep > 0) {
    std::vector<int64_t> steps = complete_steps(folder);
    for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) {
      const std::string old = "step_" + std::to_string(steps[i]);
      std::error_code ec;
      fs::remove(folder / (old + ".json"), ec);  // the marker first: never a half checkpoint
      fs::remove(folder / (old + ".safetensors"), ec);
    }
  }
  return tensor_file;
}

TrainingPosition load_checkpoint(const fs::path& given, Model& model) {
  fs::path tensor_file = given;
  if (fs::is_directory(given)) {
    fs::path folder = fs::is_directory(given / "checkpoints") ? given / "checkpoints" : given;
    tensor_file = latest_checkpoint(folder);
    if (tensor_file.empty())
      throw UserError("no complete checkpoint in " + folder.string() +
                      " (a checkpoint is a step_N.safetensors with its step_N.json)");
  } else if (given.extension() == ".json") {
    tensor_file = fs::path(given).replace_extension(".safetensors");
  }
  fs::path meta_file = fs::path(tensor_file).replace_extension(".json");
  if (!fs::exists(tensor_file))
    throw UserError("checkpoint " + tensor_file.string() + " not found");
  if (!fs::exists(meta_file))
    throw UserError("checkpoint " + tensor_file.string() + " has no " +
                    meta_file.filename().string() +
                    " beside it, so it is incomplete; resume from an earlier step");
  std::ifstream in(meta_file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw UserError("checkpoint " + meta_file.string() + ": cannot read it");
  const CheckpointMeta meta = read_checkpoint_meta(text.str(), "checkpoint " + meta_file.string());
  SafetensorsFile file = read_safetensors(tensor_file);
  // The file holds whole tensors; this rank keeps its part of each.
  keep_own_parts(model, [&](const std::string& name, const std::vector<int64_t>& expected) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end())
      throw UserError("checkpoint " + tensor_file.string() + " has no tensor '" + name +
                      "': it was saved from a different model or optimizer");
    if (it->second.shape != expected)
      throw UserError("checkpoint " + tensor_file.string() + ": tensor '" + name + "' has shape " +
                      dims_string(it->second.shape) + " but the model's is " +
                      dims_string(expected) + ": the config's model differs from the one saved");
    return static_cast<const float*>(it->second.values.data());
  });
  model.set_optimizer_steps(meta.optimizer_steps);
  return meta.position;
}

Checkpoints::Checkpoints(const Session& session, int64_t batches_per_epoch)
    : config_(session.config.checkpoint),
      folder_(session.run_dir / "checkpoints"),
      model_(*session.model),
      comm_(session.comm()),
      groups_(session.gather_groups()),
      write_(session.write_outputs),
      seed_(session.config.run.seed),
      batches_per_epoch_(batches_per_epoch) {}

TrainingPosition Checkpoints::resume() {
  TrainingPosition position;
  position.seed = seed_;
  if (config_.resume.empty()) return position;
  const fs::path from =
      config_.resume == "latest" ? latest_checkpoint(folder_) : fs::path(config_.resume);
  if (from.empty()) return position;
  from_ = position = load_checkpoint(from, model_);
  resumed_ = true;
  return position;
}

std::string Checkpoints::resumed_from() const {
  if (!resumed_) return "";
  return "resumed from step " + std::to_string(from_.step) + " (epoch " +
         std::to_string(from_.epoch) + ", batch " + std::to_string(from_.batch_in_epoch) + ")";
}

void Checkpoints::maybe_save(const TrainingPosition& at, RunPoint point) {
  const int64_t every = config_.every;
  const bool due = point == RunPoint::run_end ||
                   (point == RunPoint::epoch_end ? every == 0 : every > 0 && at.step % every == 0);
  // The condition must not depend on the rank, or the other ranks would wait for rank 0.
  if (!due || !write_ || !config_.enabled) return;
  TrainingPosition position{at.step, at.epoch, at.batch_in_epoch, seed_};
  if (position.batch_in_epoch >= batches_per_epoch_) {  // an epoch's end continues with the next
    position.epoch += 1;
    position.batch_in_epoch = 0;
  }
  save_checkpoint(folder_, model_, position, config_.keep, comm_, &groups_);
}

}  // namespace graft::runtime
