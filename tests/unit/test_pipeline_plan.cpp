// The pipeline's plan without MPI: balanced and explicit stages, the errors a bad [parallel]
// table gets, slots, rows and messages per rank, the gpipe and 1f1b orders (simulated to
// completion), and `graft validate --world N`.
#include <fstream>
#include <map>

#include "test_support.hpp"
#include "util/errors.hpp"

// The orders are the plugin's internals (its library exports one symbol), so the one pure
// file that computes them is compiled into this test as well.
#include "../../plugins/parallel/pipeline/stage_plan.cpp"

namespace fs = std::filesystem;
using graft::runtime::BoundOptions;
using graft::runtime::PluginRecord;

namespace {

// The built-in pipeline strategy for rank `rank` of `world`, made as a session makes it.
class PipelineRank {
 public:
  PipelineRank(const std::string& options_toml, int32_t rank, int32_t world)
      : options_(graft::test::options(GRAFT_KIND_STRATEGY, "pipeline", options_toml)) {
    const PluginRecord* record =
        graft::test::builtin_registry().find(GRAFT_KIND_STRATEGY, "pipeline");
    REQUIRE(record);
    vtable_ = &record->vtable<graft_strategy_vtable>();
    graft_world w{sizeof(graft_world), rank, world, nullptr, nullptr, 0.0};
    created_ = vtable_->create(graft::runtime::host_api(), options_.get(), &w, &self_);
  }
  ~PipelineRank() {
    if (self_) vtable_->destroy(self_);
  }
  PipelineRank(const PipelineRank&) = delete;
  PipelineRank& operator=(const PipelineRank&) = delete;

  // The status message of create(), "" when it succeeded.
  std::string create_error() { return take(created_); }

  // plan() on layers with these parameter counts (each (N, 16) -> (N, 16)); "" or the error.
  std::string plan(const std::vector<int64_t>& parameters, int64_t global_batch) {
    infos_.clear();
    for (int64_t p : parameters)
      infos_.push_back(graft_layer_info{sizeof(graft_layer_info), p ? "linear" : "relu",
                                        p ? GRAFT_KIND_LAYER : GRAFT_KIND_ACTIVATION, 0, p,
                                        graft_shape{1, {16}}, graft_shape{1, {16}}});
    placement_.assign(parameters.size(),
                      graft_layer_placement{sizeof(graft_layer_placement), 0, 0});
    plan_ = graft_plan{};
    plan_.struct_size = sizeof plan_;
    plan_.stages = plan_.shards = plan_.slots = 1;
    plan_.rows_per_slot = global_batch;
    plan_.n_layers = int64_t(parameters.size());
    plan_.layers = placement_.data();
    return take(vtable_->plan(self_, infos_.data(), plan_.n_layers, global_batch, &plan_));
  }
  std::vector<int32_t> stages() const {
    std::vector<int32_t> out;
    for (const auto& p : placement_) out.push_back(p.stage);
    return out;
  }
  const graft_plan& result() const { return plan_; }
  std::pair<int64_t, int64_t> batch_rows(int64_t rows) {
    int64_t begin = -1, end = -1;
    vtable_->batch_rows(self_, rows, 1, &begin, &end);
    return {begin, end};
  }

 private:
  static std::string take(graft_status* st) {
    if (!st) return "";
    try {
      graft::runtime::throw_if_failed(st, "pipeline");
    } catch (const graft::runtime::UserError& e) {
      return e.what();
    }
    return "(not a user error)";
  }
  BoundOptions options_;
  const graft_strategy_vtable* vtable_ = nullptr;
  void* self_ = nullptr;
  graft_status* created_ = nullptr;
  std::vector<graft_layer_info> infos_;
  std::vector<graft_layer_placement> placement_;
  graft_plan plan_{};
};

// Stage of each layer when `world` ranks balance layers of these parameter counts.
std::vector<int32_t> balanced(const std::vector<int64_t>& parameters, int32_t world) {
  PipelineRank rank("", 0, world);
  REQUIRE(rank.create_error().empty());
  REQUIRE(rank.plan(parameters, 64).empty());
  return rank.stages();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("balanced stages: fewest parameters on the fullest stage, activations with their layer") {
  // fashion_mlp: linear 784->512, dropout, linear 512->256, dropout, linear 256->10.
  const std::vector<int64_t> mlp = {401920, 0, 131328, 0, 2570};
  CHECK(balanced(mlp, 1) == std::vector<int32_t>{0, 0, 0, 0, 0});
  CHECK(balanced(mlp, 2) == std::vector<int32_t>{0, 0, 1, 1, 1});
  CHECK(balanced(mlp, 3) == std::vector<int32_t>{0, 0, 1, 1, 2});
  CHECK(balanced(mlp, 5) == std::vector<int32_t>{0, 1, 2, 3, 4});
  CHECK(balanced({10, 10, 10, 10}, 2) == std::vector<int32_t>{0, 0, 1, 1});
  CHECK(balanced({10, 10, 10, 10}, 4) == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(balanced({30, 10, 10, 10}, 2) == std::vector<int32_t>{0, 1, 1, 1});
  // A leading parameter-free layer (flatten) joins the first stage; trailing ones their layer.
  CHECK(balanced({0, 10, 0, 10, 0}, 2) == std::vector<int32_t>{0, 0, 0, 1, 1});
  CHECK(balanced({0, 0, 0}, 2) == std::vector<int32_t>{0, 0, 1});  // deterministic when all tie
}

TEST_CASE("more ranks than layers is an error, never a silent drop") {
  PipelineRank rank("", 0, 6);
  REQUIRE(rank.create_error().empty());
  const std::string error = rank.plan({1, 0, 1, 0, 1}, 64);
  CHECK(contains(error, "6 ranks"));
  CHECK(contains(error, "only 5 top-level layers"));
  CHECK(contains(error, "mpirun -np 5"));
}

TEST_CASE("explicit stages place layers as written, as pairs or flat") {
  for (const char* stages : {"stages = [[0, 1], [2, 4]]", "stages = [0, 1, 2, 4]"}) {
    CAPTURE(stages);
    PipelineRank rank(stages, 1, 2);
    REQUIRE(rank.create_error().empty());
    REQUIRE(rank.plan({5, 0, 5, 0, 5}, 64).empty());
    CHECK(rank.stages() == std::vector<int32_t>{0, 0, 1, 1, 1});
    CHECK(rank.result().stages == 2);
    CHECK(rank.result().stage_index == 1);
  }
}

TEST_CASE("explicit stages that do not cover the layers once, in order, name the key and fix") {
  const std::map<std::string, std::string> cases = {
      {"[[0, 1], [3, 4]]", "stage 1 starts at layer 3, but stage 0 ended at layer 1"},
      {"[[0, 2], [1, 4]]", "stage 1 starts at layer 1, but stage 0 ended at layer 2"},
      {"[[1, 2], [3, 4]]", "stage 0 starts at layer 1, not at layer 0"},
      {"[[0, 1], [2, 3]]", "layers 4..4 are in no stage"},
      {"[[0, 4], [5, 5]]", "stage 1 ends at layer 5, but the model's last layer is 4"},
      {"[[0, 3], [4, 2]]", "stage 1 ends (layer 2) before it starts (layer 4)"},
  };
  for (const auto& c : cases) {
    const auto& [stages, why] = c;
    CAPTURE(c.first);  // the member, not the binding: clang 14's CAPTURE rejects bindings
    PipelineRank rank("stages = " + stages, 0, 2);
    REQUIRE(rank.create_error().empty());
    const std::string error = rank.plan({5, 0, 5, 0, 5}, 64);
    CHECK(contains(error, why));
    CHECK(contains(error, "pipeline: stages = " + stages));
    CHECK(contains(error, "must cover layers 0..4 in order, each exactly once"));
    CHECK(contains(error, "e.g. stages = [[0, 1], [2, 4]]"));
  }
  PipelineRank six("stages = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]", 0, 6);
  REQUIRE(six.create_error().empty());
  CHECK(contains(six.plan({5, 0, 5, 0, 5}, 64), "6 stages but the model has only 5"));
}

TEST_CASE("stages given for another world size, or not in pairs, fail at creation on every rank") {
  for (int32_t r = 0; r < 3; ++r) {
    PipelineRank rank("stages = [[0, 1], [2, 4]]", r, 3);
    const std::string error = rank.create_error();
    CHECK(contains(error, "pipeline: stages = [[0, 1], [2, 4]] lists 2 stages, but the job has 3"));
    CHECK(contains(error, "mpirun -np 2"));
  }
  PipelineRank odd("stages = [0, 1, 2]", 0, 2);
  CHECK(contains(odd.create_error(), "expected [first, last] pairs"));
  CHECK_THROWS_WITH(PipelineRank("stages = [[[0, 1]], [2, 4]]", 0, 2),
                    doctest::Contains("[pipeline] stages: lists nest one level deep at most"));
}

TEST_CASE("slots, rows and messages per rank follow the schedule") {
  // 4 stages of one layer each, (N, 16) everywhere; global batch 64 as 4 micro-batches of 16.
  for (const char* schedule : {"gpipe", "1f1b"}) {
    CAPTURE(schedule);
    for (int32_t r = 0; r < 4; ++r) {
      PipelineRank rank(std::string("schedule = \"") + schedule + "\"", r, 4);
      REQUIRE(rank.create_error().empty());
      REQUIRE(rank.plan({5, 5, 5, 5}, 64).empty());
      const graft_plan& plan = rank.result();
      CHECK(plan.rows_per_slot == 16);
      CHECK(plan.slots == (std::string(schedule) == "gpipe" ? 4 : 4 - r));
      const int64_t neighbours = (r > 0 ? 1 : 0) + (r < 3 ? 1 : 0);
      CHECK(plan.messages_per_step == 4 * neighbours);
      CHECK(plan.message_bytes_per_step == neighbours * 64 * 16 * 4);
      const auto rows = rank.batch_rows(64);
      CHECK(rows.first == 0);
      CHECK(rows.second == (r == 0 || r == 3 ? 64 : 0));  // the middle stages read nothing
    }
  }
  PipelineRank ten("micro_batches = 4", 0, 1);  // 10 rows as 4 -> 3, 3, 3, 1
  REQUIRE(ten.plan({5}, 10).empty());
  CHECK(ten.result().rows_per_slot == 3);
  CHECK(ten.batch_rows(10) == std::pair<int64_t, int64_t>{0, 10});
}

TEST_CASE("micro-batches are ceil(rows / m) rows; fewer when the batch is small") {
  using graft::pipeline::MicroBatches;
  MicroBatches a(10, 4);
  CHECK(a.size == 3);
  CHECK(a.count == 4);
  CHECK(a.rows_of(3) == 1);
  MicroBatches b(5, 4);
  CHECK(b.count == 3);
  CHECK(b.rows_of(2) == 1);
  MicroBatches c(64, 4);
  CHECK(c.count == 4);
  CHECK(c.begin(3) == 48);
}

TEST_CASE("gpipe and 1f1b orders finish without deadlock in (m + p - 1) forward+backward times") {
  using namespace graft::pipeline;
  for (auto schedule : {std::pair{false, 0}, {true, 0}, {true, 1}, {true, 2}}) {
    const auto [one_f_one_b, extra] = schedule;
    for (int32_t p : {1, 2, 3, 4}) {
      for (int64_t m : {1, 2, 4, 8, 16}) {
        CAPTURE(schedule.first);   // 1f1b; members, since clang 14's CAPTURE rejects bindings
        CAPTURE(schedule.second);  // extra warm-up micro-batches
        CAPTURE(p);
        CAPTURE(m);
        // Unit-time forwards and backwards; an op waits for its neighbour's matching op.
        std::vector<int64_t> next(size_t(p), 0), held(size_t(p), 0), most(size_t(p), 0);
        // When stage s finished the forward (backward) of micro-batch k; -1: not yet.
        using Times = std::vector<std::vector<int64_t>>;
        Times forward_done(size_t(p), std::vector<int64_t>(size_t(m), -1));
        Times backward_done = forward_done;
        auto before = [&](const Times& done, int32_t s, int64_t k, int64_t t) {
          return done[size_t(s)][size_t(k)] >= 0 && done[size_t(s)][size_t(k)] < t;
        };
        int64_t time = 0, finished = 0;
        while (finished < p && time < 10 * (m + p) + 10) {
          std::vector<std::pair<int32_t, Op>> now;
          for (int32_t s = 0; s < p; ++s) {
            if (next[size_t(s)] == 2 * m) continue;
            const Op op = schedule_op(one_f_one_b, s, p, m, next[size_t(s)], extra);
            const bool ready = op.forward
                                   ? (s == 0 || before(forward_done, s - 1, op.micro, time))
                                   : (forward_done[size_t(s)][size_t(op.micro)] >= 0 &&
                                      (s == p - 1 || before(backward_done, s + 1, op.micro, time)));
            if (ready) now.emplace_back(s, op);
          }
          for (const auto& [s, op] : now) {
            (op.forward ? forward_done : backward_done)[size_t(s)][size_t(op.micro)] = time;
            held[size_t(s)] += op.forward ? 1 : -1;
            most[size_t(s)] = std::max(most[size_t(s)], held[size_t(s)]);
            if (++next[size_t(s)] == 2 * m) ++finished;
          }
          ++time;
        }
        REQUIRE(finished == p);          // no stage waits forever
        CHECK(time == 2 * (m + p - 1));  // idle (p - 1) / (m + p - 1) of it on every stage
        for (int32_t s = 0; s < p; ++s)
          CHECK(most[size_t(s)] <= in_flight(one_f_one_b, s, p, m, extra));
        CHECK(predicted_bubble(p, m) == doctest::Approx(double(p - 1) / double(m + p - 1)));
      }
    }
  }
}

TEST_CASE("graft validate --world N prints each rank's placement, or the config error") {
  const fs::path dir = graft::test::temp_dir("pipeline_validate");
  const fs::path config = dir / "pipeline.toml";
  std::ofstream(config) << "[run]\nname = \"p\"\nseed = 3\nsteps = 2\noutput_dir = \""
                        << dir.string()
                        << "\"\n"
                           "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 8\n"
                           "classes = 4\nsamples = 128\ntest_samples = 32\nbatch_size = 32\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                           "[[model.layers]]\ntype = \"relu\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 32\n"
                           "[[model.layers]]\ntype = \"relu\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                           "[loss]\ntype = \"cross_entropy\"\n"
                           "[optimizer]\ntype = \"sgd\"\nlr = 0.1\n"
                           "[parallel]\nstrategy = \"pipeline\"\n";  // micro_batches: 4
  auto ok = graft::test::run_graft("validate " + config.string() + " --world 2");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  CHECK(contains(ok.output, "placement on 2 rank(s), strategy pipeline"));
  CHECK(contains(ok.output, "rank 0  stage 0/2, shard 0/1: layers 0 linear, 1 relu"));
  CHECK(contains(ok.output, "rank 1  stage 1/2, shard 0/1: layers 2 linear, 3 relu, 4 linear"));
  CHECK(contains(ok.output, "parameters 288,"));
  CHECK(contains(ok.output, "parameters 1188,"));
  // 4 micro-batches of 8 rows x 32 floats each way: 4 messages, 4 KiB per step from each rank.
  CHECK(contains(ok.output, "sends 4 message(s), 4.0 KiB"));

  auto wrong = graft::test::run_graft("validate " + config.string() +
                                      " --set parallel.stages=[[0,1],[2,4]] --world 3");
  CHECK(wrong.exit_code == 2);
  CHECK(
      contains(wrong.output, "[parallel] strategy 'pipeline': stages = [[0, 1], [2, 4]] lists 2"));
  auto many = graft::test::run_graft("validate " + config.string() + " --world 6");
  CHECK(many.exit_code == 2);
  CHECK(contains(many.output, "only 5 top-level layers"));
  auto single = graft::test::run_graft("validate " + config.string() +
                                       " --set parallel.strategy=single --world 2");
  CHECK(single.exit_code == 2);
  CHECK(contains(single.output, "runs on one process"));
  auto one = graft::test::run_graft("validate " + config.string() +
                                    " --set parallel.strategy=single --world 1");
  INFO(one.output);
  CHECK(one.exit_code == 0);
  CHECK(contains(one.output, "rank 0  stage 0/1, shard 0/1: layers 0 linear, 1 relu, 2 linear"));
}
