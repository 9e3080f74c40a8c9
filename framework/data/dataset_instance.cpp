// Creating, describing and reading a dataset plugin object, with the checks that keep a
// faulty plugin's description from reaching the model builder.
#include "data/dataset_instance.hpp"

#include <cstddef>

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
  // decode and encode came in ABI 1.3: an older table ends after read.
  if (vtable_->struct_size < offsetof(graft_dataset_vtable, read) + sizeof(vtable_->read) ||
      !vtable_->create || !vtable_->destroy || !vtable_->describe || !vtable_->read)
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
    // Labels: one per sample, or one per position of a sequence (text: the next tokens).
    bool labels = is_dtype(target.dtype, kDLInt) && target.shape.ndim >= 0 &&
                  target.shape.ndim <= GRAFT_MAX_DIMS && graft_shape_numel(&target.shape) >= 1 &&
                  target.classes > 0;
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
  has_text_ =
      vtable_->struct_size >= offsetof(graft_dataset_vtable, encode) + sizeof(vtable_->encode) &&
      vtable_->decode && vtable_->encode;
}

std::string DatasetInstance::decode(const int32_t* ids, int64_t n) const {
  if (!has_text_) throw UserError(who_ + " holds no text: it cannot turn token ids into text");
  std::string text(static_cast<size_t>(4 * n + 16), '\0');
  int64_t length = 0;
  throw_if_failed(vtable_->decode(self_, ids, n, text.data(), int64_t(text.size()), &length), who_);
  if (length > int64_t(text.size())) {
    text.resize(static_cast<size_t>(length));
    throw_if_failed(vtable_->decode(self_, ids, n, text.data(), length, &length), who_);
  }
  text.resize(static_cast<size_t>(length));
  return text;
}

std::vector<int32_t> DatasetInstance::encode(const std::string& text) const {
  if (!has_text_) throw UserError(who_ + " holds no text: it cannot turn text into token ids");
  std::vector<int32_t> ids(text.size() + 1);
  int64_t count = 0;
  throw_if_failed(vtable_->encode(self_, text.data(), int64_t(text.size()), ids.data(),
                                  int64_t(ids.size()), &count),
                  who_);
  if (count > int64_t(ids.size())) {
    ids.resize(static_cast<size_t>(count));
    throw_if_failed(
        vtable_->encode(self_, text.data(), int64_t(text.size()), ids.data(), count, &count), who_);
  }
  ids.resize(static_cast<size_t>(count));
  return ids;
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
