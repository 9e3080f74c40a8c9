// Creating, describing and reading a dataset plugin object, with the checks that keep a
// faulty plugin's description from reaching the model builder.
#include "data/dataset_instance.hpp"

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {
bool is_dtype(const DLDataType& t, uint8_t code) {
  return t.code == code && t.bits == 32 && t.lanes == 1;
}
}  // namespace

DatasetInstance::DatasetInstance(const PluginRecord& record, const BoundOptions& options,
                                 const graft_dataset_args& args)
    : who_("dataset '" + record.name + "' (" + record.library.filename().string() + ")") {
  if (record.kind != GRAFT_KIND_DATASET)
    throw UserError(who_ + " is a " + kind_name(record.kind) + ", not a dataset");
  vtable_ = &record.vtable<graft_dataset_vtable>();
  if (vtable_->struct_size < sizeof(graft_dataset_vtable) || !vtable_->create ||
      !vtable_->destroy || !vtable_->describe || !vtable_->read)
    throw UserError(who_ +
                    ": its vtable lacks functions a dataset must provide; rebuild the "
                    "plugin against this SDK");
  throw_if_failed(vtable_->create(host_api(), options.get(), &args, &self_), who_);
  try {
    throw_if_failed(vtable_->describe(self_, &info_), who_);
    const graft_target_info& target = info_.target;
    if (info_.samples < 0 || info_.input.ndim < 1 || info_.input.ndim > GRAFT_MAX_DIMS ||
        graft_shape_numel(&info_.input) < 1)
      throw UserError(who_ + " describes " + std::to_string(info_.samples) +
                      " samples and an input of " + std::to_string(info_.input.ndim) +
                      " dimensions; a dataset needs samples >= 0 and an input of 1 to " +
                      std::to_string(GRAFT_MAX_DIMS) + " non-empty dimensions");
    // One label per sample (shape ()), or one per position of a sequence (shape (T,)): the
    // next-token targets of a text window.
    bool labels = is_dtype(target.dtype, kDLInt) && target.shape.ndim <= 1 &&
                  graft_shape_numel(&target.shape) >= 1 && target.classes > 0;
    bool values = is_dtype(target.dtype, kDLFloat) && target.shape.ndim >= 0 &&
                  target.shape.ndim <= GRAFT_MAX_DIMS && graft_shape_numel(&target.shape) >= 1;
    if (!labels && !values)
      throw UserError(who_ +
                      " describes targets that are neither int32 class labels (one per "
                      "sample or per position, classes > 0) nor float32 values");
  } catch (...) {
    vtable_->destroy(self_);
    throw;
  }
}

DatasetInstance::~DatasetInstance() { vtable_->destroy(self_); }

size_t DatasetInstance::input_bytes() const {
  return static_cast<size_t>(graft_shape_numel(&info_.input)) * sizeof(float);
}
size_t DatasetInstance::target_bytes() const {
  return static_cast<size_t>(graft_shape_numel(&info_.target.shape)) * 4;  // int32 or float32
}

void DatasetInstance::read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) {
  throw_if_failed(vtable_->read(self_, indices, n, &x, &y), who_);
}

}  // namespace graft::runtime
