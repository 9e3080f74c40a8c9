// graft validate CONFIG: loads every plugin, checks every key and shape, prints the model with
// parameter counts and planned memory. Trains nothing.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "model/tensor_view.hpp"

namespace graft::cli {

namespace {
using runtime::human_bytes;

const char* shard_name(int32_t mode) {
  switch (mode) {
    case GRAFT_SHARD_COLUMN: return "column";
    case GRAFT_SHARD_ROW: return "row";
    case GRAFT_SHARD_PART: return "part";
    case GRAFT_SHARD_PAIR: return "pair";
    default: return "whole";
  }
}

// Which of the config's plugins have CUDA kernels ([run] device = "cuda" needs all of them).
void print_cuda_coverage(const runtime::Session& session) {
  std::vector<std::string> without;
  size_t total = 0, missing = 0;
  auto count = [&](const std::string& name, uint32_t flags) {
    ++total;
    if (flags & GRAFT_ENTRY_HAS_CUDA) return;
    ++missing;
    if (std::find(without.begin(), without.end(), name) == without.end()) without.push_back(name);
  };
  for (const runtime::LayerSurvey& layer : session.survey)
    if (layer.type != "residual") count(layer.type, layer.flags);
  for (const auto& [kind, name] : {std::pair{GRAFT_KIND_LOSS, session.config.loss.type},
                                   std::pair{GRAFT_KIND_OPTIMIZER, session.config.optimizer.type}})
    count(name, session.registry.get(kind, name).entry->flags);
  std::string list;
  for (const std::string& name : without) list += (list.empty() ? "" : ", ") + name;
  std::printf("CUDA kernels: %zu of %zu plugins%s\n", total - missing, total,
              without.empty() ? "" : (" (none in " + list + ")").c_str());
}

// Rank 0's session serves itself; any other rank's model is built planned-only in a session
// of its own, since its stage and shard change which buffers it plans. Ranks equal on the
// pipeline and tensor axes (and, with ZeRO, on the data axis) plan the same model, so one
// session serves them all; beyond kMaxModels distinct ones the survey's estimate is printed.
constexpr size_t kMaxModels = 64;

struct RankMemory {
  bool built = false;
  runtime::Model::MemorySplit split;
  double estimate = 0.0;  // bytes, from the survey, when not built
};

// The estimate from the survey alone: the rank's parameters (a shard's part), their gradients
// and optimizer state, and per slot the outputs and input gradients of its layers.
double estimated_bytes(const runtime::Session& session, const runtime::LayoutPlan& layout,
                       double& parameters, std::string& layers) {
  const std::vector<runtime::LayerSurvey>& survey = session.survey;
  const graft_plan& plan = layout.plan;
  const double states = double(session.model->optimizer_state_names().size());
  double activations = 0.0;
  for (size_t i = 0; i < survey.size(); ++i) {
    const graft_layer_placement& place = layout.layers[i];
    if (place.stage != plan.stage_index) continue;
    const bool sharded = place.shard != GRAFT_SHARD_NONE && plan.shards > 1;
    layers += (layers.empty() ? "" : ", ") + std::to_string(i) + " " + survey[i].type;
    if (sharded)
      layers += " (" + std::string(shard_name(place.shard)) + " " +
                std::to_string(plan.shard_index + 1) + "/" + std::to_string(plan.shards) + ")";
    parameters += double(survey[i].parameters) / (sharded ? plan.shards : 1);
    const double out = double(graft_shape_numel(&survey[i].output)) /
                       (sharded && place.shard != GRAFT_SHARD_ROW ? plan.shards : 1);
    const double in = double(graft_shape_numel(&survey[i].input)) /
                      (sharded && place.shard != GRAFT_SHARD_COLUMN ? plan.shards : 1);
    // The model writes dx over the output where the layer allows it (buffer_plan.cpp).
    const bool dx_over_output =
        (survey[i].flags & GRAFT_ENTRY_DX_OVER_OUTPUT) && in <= out && i + 1 < survey.size();
    activations += out + (dx_over_output ? 0.0 : in);
  }
  return 4.0 * (parameters * (2.0 + states) +
                double(plan.slots) * double(plan.rows_per_slot) * activations);
}

std::string memory_text(const RankMemory& m) {
  if (!m.built) return "memory ~" + human_bytes(m.estimate) + " (estimated from the layers)";
  const runtime::Model::MemorySplit& s = m.split;
  return "memory " + human_bytes(double(s.total())) + ": parameters " +
         human_bytes(double(s.parameters)) + ", gradients " + human_bytes(double(s.gradients)) +
         ", optimizer state " + human_bytes(double(s.optimizer_state)) + ", activations " +
         human_bytes(double(s.activations)) + ", workspaces " + human_bytes(double(s.workspaces)) +
         (s.gather_windows ? ", gather windows " + human_bytes(double(s.gather_windows)) : "");
}

// A tensor group whose ranks are on more than one node of `per_node` consecutive ranks: valid,
// but its all-reduces (two per Megatron pair, every layer pair, every micro-batch) then cross
// the network instead of NVLink.
void warn_tensor_across_nodes(const runtime::MeshShape& shape, int32_t per_node) {
  if (shape.degree[GRAFT_AXIS_TENSOR] < 2) return;
  int spanning = 0;
  std::string first;
  for (int32_t r = 0; r < shape.size(); ++r) {
    auto coord = shape.coords_of(r);
    if (coord[GRAFT_AXIS_TENSOR] != 0) continue;  // each group once, by its first member
    std::string ranks;
    bool across = false;
    for (int32_t t = 0; t < shape.degree[GRAFT_AXIS_TENSOR]; ++t) {
      coord[GRAFT_AXIS_TENSOR] = t;
      const int32_t member = shape.rank_of(coord);
      across = across || member / per_node != r / per_node;
      ranks += (ranks.empty() ? "" : ", ") + std::to_string(member);
    }
    if (across && spanning++ == 0) first = ranks;
  }
  if (!spanning) return;
  const int32_t tensor = shape.degree[GRAFT_AXIS_TENSOR];
  std::string fix = shape.order[0] != GRAFT_AXIS_TENSOR
                        ? "put tensor first in [parallel] order (order = \"tensor,data,pipeline\")"
                        : "";
  if (tensor > per_node || per_node % tensor != 0)
    fix += std::string(fix.empty() ? "" : ", and ") + "make tensor divide " +
           std::to_string(per_node) + " (the ranks of a node), giving the rest to data or pipeline";
  std::printf(
      "warning: %d tensor group(s) span more than one node of %d ranks (--ranks-per-node), "
      "e.g. ranks %s; tensor parallelism all-reduces twice per layer pair, which needs a node's "
      "NVLink bandwidth; %s\n",
      spanning, per_node, first.c_str(), fix.c_str());
}

// --world N: the mesh, and the plan each rank r of N would get from the strategy, made without
// MPI (the strategy sees a world with no communicator), with the memory of that rank's model.
void print_placement(const runtime::Session& session, const ConfigArguments& a, int32_t world,
                     int32_t per_node) {
  const runtime::MeshShape shape = runtime::resolve_mesh(session.config.parallel, world);
  std::printf("\nmesh: %s (order %s), zero %d\n", shape.summary().c_str(),
              shape.order_text().c_str(), shape.zero);
  std::printf("placement on %d rank(s), strategy %s:\n", world, session.strategy->name().c_str());
  std::map<std::array<int32_t, 3>, RankMemory> models;  // by the coordinates that shape a model
  std::set<int32_t> unsplit_stages;  // stages with tensor ranks but nothing to split
  for (int32_t r = 0; r < world; ++r) {
    const runtime::LayoutPlan layout = session.plan_for(r, world);
    const graft_plan& plan = layout.plan;
    bool splits = false;
    for (const graft_layer_placement& l : layout.layers)
      splits = splits || (l.stage == plan.stage_index && l.shard != GRAFT_SHARD_NONE);
    if (plan.shards > 1 && !splits) unsplit_stages.insert(plan.stage_index);
    std::array<int32_t, 3> key = shape.coords_of(r);
    if (shape.zero == 0) key[GRAFT_AXIS_DATA] = 0;
    std::string layers;
    double parameters = 0.0;
    const double estimate = estimated_bytes(session, layout, parameters, layers);
    if (!models.count(key)) {
      RankMemory m;
      m.estimate = estimate;
      if (r == 0) {
        m.built = true;
        m.split = session.model->planned_memory();
      } else if (models.size() < kMaxModels) {
        runtime::SessionOptions o = session_options(a);
        o.rank = r;
        o.world = world;
        o.allocate_step_buffers = false;
        o.open_test_split = false;
        o.write_outputs = false;
        const runtime::Session planned(load(a), o);
        m.built = true;
        m.split = planned.model->planned_memory();
      }
      models.emplace(key, m);
    }
    const std::array<int64_t, GRAFT_MESH_AXES> moves = {
        plan.axis_bytes_per_step[0], plan.axis_bytes_per_step[1], plan.axis_bytes_per_step[2]};
    std::printf("rank %d  stage %d/%d, shard %d/%d: layers %s\n", r, plan.stage_index, plan.stages,
                plan.shard_index, plan.shards, layers.empty() ? "none" : layers.c_str());
    std::printf("        %s; parameters %.0f, %s (%d slot(s) x %lld rows)\n",
                shape.describe(r).c_str(), parameters, memory_text(models.at(key)).c_str(),
                plan.slots, static_cast<long long>(plan.rows_per_slot));
    std::printf(
        "        per step sends %lld message(s), %s; moves data %s, pipeline %s, tensor %s\n",
        static_cast<long long>(plan.messages_per_step),
        human_bytes(double(plan.message_bytes_per_step)).c_str(),
        human_bytes(double(moves[0])).c_str(), human_bytes(double(moves[1])).c_str(),
        human_bytes(double(moves[2])).c_str());
  }
  warn_tensor_across_nodes(shape, per_node);
  // Valid, but each of those stages' tensor ranks computes the same: compute and memory spent
  // for nothing.
  if (!unsplit_stages.empty()) {
    std::string stages;
    for (int32_t st : unsplit_stages) stages += (stages.empty() ? "" : ", ") + std::to_string(st);
    std::printf(
        "warning: tensor = %d, but pipeline stage(s) %s hold no Megatron pair (linear, "
        "element-wise layers, linear) to split, so their %d tensor ranks each compute the whole "
        "stage alike; place a pair inside each stage ([parallel] stages) or give those ranks to "
        "data instead\n",
        shape.degree[GRAFT_AXIS_TENSOR], stages.c_str(), shape.degree[GRAFT_AXIS_TENSOR]);
  }
}
}  // namespace

int validate(const Arguments& args) {
  return run_command("validate", [&] {
    const auto start = std::chrono::steady_clock::now();
    ConfigArguments a;
    int world = -1;    // not given
    int per_node = 8;  // a DGX H100's GPUs
    po::options_description options("graft validate options");
    add_config_options(options, a);
    options.add_options()("world", po::value<int>(&world),
                          "show the placement each rank of a job of N ranks would get (the "
                          "layers, shards, memory and messages per step), without MPI")(
        "ranks-per-node", po::value<int>(&per_node),
        "ranks on one node (default 8): warns when a tensor group spans nodes");
    po::positional_options_description positional;
    positional.add("config", 1);
    if (!parse(args, "usage: graft validate CONFIG [--world N] [--set key=value ...]", options,
               positional))
      return 0;
    if (world == 0 || world < -1 || world > 4096)
      throw runtime::UserError("--world " + std::to_string(world) + ": expected 1..4096 ranks");
    if (per_node < 1)
      throw runtime::UserError("--ranks-per-node " + std::to_string(per_node) +
                               ": expected 1 or more");
    runtime::Config config = load(a);
    // Degrees that name their world ([parallel] data = 2, tensor = 4) are validated on it.
    if (world < 0 && runtime::mesh_world(config.parallel) > 1)
      world = runtime::mesh_world(config.parallel);
    runtime::SessionOptions session_opts = session_options(a);
    if (world > 0) session_opts.world = world;  // built as rank 0 of that job would build it
    // Validate reports the memory a batch needs; it never holds it, so a batch too large for
    // the machine is a warning here and an error for train and eval.
    session_opts.allocate_step_buffers = false;
    runtime::Session session(std::move(config), session_opts);
    const runtime::Model& m = *session.model;
    const graft_dataset_info& data = session.train_set->info();
    std::printf("%s: valid\n\n", session.config.file.c_str());
    std::printf("data     %s: %lld training samples%s, input %s\n",
                session.config.data.reader.c_str(), static_cast<long long>(data.samples),
                session.test_set
                    ? (", " + std::to_string(session.test_set->info().samples) + " test").c_str()
                    : "",
                runtime::shape_string(data.input).c_str());
    std::printf("\n  #  layer            output            parameters\n");
    std::printf("     input            %-17s\n", runtime::shape_string(m.input_shape()).c_str());
    // Layers inside residual blocks are indented under their block, without a number.
    long long top = 0;
    for (const runtime::Model::LayerRow& row : m.layer_rows()) {
      const std::string name = std::string(2 * size_t(row.depth), ' ') + row.name;
      const std::string number = row.depth == 0 ? std::to_string(top++) : "";
      std::printf("%3s  %-16s %-17s %10lld\n", number.c_str(), name.c_str(),
                  runtime::shape_string(row.output).c_str(),
                  static_cast<long long>(row.parameters));
    }
    for (const runtime::ParameterInfo& p : m.parameters()) {
      if (p.tied < 0) continue;
      const runtime::ParameterInfo& root = m.parameters()[size_t(p.tied)];
      const int32_t from = m.layer_stage(root.layer), to = m.layer_stage(p.layer);
      const std::string how = from == to ? "one tensor, counted once"
                                         : "a copy on stages " + std::to_string(from) + " and " +
                                               std::to_string(to) + ", their gradients summed";
      std::printf("tied     %s is %s (%s)\n", p.name.c_str(), root.name.c_str(), how.c_str());
    }
    std::printf("\nparameters %zu (%s); optimizer state: %zu tensors per parameter\n",
                m.parameter_count(), human_bytes(double(m.parameter_count()) * 4).c_str(),
                m.optimizer_state_names().size());
    const int64_t micro = session.config.run.gradient_accumulation;
    const std::string accumulation =
        micro > 1 ? " (batch " + std::to_string(session.config.data.batch_size) + " as " +
                        std::to_string(micro) + " micro-batches)"
                  : "";
    std::printf(
        "memory planned at batch %lld%s: %s (parameters, gradients, optimizer state, "
        "activations)\n",
        static_cast<long long>(m.planned_rows()), accumulation.c_str(),
        human_bytes(double(m.planned_bytes())).c_str());
    if (const std::string shortfall = session.memory_shortfall(); !shortfall.empty())
      std::printf("warning: train and eval would refuse this before allocating:\n  %s\n",
                  shortfall.c_str());
    std::printf("loss %s, optimizer %s (lr %g, schedule %s), strategy %s\n",
                session.config.loss.type.c_str(), session.config.optimizer.type.c_str(),
                session.config.optimizer.lr, session.config.optimizer.schedule.type.c_str(),
                session.strategy->name().c_str());
    print_cuda_coverage(session);
    if (world > 0) print_placement(session, a, world, per_node);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("checked in %.1f ms\n", ms);
    return 0;
  });
}

}  // namespace graft::cli
