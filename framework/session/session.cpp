// Building a session from a config: plugins, data, model, strategy, in that order, each error
// naming the config section it came from.
#include "session/session.hpp"

#include <unistd.h>

#include <algorithm>

#include "comm/nccl/nccl_loader.hpp"
#include "config/section_reader.hpp"
#include "device/cuda_loader.hpp"
#include "device/host_api.hpp"
#include "session/device_check.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

PluginChoice choose_plugin(const Registry& registry, graft_kind kind, const std::string& type,
                           const toml::table* table, const std::string& section,
                           const std::vector<std::string>& reserved) {
  const PluginRecord* record = registry.find(kind, type);
  // An activation may stand as a layer (type = "relu").
  if (!record && kind == GRAFT_KIND_LAYER) record = registry.find(GRAFT_KIND_ACTIVATION, type);
  if (!record) {
    std::string at = table ? where(*table) + ": " : "";
    std::vector<std::string> known = registry.names(kind);
    if (kind == GRAFT_KIND_LAYER) {
      for (const std::string& a : registry.names(GRAFT_KIND_ACTIVATION)) known.push_back(a);
      known.push_back("residual");  // the framework's block (config.hpp)
    }
    throw UserError(at + section + " unknown " + kind_name(kind) + " '" + type + "'" +
                    did_you_mean(type, known) + "; known: " + join(known) +
                    " (graft plugins lists them with their options)");
  }
  return PluginChoice{record, bind_options(*record->entry, table, section, reserved), section};
}

PluginChoice Session::choose(graft_kind kind, const std::string& type, const toml::table* table,
                             const std::string& section, const std::vector<std::string>& reserved) {
  return choose_plugin(registry, kind, type, table, section, reserved);
}

namespace {
// "run.toml:12:1: [[model.layers]] #2"; a table made by --set has no line to give.
std::string located(const NamedTable& layer) {
  const std::string at = layer.table ? where(*layer.table) : "";
  return at.empty() ? layer.section : at + ": " + layer.section;
}
}  // namespace

PluginChoice Session::choose_layer(const NamedTable& layer, const std::string& path,
                                   std::vector<std::pair<std::string, toml::table>>& resolved) {
  if (layer.type == "residual") {
    std::vector<PluginChoice> inner;
    for (size_t j = 0; j < layer.layers.size(); ++j)
      inner.push_back(
          choose_layer(layer.layers[j], path + ".layers." + std::to_string(j), resolved));
    return PluginChoice::residual_block(std::move(inner), located(layer));
  }
  PluginChoice choice = choose(GRAFT_KIND_LAYER, layer.type, layer.table, layer.section,
                               reserved_keys(Section::layer));
  resolved.emplace_back(path, choice.options.resolved());
  choice.ties = layer.ties;
  // From here on (shapes, the plan) the model's messages name the layer by its table's line.
  choice.section = located(layer);
  return choice;
}

// "loss" or one of the metrics the loss reports; else a config error listing them.
void Session::check_early_stopping_metric() const {
  const EarlyStoppingConfig& stopping = config.run.early_stopping;
  if (!stopping.enabled) return;
  std::vector<std::string> available = {"loss"};
  for (const std::string& m : model->metric_names()) available.push_back(m);
  for (const std::string& m : available)
    if (m == stopping.metric) return;
  const toml::node* node = stopping.table ? stopping.table->get("metric") : nullptr;
  std::string at = node && node->source().path                       ? where(*node)
                   : stopping.table && stopping.table->source().path ? where(*stopping.table)
                                                                     : config.file.string();
  throw UserError(at + ": [run.early_stopping] metric: '" + stopping.metric +
                  "' is not reported by " + "loss '" + config.loss.type + "'" +
                  did_you_mean(stopping.metric, available) + "; available: " + join(available));
}

Session::Session(Config cfg, const SessionOptions& options)
    : config(std::move(cfg)),
      registry(host_api()),
      rank(options.rank),
      world(options.world),
      write_outputs(options.write_outputs),
      job_(options.job) {
  if (job_) {
    rank = job_->world().rank();
    world = job_->world().size();
    job_->set_timeout(config.parallel.timeout_s);
  }
  // The mesh is checked against the world first: a bad degree fails alike on every rank
  // before any plugin loads, and from here on the watchdog names ranks by their place.
  mesh_shape_ = resolve_mesh(config.parallel, world);
  if (job_) job_->set_rank_labels(rank_labels(mesh_shape_));
  set_cpu_threads(config.run.threads);
  load_plugins(registry,
               plugin_folders(options.plugin_dirs, config.plugin_paths, config.plugin_path_places));
  // The run's config.toml names --plugin-dir's folders too, so `graft eval` on it finds them.
  for (const std::string& d : options.plugin_dirs) {
    const std::string folder = fs::absolute(d).lexically_normal().string();
    if (std::find(config.plugin_paths.begin(), config.plugin_paths.end(), folder) ==
        config.plugin_paths.end()) {
      config.plugin_paths.push_back(folder);
      config.plugin_path_places.push_back("--plugin-dir");
    }
  }

  run_dir = fs::path(config.run.output_dir) / config.run.name;
  // Copies, since the choices move into the model.
  std::vector<std::pair<std::string, toml::table>> resolved;

  // Data: the reader's own keys share [data] with the framework's.
  reader_ = choose(GRAFT_KIND_DATASET, config.data.reader, config.data.reader_table, "[data]",
                   reserved_keys(Section::data));
  resolved.emplace_back("data", reader_.options.resolved());
  const fs::path cache = run_dir.parent_path() / "cache";
  const std::string config_dir = config.directory.string();
  const std::string cache_dir = cache.string();
  auto open = [&](const char* split) {
    graft_dataset_args args{sizeof(graft_dataset_args),
                            split,
                            config_dir.c_str(),
                            cache_dir.c_str(),
                            config.run.seed,
                            rank,
                            world};
    return std::make_unique<DatasetInstance>(*reader_.record, reader_.options, args);
  };
  fs::create_directories(cache);
  train_set = open("train");
  if (options.open_test_split) test_set = open("test");
  const graft_dataset_info& info = train_set->info();

  // Model, loss and optimizer.
  auto [layers, loss, optimizer] = choose_model(resolved);
  resolved.emplace_back("loss", loss.options.resolved());
  resolved.emplace_back("optimizer", optimizer.options.resolved());
  if (config.run.device == "cuda")
    device = DLDevice{kDLCUDA, check_cuda_run(config, layers, loss, optimizer)};

  // The strategy comes before the model: its plan decides each layer's stage and shard, and
  // how many rows and micro-batches the buffers hold.
  const PluginRecord& strategy_record = registry.get(GRAFT_KIND_STRATEGY, config.parallel.strategy);
  strategy_options_ = bind_options(*strategy_record.entry, config.parallel.table, "[parallel]",
                                   reserved_keys(Section::parallel));
  resolved.emplace_back("parallel", strategy_options_.resolved());
  Communicator* strategy_comm = job_ ? &job_->world() : nullptr;
  if (strategy_comm && device.device_type == kDLCUDA) {
    device_comm_ = start_device_comm(*strategy_comm, strategy_record.name);
    if (device_comm_) strategy_comm = device_comm_.get();
  }
  mesh_ = std::make_unique<Mesh>(mesh_shape_, rank, strategy_comm);
  strategy = create_strategy(strategy_record, rank, world, strategy_comm, *mesh_);
  survey = survey_layers(layers, info.input);
  layout = plan_layout(*strategy, survey, config.data.batch_size, config.run.gradient_accumulation);

  ModelSettings settings;
  settings.device = device;
  // With gradient accumulation (or a strategy's micro-batches) the buffers hold one
  // micro-batch: the memory it saves.
  settings.max_batch = std::max(layout.plan.rows_per_slot, config.data.eval_batch_size);
  layout.apply_to(settings);
  shard_over_data(settings, optimizer);
  settings.seed = config.run.seed;
  settings.clip_grad_norm = config.run.clip_grad_norm;
  settings.decay_bias_and_norm = config.optimizer.decay_bias_and_norm;
  const ScheduleConfig& s = config.optimizer.schedule;
  settings.schedule =
      Schedule{s.type, config.optimizer.lr, s.warmup_steps, s.step_size, s.gamma, s.min_lr, 0};
  // Planned first and allocated only when the plan fits: a batch of a billion rows is a
  // message, not an attempt to allocate terabytes.
  settings.allocate_step_buffers = false;
  settings.rows_origin = rows_origin();
  model = std::make_unique<Model>(std::move(layers), std::move(loss), std::move(optimizer),
                                  info.input, info.target, settings);
  check_early_stopping_metric();
  if (options.allocate_step_buffers) {
    if (std::string shortfall = memory_shortfall(); !shortfall.empty()) throw UserError(shortfall);
    model->allocate_step_buffers();
  }

  std::vector<std::pair<std::string, const toml::table*>> tables;
  for (const auto& [path, table] : resolved) tables.emplace_back(path, &table);
  resolved_config_ = resolved_toml(config, tables);
}

Session::ModelChoices Session::choose_model(
    std::vector<std::pair<std::string, toml::table>>& resolved) {
  ModelChoices c;
  for (size_t i = 0; i < config.layers.size(); ++i)
    c.layers.push_back(
        choose_layer(config.layers[i], "model.layers." + std::to_string(i), resolved));
  c.loss = choose(GRAFT_KIND_LOSS, config.loss.type, config.loss.table, "[loss]",
                  reserved_keys(Section::loss));
  c.optimizer = choose(GRAFT_KIND_OPTIMIZER, config.optimizer.type, config.optimizer.table,
                       "[optimizer]", reserved_keys(Section::optimizer));
  return c;
}

std::unique_ptr<Model> Session::sequence_model(const graft_shape& input, int64_t rows) {
  std::vector<std::pair<std::string, toml::table>> resolved;  // already saved once
  auto [layers, loss, optimizer] = choose_model(resolved);
  graft_target_info target = train_set->info().target;
  target.shape = input;
  ModelSettings settings;
  settings.max_batch = rows;
  settings.seed = config.run.seed;
  return std::make_unique<Model>(std::move(layers), std::move(loss), std::move(optimizer), input,
                                 target, settings);
}

// [parallel] zero >= 1: the model lays its parameters out in units over the data group, when
// the strategy shards (its plan sets zero_unit_floats) and the optimizer is element-wise (it
// then updates 1-D slices of parameters).
void Session::shard_over_data(ModelSettings& settings, const PluginChoice& optimizer) const {
  const MeshShape& shape = mesh_->shape();
  if (shape.zero < 1 || shape.degree[GRAFT_AXIS_DATA] < 2) return;
  const std::string at = config.parallel.zero_node && config.parallel.zero_node->source().path
                             ? where(*config.parallel.zero_node) + ": "
                             : config.file.string() + ": ";
  if (layout.plan.zero_unit_floats < 0)
    throw UserError(at + "[parallel] zero = " + std::to_string(shape.zero) + ": strategy '" +
                    config.parallel.strategy +
                    "' does not shard over its data group; use strategy = \"mesh\" (the default "
                    "when data, pipeline or tensor is given) or set zero = 0");
  if (!(optimizer.record->entry->flags & GRAFT_ENTRY_ELEMENTWISE))
    throw UserError(at + "[parallel] zero = " + std::to_string(shape.zero) + ": optimizer '" +
                    optimizer.record->name +
                    "' does not declare itself element-wise (GRAFT_ENTRY_ELEMENTWISE), and ZeRO "
                    "updates slices of parameters; use sgd, adam, adamw or rmsprop, or set "
                    "zero = 0");
  settings.zero_parts = shape.degree[GRAFT_AXIS_DATA];
  settings.zero_index = mesh_->coord(GRAFT_AXIS_DATA);
  settings.zero_unit_floats = layout.plan.zero_unit_floats;
  settings.zero_level = shape.zero;
}

GatherGroups Session::gather_groups() const {
  return GatherGroups{mesh_->axis(GRAFT_AXIS_PIPELINE), mesh_->axis(GRAFT_AXIS_TENSOR),
                      mesh_->axis(GRAFT_AXIS_DATA)};
}

bool Session::eval_sized() const { return config.data.eval_batch_size > layout.plan.rows_per_slot; }

std::string Session::rows_origin() const {
  const char* key = eval_sized() ? "eval_batch_size" : "batch_size";
  const int64_t value = eval_sized() ? config.data.eval_batch_size : config.data.batch_size;
  SectionReader data(section_table(config.root, "data", "[data]"), "[data]", config.file.string());
  const toml::node* node = data.find(key);
  const std::string at = node && node->source().path ? where(*node) : data.location();
  return at + ": [data] " + key + " = " + std::to_string(value);
}

std::string Session::memory_shortfall() const {
  if (device.device_type != kDLCPU) return "";
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return "";  // unknown: let the allocator decide
  const double machine = double(pages) * double(page_size);
  const double planned = double(model->planned_bytes());
  if (planned <= machine) return "";
  const double fixed = double(model->planned_fixed_bytes());
  const int64_t rows = model->planned_rows(), slots = layout.plan.slots;
  const double per_row = (planned - fixed) / double(std::max<int64_t>(rows * slots, 1));
  const std::string fix =
      eval_sized() ? "lower eval_batch_size (0 evaluates in batches of batch_size)"
                   : "lower batch_size, or keep it and set [run] gradient_accumulation = N to "
                     "run each batch as N micro-batches (and [data] eval_batch_size for "
                     "evaluation)";
  return rows_origin() + ": the model's buffers for " + std::to_string(rows) + " rows" +
         (slots > 1 ? " in each of " + std::to_string(slots) + " slots" : std::string()) +
         " need " + human_bytes(planned) + " (" + human_bytes(per_row) + " per row, plus " +
         human_bytes(fixed) + " for parameters, gradients and optimizer state), but this " +
         "machine has " + human_bytes(machine) + " of memory; " + fix;
}

std::unique_ptr<StrategyInstance> Session::create_strategy(const PluginRecord& record, int32_t r,
                                                           int32_t size, Communicator* comm,
                                                           const Mesh& mesh) const {
  graft_world w{sizeof(graft_world),
                r,
                size,
                comm ? comm_handle(*comm) : nullptr,
                comm ? comm_api() : nullptr,
                config.parallel.timeout_s,
                &mesh.c_mesh()};
  return std::make_unique<StrategyInstance>(record, strategy_options_, w);
}

std::unique_ptr<Communicator> Session::start_device_comm(Communicator& host_world,
                                                         const std::string& strategy_name) const {
  if (strategy_name == "single") return nullptr;  // it never communicates
  NcclOptions options;
  options.device_index = device.device_id;
  options.compute_stream = cuda_device()->stream();
  options.deterministic = config.run.deterministic;
  options.timeout_s = config.parallel.timeout_s;
  return start_nccl(host_world, options);
}

LayoutPlan Session::plan_for(int32_t r, int32_t size) const {
  const Mesh planned(resolve_mesh(config.parallel, size), r, nullptr);
  return plan_layout(*create_strategy(strategy->record(), r, size, nullptr, planned), survey,
                     config.data.batch_size, config.run.gradient_accumulation);
}

Session::~Session() = default;

graft_exec_ctx Session::context(bool training) const {
  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = host_api();
  ctx.device = device;
  if (device.device_type == kDLCUDA) ctx.stream = cuda_device()->stream();
  ctx.training = training ? 1 : 0;
  ctx.seed = config.run.seed;
  ctx.layer_index = -1;
  ctx.rank = rank;
  ctx.world = world;
  // Evaluation batches are split too, unless eval_batch_size was given (then they fit whole).
  const bool split = training || config.data.eval_batch_size == 0;
  ctx.micro_batches = split ? static_cast<int32_t>(config.run.gradient_accumulation) : 1;
  return ctx;
}

}  // namespace graft::runtime
