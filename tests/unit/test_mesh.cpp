// The device mesh: [parallel] data / pipeline / tensor / zero / order resolved against a world
// size (-1 inferred, every error naming its key, file position and fix), and the rank order
// (tensor fastest by default) with coords_of and rank_of inverse to each other.
#include <algorithm>
#include <fstream>

#include "comm/job.hpp"
#include "config/config.hpp"
#include "parallel/mesh.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::Config;
using graft::runtime::MeshShape;
using graft::runtime::resolve_mesh;
using graft::runtime::UserError;

namespace {

const std::string kRequired = R"([data]
reader = "idx"

[[model.layers]]
type = "linear"
units = 10

[loss]
type = "cross_entropy"

[optimizer]
type = "sgd"
)";

// The config of `parallel` (the lines of a [parallel] table), loaded from a file.
Config config_with(const std::string& parallel) {
  const fs::path file = graft::test::temp_dir("mesh") / "mesh.toml";
  std::ofstream(file) << kRequired << "\n[parallel]\n" << parallel << "\n";
  return graft::runtime::load_config(file, {});
}

MeshShape mesh(const std::string& parallel, int32_t world) {
  return resolve_mesh(config_with(parallel).parallel, world);
}

std::string error_of(const std::string& parallel, int32_t world) {
  const Config config = config_with(parallel);
  try {
    resolve_mesh(config.parallel, world);
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("no UserError for " << parallel << " on " << world << " ranks");
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the mesh keys are the host's: reserved, and a mesh key makes the strategy mesh") {
  const auto& reserved = graft::runtime::reserved_keys(graft::runtime::Section::parallel);
  for (const char* key : {"data", "pipeline", "tensor", "zero", "order"})
    CHECK(std::find(reserved.begin(), reserved.end(), key) != reserved.end());
  CHECK(config_with("").parallel.strategy == "single");
  CHECK(config_with("tensor = 2").parallel.strategy == "mesh");
  CHECK(config_with("order = \"data,tensor,pipeline\"").parallel.strategy == "mesh");
  CHECK(config_with("strategy = \"data_parallel\"\ndata = 4").parallel.strategy == "data_parallel");
}

TEST_CASE("one-axis strategies are one-axis meshes over the world") {
  CHECK(mesh("strategy = \"data_parallel\"", 4).degree == std::array<int32_t, 3>{4, 1, 1});
  CHECK(mesh("strategy = \"pipeline\"", 3).degree == std::array<int32_t, 3>{1, 3, 1});
  CHECK(mesh("strategy = \"tensor_parallel\"", 2).degree == std::array<int32_t, 3>{1, 1, 2});
  CHECK(mesh("", 1).degree == std::array<int32_t, 3>{1, 1, 1});
  CHECK(mesh("strategy = \"data_parallel\"\ndata = 4", 4).degree[0] == 4);
  CHECK(mesh("strategy = \"my_own\"", 5).degree == std::array<int32_t, 3>{5, 1, 1});
}

TEST_CASE("one degree of -1 takes what the others leave of the world") {
  const MeshShape shape = mesh("data = -1\npipeline = 2\ntensor = 2", 8);
  CHECK(shape.degree == std::array<int32_t, 3>{2, 2, 2});
  CHECK(shape.summary() == "data 2 x pipeline 2 x tensor 2");
  CHECK(mesh("tensor = -1\ndata = 3", 6).degree == std::array<int32_t, 3>{3, 1, 2});
  CHECK(mesh("tensor = 4", 4).summary() == "tensor 4");
  CHECK(mesh("data = 1", 1).summary() == "1 rank");
  CHECK(mesh("data = 2\nzero = 1", 2).zero == 1);
}

TEST_CASE("every mesh error names its key, where it is, and the fix") {
  std::string e = error_of("data = 3", 4);
  CHECK(contains(e, "mesh.toml:"));
  CHECK(contains(e,
                 "[parallel] data: data 3 x pipeline 1 x tensor 1 is 3 rank(s), but the job "
                 "has 4"));
  CHECK(contains(e, "make the degrees multiply to 4"));
  e = error_of("data = 0", 4);
  CHECK(contains(e, "[parallel] data: must be a number of ranks (1 or more), or -1"));
  CHECK(contains(error_of("tensor = -3", 4), "[parallel] tensor: must be a number of ranks"));
  e = error_of("data = -1\npipeline = -1", 4);
  CHECK(contains(e, "[parallel] pipeline: only one degree may be -1 (data already is)"));
  e = error_of("data = -1\ntensor = 3", 4);
  CHECK(contains(e,
                 "[parallel] data: -1 takes what the other axes leave of the job's 4 rank(s), "
                 "but they take 3"));
  CHECK(contains(error_of("data = 2\nzero = 4", 2),
                 "[parallel] zero: must be 0 (nothing "
                 "sharded), 1 (optimizer state)"));
  e = error_of("tensor = 2\nzero = 1", 2);
  CHECK(contains(e, "[parallel] zero: zero = 1 shards over the data axis, but data is 1"));
  CHECK(contains(e, "set data = N"));
  CHECK(contains(e, "or zero = 0"));
  e = error_of("order = \"tensor,data\"", 1);
  CHECK(contains(e, "[parallel] order: 'tensor,data' is not an order of the three axes"));
  CHECK(contains(error_of("order = \"tensor,tensor,data\"", 1), "[parallel] order:"));
  CHECK(contains(error_of("order = \"tensor,data,pipe\"", 1), "[parallel] order:"));
}

TEST_CASE("a one-axis strategy refuses degrees on another axis, naming the fix") {
  std::string e = error_of("strategy = \"data_parallel\"\npipeline = 2", 4);
  CHECK(contains(e,
                 "[parallel] pipeline: strategy 'data_parallel' spreads the job over the data "
                 "axis alone, so pipeline must be 1"));
  CHECK(contains(e, "strategy = \"mesh\", or remove pipeline"));
  e = error_of("strategy = \"single\"\ndata = 2", 2);
  CHECK(contains(e, "[parallel] data: strategy 'single' runs on one rank"));
  e = error_of("strategy = \"data_parallel\"\nzero = 1", 4);
  CHECK(contains(e, "[parallel] zero: strategy 'data_parallel' shards nothing"));
  // Its own axis must match the world, like any degree.
  CHECK(contains(error_of("strategy = \"tensor_parallel\"\ntensor = 2", 4),
                 "[parallel] tensor: data 1 x pipeline 1 x tensor 2 is 2 rank(s)"));
}

TEST_CASE("ranks: tensor fastest, then data, then pipeline; coords_of and rank_of invert") {
  const MeshShape shape = mesh("data = 2\npipeline = 2\ntensor = 2", 8);
  CHECK(shape.order_text() == "tensor,data,pipeline");
  // Ranks 0 and 1 are one tensor group: consecutive, so on one node.
  CHECK(shape.describe(0) == "data 0, pipeline 0, tensor 0");
  CHECK(shape.describe(1) == "data 0, pipeline 0, tensor 1");
  CHECK(shape.describe(2) == "data 1, pipeline 0, tensor 0");
  CHECK(shape.describe(5) == "data 0, pipeline 1, tensor 1");
  for (int32_t r = 0; r < shape.size(); ++r) CHECK(shape.rank_of(shape.coords_of(r)) == r);

  const MeshShape custom = mesh(
      "data = 3\npipeline = 2\ntensor = 2\norder = \"pipeline, data, "
      "tensor\"",
      12);
  CHECK(custom.order_text() == "pipeline,data,tensor");
  CHECK(custom.describe(1) == "data 0, pipeline 1, tensor 0");
  CHECK(custom.describe(2) == "data 1, pipeline 0, tensor 0");
  CHECK(custom.describe(6) == "data 0, pipeline 0, tensor 1");
  for (int32_t r = 0; r < custom.size(); ++r) CHECK(custom.rank_of(custom.coords_of(r)) == r);
  CHECK(graft::runtime::rank_labels(custom).size() == 12);
}

TEST_CASE("a planning mesh has coordinates but no communicators") {
  const MeshShape shape = mesh("data = 2\npipeline = 2\ntensor = 2\nzero = 1", 8);
  const graft::runtime::Mesh planned(shape, 5, nullptr);
  CHECK(planned.coord(GRAFT_AXIS_DATA) == 0);
  CHECK(planned.coord(GRAFT_AXIS_PIPELINE) == 1);
  CHECK(planned.coord(GRAFT_AXIS_TENSOR) == 1);
  CHECK(planned.c_mesh().zero == 1);
  CHECK(planned.c_mesh().struct_size == sizeof(graft_mesh));
  for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
    CHECK(planned.axis(a) == nullptr);
    CHECK(planned.c_mesh().axis_comm[a] == nullptr);
    CHECK(planned.c_mesh().order[a] == shape.order[size_t(a)]);
  }
  CHECK(planned.describe() == "data 0, pipeline 1, tensor 1");
}

TEST_CASE("on a local world of one, the three groups are this rank alone") {
  auto job = graft::runtime::start_job();
  const MeshShape shape = mesh("", 1);
  const graft::runtime::Mesh local(shape, 0, &job->world());
  for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
    REQUIRE(local.axis(a) != nullptr);
    CHECK(local.axis(a)->size() == 1);
    CHECK(local.c_mesh().axis_comm[a] != nullptr);
  }
}
