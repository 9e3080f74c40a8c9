// The dataset checks: a reader created with the given options describes itself sensibly, and
// the same samples read twice, and by a second instance, come back as the same bytes.
#include <cmath>
#include <filesystem>

#include "check/check_common.hpp"
#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::checker::detail {

namespace {

using runtime::Failure;

// A reader made as the trainer makes one: options, split, folders, seed, one rank.
class DatasetUnderTest {
 public:
  DatasetUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                   const std::string& split, const std::filesystem::path& cache_dir)
      : who_("dataset '" + record.name + "' (" + split + " split)"),
        vtable_(&record.vtable<graft_dataset_vtable>()) {
    const std::string config_dir = std::filesystem::current_path().string();
    const std::string cache = cache_dir.string();
    const graft_dataset_args args{
        sizeof(graft_dataset_args), split.c_str(), config_dir.c_str(), cache.c_str(), 1234, 0, 1};
    runtime::throw_if_failed(vtable_->create(runtime::host_api(), &options, &args, &self_), who_);
    info.struct_size = sizeof info;
    graft_status* status = vtable_->describe(self_, &info);
    if (status) {
      vtable_->destroy(self_);
      runtime::throw_if_failed(status, who_ + " describe");
    }
  }
  ~DatasetUnderTest() { vtable_->destroy(self_); }
  DatasetUnderTest(const DatasetUnderTest&) = delete;
  DatasetUnderTest& operator=(const DatasetUnderTest&) = delete;

  // x: (n, input...) float32 and y: (n, target...) as the batch loader gives them.
  std::pair<Tensor, Tensor> read(const std::vector<int64_t>& indices) {
    const int64_t n = static_cast<int64_t>(indices.size());
    std::vector<int64_t> x_dims{n}, y_dims{n};
    x_dims.insert(x_dims.end(), info.input.dims, info.input.dims + info.input.ndim);
    y_dims.insert(y_dims.end(), info.target.shape.dims,
                  info.target.shape.dims + info.target.shape.ndim);
    std::pair<Tensor, Tensor> batch{Tensor(x_dims), Tensor(y_dims, info.target.dtype)};
    runtime::throw_if_failed(
        vtable_->read(self_, indices.data(), n, batch.first.get(), batch.second.get()),
        who_ + " read");
    return batch;
  }

  graft_dataset_info info{};

 private:
  std::string who_;
  const graft_dataset_vtable* vtable_;
  void* self_ = nullptr;
};

std::vector<int64_t> dims(const graft_shape& s) { return {s.dims, s.dims + s.ndim}; }

std::string describe(const graft_dataset_info& info) {
  const std::string target =
      info.target.classes > 0
          ? "int32 labels of " + std::to_string(info.target.classes) + " classes"
          : "float32 targets " + shape_text(dims(info.target.shape));
  return std::to_string(info.samples) + " samples, input " + shape_text(dims(info.input)) + ", " +
         target;
}

void check_info(const graft_dataset_info& info) {
  if (info.samples <= 0)
    throw Failure("describe() reports " + std::to_string(info.samples) + " samples");
  if (info.input.ndim < 1 || graft_shape_numel(&info.input) <= 0)
    throw Failure("describe() reports an empty input shape");
  const DLDataType t = info.target.dtype;
  const bool labels = t.code == kDLInt && t.bits == 32 && t.lanes == 1;
  const bool floats = t.code == kDLFloat && t.bits == 32 && t.lanes == 1;
  if (!labels && !floats) throw Failure("targets must be int32 class labels or float32 values");
  // A sequence (a text window) has a label per position: shape (T,).
  if (labels && (info.target.classes <= 0 || info.target.shape.ndim > 1 ||
                 graft_shape_numel(&info.target.shape) <= 0))
    throw Failure(
        "int32 targets are class labels: shape () or (T,) and classes > 0, but describe() "
        "reports classes = " +
        std::to_string(info.target.classes) + " and shape " + shape_text(dims(info.target.shape)));
}

}  // namespace

std::vector<CheckResult> dataset_checks(const runtime::PluginRecord& record,
                                        const toml::table& options, const CheckSettings& settings) {
  const runtime::BoundOptions bound = bind(record, options);
  const std::filesystem::path cache = settings.work_dir / (record.name + "_cache");
  std::filesystem::create_directories(cache);
  std::vector<CheckResult> results;
  bool described = false;
  results.push_back(run_check(record, "describe", [&](CheckResult& r) {
    DatasetUnderTest train(record, *bound.get(), "train", cache);
    check_info(train.info);
    described = true;
    r.value = "train: " + describe(train.info);
    try {
      DatasetUnderTest test(record, *bound.get(), "test", cache);
      check_info(test.info);
      r.value += "; test: " + std::to_string(test.info.samples) + " samples";
    } catch (const std::exception& e) {
      r.message =
          std::string("no usable test split (training configs evaluate on it): ") + e.what();
    }
  }));
  if (!described) {
    results.push_back(skipped(record, "determinism", "the reader could not be created"));
    return results;
  }
  results.push_back(run_check(record, "determinism", [&](CheckResult& r) {
    DatasetUnderTest first(record, *bound.get(), "train", cache);
    DatasetUnderTest second(record, *bound.get(), "train", cache);
    const int64_t last = first.info.samples - 1;
    // Out of order, as a shuffled batch asks for them.
    const std::vector<int64_t> indices{last / 2, 0, last, last / 3};
    const auto [x, y] = first.read(indices);
    const auto [x_again, y_again] = first.read(indices);
    const auto [x_other, y_other] = second.read(indices);
    if (!same_bits(x, x_again) || !same_bits(y, y_again))
      throw Failure("reading the same samples twice gave different bytes");
    if (!same_bits(x, x_other) || !same_bits(y, y_other))
      throw Failure("a second reader with the same options gave different bytes");
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!std::isfinite(x.f()[i])) throw Failure("sample inputs hold non-finite values");
    const int64_t classes = first.info.target.classes;
    for (int64_t i = 0; classes == 0 && i < y.numel(); ++i)
      if (!std::isfinite(y.f()[i])) throw Failure("sample targets hold non-finite values");
    for (int64_t i = 0; classes > 0 && i < y.numel(); ++i)
      if (y.i()[i] < 0 || y.i()[i] >= classes)
        throw Failure("label " + std::to_string(y.i()[i]) + " is outside [0, " +
                      std::to_string(classes) + ")");
    r.value = count(int64_t(indices.size()), "sample") +
              " read twice and by a second reader: "
              "same bytes; inputs finite" +
              (classes > 0 ? "; labels in range" : "; targets finite");
  }));
  return results;
}

}  // namespace graft::checker::detail
