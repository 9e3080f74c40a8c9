// The `tensor_parallel` strategy (Megatron-LM): each pair "linear, element-wise activations,
// linear" is split over every rank, the first linear by columns and the second by rows, so one
// all-reduce joins the pair's output in forward and one its input gradient in backward.
//
// Shapes (N rows of the global batch, D the pair's input, H its hidden features, P ranks):
//   x (N, D) whole on every rank -> COLUMN linear -> (N, H/P) -> activations on the part
//   -> ROW linear -> (N, O) partial sum -> all-reduce -> (N, O) whole on every rank.
//   Backward mirrors it: the COLUMN linear's dx (N, D) is a partial sum, all-reduced.
// Every other layer is replicated: every rank reads the whole batch and computes the same
// loss, so replicated parameters get the same gradients everywhere without communication.
//
// Between the linears may also stand layers that run on a part (GRAFT_SHARD_PART): dropout,
// whose masks are keyed by the element's index within the whole row, so a part draws the
// same mask elements as the whole layer does.
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/strategy.hpp>

#include "../common/megatron_pairs.hpp"

namespace {

using graft::for_each_micro_batch;
using graft::numel;

using graft::parallel::MegatronPair;

class TensorParallel final : public graft::Strategy {
 public:
  TensorParallel(const graft::Options&, const graft_world& world, graft::Host)
      : rank_(world.rank), size_(world.size), comm_(world, "tensor_parallel") {}
  static std::vector<graft::OptionDef> options() { return {}; }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    plan.shards = size_;
    plan.shard_index = rank_;
    pairs_ = graft::parallel::find_megatron_pairs(
        layers, 0, n, size_,
        ", or run [parallel] strategy = \"tensor_parallel\" on a number of ranks that divides ");
    graft::parallel::place_pairs(pairs_, plan);
    int64_t messages = 0, bytes = 0;
    // Whole pairs (attention by heads, GPT blocks): two all-reduces each, which the model runs.
    for (int64_t i = 0; i < n; ++i) {
      if (plan.layers[i].shard != GRAFT_SHARD_NONE ||
          graft::parallel::place_whole_pairs(layers, i, i + 1, plan) == 0)
        continue;
      whole_pairs_ = true;
      messages += i > 0 ? 2 : 1;
      bytes += global_batch * numel(layers[i].output) * int64_t(sizeof(float)) * (i > 0 ? 2 : 1);
    }
    for (const MegatronPair& pair : pairs_) {
      // One all-reduce of the row layer's output, one of the column layer's input gradient
      // (none when the pair starts the model: nobody needs that gradient).
      messages += pair.column > 0 ? 2 : 1;
      bytes += global_batch * numel(layers[pair.row].output) * int64_t(sizeof(float));
      if (pair.column > 0)
        bytes += global_batch * numel(layers[pair.column].input) * int64_t(sizeof(float));
    }
    plan.messages_per_step = messages + 1;  // + the gradient norm's one double
    plan.message_bytes_per_step = bytes + int64_t(sizeof(double));
    plan.axis_bytes_per_step[GRAFT_AXIS_TENSOR] = plan.message_bytes_per_step;
  }

  // The loss scales by 1 / global batch; dropout keys masks by global row, and every rank
  // sees every row, so micro-batches behave exactly as under `single`.
  void train_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "tensor_parallel");
    require_parallel_api(model);
    if (whole_pairs_) model.set_tensor_reduce(comm_);
    const int64_t layers = model.layer_count();
    model.zero_grad();
    for_each_micro_batch(
        ctx, x, y, [&](const graft::Context& part, const DLTensor& px, const DLTensor& py, bool) {
          const DLTensor& prediction = forward(model, part, px, layers);
          backward(model, part, model.loss_and_gradient(part, prediction, py, result), layers);
        });
    // The global gradient norm for clipping: each part counts once, replicated tensors only
    // on rank 0, so the sum over ranks is the norm `single` sees.
    double squared = model.grad_sq_norm(0, layers, /*count_replicated=*/rank_ == 0);
    comm_.all_reduce_f64(&squared, 1, GRAFT_REDUCE_SUM, "tensor_parallel: gradient norm");
    model.optimizer_step_layers(ctx, 0, layers, squared);
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "tensor_parallel");
    require_parallel_api(model);
    if (whole_pairs_) model.set_tensor_reduce(comm_);
    const int64_t layers = model.layer_count();
    for_each_micro_batch(
        ctx, x, y, [&](const graft::Context& part, const DLTensor& px, const DLTensor& py, bool) {
          model.loss(part, forward(model, part, px, layers), py, result);
        });
  }

 private:
  // Forward range by range, all-reducing each ROW layer's partial output in place (the
  // model's planned buffer, which the next range reads as its input).
  const DLTensor& forward(const graft::ModelRef& model, const graft::Context& ctx,
                          const DLTensor& x, int64_t layers) {
    const DLTensor* input = &x;
    int64_t begin = 0;
    for (MegatronPair& pair : pairs_) {
      const DLTensor& out = model.forward(ctx, begin, pair.row + 1, *input);
      DLTensor sum = out;
      comm_.all_reduce(sum, GRAFT_REDUCE_SUM, pair.forward_what.c_str());
      input = &out;
      begin = pair.row + 1;
    }
    if (begin == layers) return *input;
    return model.forward(ctx, begin, layers, *input);
  }

  // Backward range by range from the last layer, all-reducing each COLUMN layer's partial
  // input gradient before the layers below read it.
  void backward(const graft::ModelRef& model, const graft::Context& ctx,
                const DLTensor& dprediction, int64_t layers) {
    const DLTensor* grad = &dprediction;
    int64_t end = layers;
    for (size_t p = pairs_.size(); p-- > 0;) {
      MegatronPair& pair = pairs_[p];
      const DLTensor* dx = model.backward(ctx, pair.column, end, *grad);
      end = pair.column;
      if (!dx) return;  // the pair starts the model
      DLTensor sum = *dx;
      comm_.all_reduce(sum, GRAFT_REDUCE_SUM, pair.backward_what.c_str());
      grad = dx;
    }
    if (end > 0) model.backward(ctx, 0, end, *grad);
  }

  void require_parallel_api(const graft::ModelRef& model) const {
    GRAFT_CHECK(model.has(&graft_model_api::grad_sq_norm) &&
                    model.has(&graft_model_api::optimizer_step_layers),
                "tensor_parallel: this graft host's model api lacks grad_sq_norm and "
                "optimizer_step_layers (SDK 1.1)");
    GRAFT_CHECK(comm_,
                "tensor_parallel: the host lent no communicator; run it "
                "under graft train (mpirun -np N graft train CONFIG)");
  }

  int32_t rank_ = 0, size_ = 1;
  graft::Comm comm_;
  std::vector<MegatronPair> pairs_;
  bool whole_pairs_ = false;  // any layer placed GRAFT_SHARD_PAIR
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("tensor_parallel", "0.1.0",
                     graft::strategy<TensorParallel>(
                         "tensor_parallel",
                         "Megatron pairs: linear split by columns, then linear split by rows"))
