// Resolving [parallel] data / pipeline / tensor / zero / order against the world size, and
// splitting the world into one communicator per axis. Every check happens here, before any
// plugin is loaded, so a bad mesh fails alike on every rank and no rank waits for another.
#include "parallel/mesh.hpp"

#include <algorithm>

#include "config/config.hpp"
#include "config/section_reader.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

constexpr const char* kAxisNames[GRAFT_MESH_AXES] = {"data", "pipeline", "tensor"};

// The axis a one-axis strategy spreads the world over; -1 for `single` (one rank, no axis).
// Any other strategy (the `mesh` plugin, a third party's) composes whatever it is given.
bool one_axis_strategy(const std::string& strategy, int& axis) {
  if (strategy == "single")
    axis = -1;
  else if (strategy == "data_parallel")
    axis = GRAFT_AXIS_DATA;
  else if (strategy == "pipeline")
    axis = GRAFT_AXIS_PIPELINE;
  else if (strategy == "tensor_parallel")
    axis = GRAFT_AXIS_TENSOR;
  else
    return false;
  return true;
}

std::string trim(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// "tensor,data,pipeline" -> {TENSOR, DATA, PIPELINE}; false unless each axis is named once.
bool parse_order(const std::string& text, std::array<int32_t, GRAFT_MESH_AXES>& order) {
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    names.push_back(trim(text.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (names.size() != GRAFT_MESH_AXES) return false;
  bool seen[GRAFT_MESH_AXES] = {};
  for (size_t k = 0; k < names.size(); ++k) {
    const auto* found = std::find_if(std::begin(kAxisNames), std::end(kAxisNames),
                                     [&](const char* n) { return names[k] == n; });
    if (found == std::end(kAxisNames)) return false;
    const int axis = int(found - std::begin(kAxisNames));
    if (seen[axis]) return false;
    seen[axis] = true;
    order[k] = axis;
  }
  return true;
}

std::string product_text(const std::array<int32_t, GRAFT_MESH_AXES>& degree) {
  std::string out;
  for (int a = 0; a < GRAFT_MESH_AXES; ++a)
    out += (a ? " x " : "") + std::string(kAxisNames[a]) + " " + std::to_string(degree[a]);
  return out;
}

}  // namespace

const char* axis_name(int axis) {
  return axis >= 0 && axis < GRAFT_MESH_AXES ? kAxisNames[axis] : "unknown axis";
}

std::array<int32_t, GRAFT_MESH_AXES> MeshShape::coords_of(int32_t rank) const {
  std::array<int32_t, GRAFT_MESH_AXES> coord{};
  for (int32_t axis : order) {
    coord[size_t(axis)] = rank % degree[size_t(axis)];
    rank /= degree[size_t(axis)];
  }
  return coord;
}

int32_t MeshShape::rank_of(const std::array<int32_t, GRAFT_MESH_AXES>& coord) const {
  int32_t rank = 0, stride = 1;
  for (int32_t axis : order) {
    rank += coord[size_t(axis)] * stride;
    stride *= degree[size_t(axis)];
  }
  return rank;
}

std::string MeshShape::describe(int32_t rank) const {
  const auto coord = coords_of(rank);
  std::string out;
  for (int a = 0; a < GRAFT_MESH_AXES; ++a)
    out += (a ? ", " : "") + std::string(kAxisNames[a]) + " " + std::to_string(coord[size_t(a)]);
  return out;
}

std::string MeshShape::summary() const {
  std::string out;
  for (int a = 0; a < GRAFT_MESH_AXES; ++a)
    if (degree[size_t(a)] > 1)
      out += (out.empty() ? "" : " x ") + std::string(kAxisNames[a]) + " " +
             std::to_string(degree[size_t(a)]);
  return out.empty() ? "1 rank" : out;
}

std::string MeshShape::order_text() const {
  std::string out;
  for (int32_t axis : order) out += (out.empty() ? "" : ",") + std::string(axis_name(axis));
  return out;
}

std::vector<std::string> rank_labels(const MeshShape& shape) {
  std::vector<std::string> labels;
  for (int32_t r = 0; r < shape.size(); ++r) labels.push_back(shape.describe(r));
  return labels;
}

int32_t mesh_world(const ParallelConfig& parallel) {
  if (!parallel.degree_given()) return 0;
  int64_t product = 1;
  for (int64_t d : parallel.degree) {
    if (d < 1) return 0;
    product *= d;
  }
  return product <= 4096 ? int32_t(product) : 0;
}

MeshShape resolve_mesh(const ParallelConfig& parallel, int32_t world) {
  const SectionReader in(parallel.table, "[parallel]",
                         parallel.file.empty() ? std::string("config") : parallel.file);
  MeshShape shape;
  if (!parse_order(parallel.order, shape.order))
    in.fail("order", "'" + parallel.order +
                         "' is not an order of the three axes; name each of data, pipeline, "
                         "tensor once, fastest-varying first, e.g. order = "
                         "\"tensor,data,pipeline\" (the default: a tensor group on consecutive "
                         "ranks, so on one node)");
  if (parallel.zero < 0 || parallel.zero > 3)
    in.fail("zero",
            "must be 0 (nothing sharded), 1 (optimizer state), 2 (+ gradients) or 3 "
            "(+ parameters), got " +
                std::to_string(parallel.zero));
  int inferred = -1;  // the axis given as -1
  for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
    const int64_t d = parallel.degree[size_t(a)];
    if (d == -1 && inferred >= 0)
      in.fail(kAxisNames[a], "only one degree may be -1 (" + std::string(kAxisNames[inferred]) +
                                 " already is); give this one a number of ranks");
    if (d == -1)
      inferred = a;
    else if (d < 1)
      in.fail(kAxisNames[a],
              "must be a number of ranks (1 or more), or -1 for what the other "
              "axes leave of the world; got " +
                  std::to_string(d));
  }

  int own = -1;
  if (one_axis_strategy(parallel.strategy, own)) {
    const std::string who = "strategy '" + parallel.strategy + "'";
    const std::string spreads =
        own < 0 ? who + " runs on one rank"
                : who + " spreads the job over the " + kAxisNames[own] + " axis alone";
    for (int a = 0; a < GRAFT_MESH_AXES; ++a)
      if (a != own && parallel.degree_node[size_t(a)] && parallel.degree[size_t(a)] != 1)
        in.fail(kAxisNames[a], spreads + ", so " + kAxisNames[a] + " must be 1; to combine axes " +
                                   "set strategy = \"mesh\", or remove " + kAxisNames[a]);
    if (parallel.zero > 0)
      in.fail("zero", who + " shards nothing, so zero must be 0; for ZeRO set strategy = " +
                          "\"mesh\" (with data > 1), or remove zero");
  }
  std::array<int64_t, GRAFT_MESH_AXES> degree = parallel.degree;
  // No degree given: the one axis of the strategy (data for any other) takes the world.
  if (!parallel.degree_given()) {
    inferred = own >= 0 ? own : GRAFT_AXIS_DATA;
    degree[size_t(inferred)] = -1;
  }
  if (inferred >= 0) {
    int64_t others = 1;
    for (int a = 0; a < GRAFT_MESH_AXES; ++a)
      if (a != inferred) others *= degree[size_t(a)];
    if (others > world || world % others != 0)
      in.fail(kAxisNames[inferred],
              "-1 takes what the other axes leave of the job's " + std::to_string(world) +
                  " rank(s), but they take " + std::to_string(others) +
                  ", which does not divide it; make their product divide " + std::to_string(world) +
                  ", or run on a multiple of " + std::to_string(others) + " ranks");
    degree[size_t(inferred)] = world / others;
  }
  int64_t product = 1;
  for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
    product *= degree[size_t(a)];
    shape.degree[size_t(a)] = int32_t(std::min<int64_t>(degree[size_t(a)], 1 << 30));
  }
  if (product != world) {
    int named = 0;  // the first degree given: there is one, or -1 would have made it fit
    while (named < GRAFT_MESH_AXES - 1 && !parallel.degree_node[size_t(named)]) ++named;
    in.fail(kAxisNames[named], product_text(shape.degree) + " is " + std::to_string(product) +
                                   " rank(s), but the job has " + std::to_string(world) +
                                   "; make the degrees multiply to " + std::to_string(world) +
                                   " (one may be -1 to take what the others leave), or run on " +
                                   std::to_string(product) +
                                   " ranks (mpirun -np / graft validate --world)");
  }
  shape.zero = int32_t(parallel.zero);
  if (shape.zero > 0 && shape.degree[GRAFT_AXIS_DATA] == 1)
    in.fail("zero", "zero = " + std::to_string(shape.zero) +
                        " shards over the data axis, but data is 1: there is nothing to shard "
                        "over; set data = N (N > 1 replicas, or -1), or zero = 0");
  return shape;
}

Mesh::Mesh(const MeshShape& shape, int32_t rank, Communicator* world) : shape_(shape), rank_(rank) {
  if (rank < 0 || rank >= shape.size())
    throw Failure("Mesh: rank " + std::to_string(rank) + " is outside the mesh " + shape.summary());
  const auto coord = shape.coords_of(rank);
  c_.struct_size = sizeof c_;
  for (size_t a = 0; a < GRAFT_MESH_AXES; ++a) {
    c_.degree[a] = shape.degree[a];
    c_.coord[a] = coord[a];
    c_.order[a] = shape.order[a];
  }
  c_.zero = shape.zero;
  if (!world) return;
  if (world->size() != shape.size() || world->rank() != rank)
    throw Failure("Mesh: the communicator's rank " + std::to_string(world->rank()) + " of " +
                  std::to_string(world->size()) + " is not rank " + std::to_string(rank) +
                  " of the mesh " + shape.summary());
  // Megatron's rule: the group along axis a is the ranks equal on the other two axes. Its
  // color numbers those two coordinates in rank order; its key is the coordinate on a.
  for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
    int32_t color = 0, stride = 1;
    for (int32_t b : shape.order) {
      if (b == a) continue;
      color += coord[size_t(b)] * stride;
      stride *= shape.degree[size_t(b)];
    }
    axes_[size_t(a)] =
        &world->split(color, coord[size_t(a)], std::string(kAxisNames[a]) + " group");
    c_.axis_comm[a] = comm_handle(*axes_[size_t(a)]);
  }
}

}  // namespace graft::runtime
