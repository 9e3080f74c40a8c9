// Saving and restoring a model's parameters, optimizer state and training position.
#include "train/checkpoint.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train/parameters_gather.hpp"
#include "train/safetensors.hpp"
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

}  // namespace

fs::path latest_checkpoint(const fs::path& folder) {
  std::vector<int64_t> steps = complete_steps(folder);
  if (steps.empty()) return {};
  return folder / ("step_" + std::to_string(steps.back()) + ".safetensors");
}

fs::path save_checkpoint(const fs::path& folder, Model& model, const TrainingPosition& position,
                         int64_t keep, Communicator* comm) {
  // Parameters first, then each optimizer state: the order of the tensors in the file.
  const std::vector<WholeTensor> whole = gather_whole_parameters(model, comm, true);
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
  if (!fs::exists(tensor_file)) throw UserError("checkpoint " + tensor_file.string() + " not found");
  if (!fs::exists(meta_file))
    throw UserError("checkpoint " + tensor_file.string() + " has no " + meta_file.filename().string() +
                    " beside it, so it is incomplete; resume from an earlier step");
  nlohmann::json meta;
  try {
    std::ifstream in(meta_file);
    meta = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw UserError("checkpoint " + meta_file.string() + " is not valid JSON: " + e.what());
  }
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
  TrainingPosition pos;
  try {
    pos.step = meta.at("step").get<int64_t>();
    pos.epoch = meta.at("epoch").get<int64_t>();
    pos.batch_in_epoch = meta.at("batch_in_epoch").get<int64_t>();
    pos.seed = meta.at("seed").get<uint64_t>();
    model.set_optimizer_steps(meta.at("optimizer_steps").get<int64_t>());
  } catch (const std::exception& e) {
    throw UserError("checkpoint " + meta_file.string() + " lacks a field: " + e.what());
  }
  return pos;
}

}  // namespace graft::runtime
