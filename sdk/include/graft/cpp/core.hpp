// The C++ side of the SDK that every plugin kind shares: errors, shapes, tensor views,
// options and the exception guard that keeps C++ exceptions from crossing the C ABI.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "graft/graft.h"

namespace graft {

// An error with a graft_status_code; the guard turns it into a graft_status for the host.
class Error : public std::runtime_error {
 public:
  Error(int32_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int32_t code() const { return code_; }

 private:
  int32_t code_;
};

// A status returned by a host call inside a plugin, passed back to the host unchanged.
class StatusError : public std::exception {
 public:
  explicit StatusError(graft_status* s) : status(s) {}
  const char* what() const noexcept override { return "graft host call failed"; }
  graft_status* status;
};

// Throws on a failed host call so plugin code reads straight through.
inline void check(graft_status* s) {
  if (s) throw StatusError(s);
}

}  // namespace graft

// GRAFT_CHECK(cond, a << b << c): an invalid-argument error whose message the user reads.
#define GRAFT_CHECK(cond, stream_expr)                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::ostringstream graft_check_os_;                                      \
      graft_check_os_ << stream_expr;                                          \
      throw ::graft::Error(GRAFT_ERR_INVALID_ARGUMENT, graft_check_os_.str()); \
    }                                                                          \
  } while (0)

namespace graft {

// Runs f and converts anything it throws into a status; NULL on success.
template <class F>
graft_status* guard(const graft_host_api* host, F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const StatusError& e) {
    return e.status;
  } catch (const Error& e) {
    return host->make_status(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return host->make_status(GRAFT_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return host->make_status(GRAFT_ERR_RUNTIME, e.what());
  } catch (...) {
    return host->make_status(GRAFT_ERR_RUNTIME, "unknown C++ exception");
  }
}

// A per-sample shape: graft_shape with C++ comforts.
struct Shape : graft_shape {
  Shape() : graft_shape{} {}
  Shape(const graft_shape& s) : graft_shape(s) {}  // NOLINT: implicit on purpose
  Shape(std::initializer_list<int64_t> d) : graft_shape{} {
    if (d.size() > GRAFT_MAX_DIMS) throw Error(GRAFT_ERR_INVALID_ARGUMENT, "too many dimensions");
    for (int64_t v : d) dims[ndim++] = v;
  }
  int64_t numel() const { return graft_shape_numel(this); }
  int64_t operator[](int i) const { return dims[i]; }
  bool operator==(const Shape& o) const {
    if (ndim != o.ndim) return false;
    for (int i = 0; i < ndim; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (ndim == 1 ? ",)" : ")");
  }
};

// Tensor accessors. graft tensors are dense and row-major; axis 0 is the batch.
inline float* f32(const DLTensor& t) {
  return reinterpret_cast<float*>(static_cast<char*>(t.data) + t.byte_offset);
}
inline int32_t* i32(const DLTensor& t) {
  return reinterpret_cast<int32_t*>(static_cast<char*>(t.data) + t.byte_offset);
}
inline int64_t numel(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}
inline int64_t numel(const graft_shape& s) { return graft_shape_numel(&s); }
inline int64_t rows(const DLTensor& t) { return t.ndim ? t.shape[0] : 1; }
inline int64_t cols(const DLTensor& t) { return t.ndim ? numel(t) / t.shape[0] : 1; }
inline bool on_cpu(const DLTensor& t) { return t.device.device_type == kDLCPU; }

// A DLTensor that owns its shape array: for views a plugin makes of its own memory.
class View {
 public:
  View() : shape_{}, t_{} {}
  View(void* data, DLDevice device, std::initializer_list<int64_t> shape,
       DLDataType dtype = DLDataType{kDLFloat, 32, 1})
      : shape_{}, t_{} {
    t_.data = data;
    t_.device = device;
    t_.dtype = dtype;
    for (int64_t d : shape) shape_[t_.ndim++] = d;
    t_.shape = shape_;
  }
  // A batch of `rows` samples of shape per_row: (rows, per_row...).
  View(void* data, DLDevice device, int64_t rows, const graft_shape& per_row,
       DLDataType dtype = DLDataType{kDLFloat, 32, 1})
      : shape_{}, t_{} {
    t_.data = data;
    t_.device = device;
    t_.dtype = dtype;
    shape_[t_.ndim++] = rows;
    for (int i = 0; i < per_row.ndim; ++i) shape_[t_.ndim++] = per_row.dims[i];
    t_.shape = shape_;
  }
  View(const View& o) : View() { *this = o; }
  View& operator=(const View& o) {
    std::memcpy(shape_, o.shape_, sizeof shape_);
    t_ = o.t_;
    t_.shape = shape_;
    return *this;
  }
  DLTensor& operator*() { return t_; }
  const DLTensor& operator*() const { return t_; }
  DLTensor* operator->() { return &t_; }
  DLTensor* get() { return &t_; }
  const DLTensor* get() const { return &t_; }

 private:
  int64_t shape_[GRAFT_MAX_DIMS + 1];
  DLTensor t_;
};

// Reads a plugin's validated options. Every declared option is present (defaults filled in).
class Options {
 public:
  explicit Options(const graft_options* o) : o_(o) {}
  bool has(const char* name) const { return find(name) != nullptr; }
  bool get_bool(const char* name) const { return value(name, GRAFT_OPT_BOOL).int_value != 0; }
  int64_t get_int(const char* name) const { return value(name, GRAFT_OPT_INT).int_value; }
  double get_float(const char* name) const {
    const graft_option_value* v = find(name);
    if (v && v->type == GRAFT_OPT_INT) return static_cast<double>(v->int_value);
    return value(name, GRAFT_OPT_FLOAT).float_value;
  }
  std::string get_string(const char* name) const {
    return value(name, GRAFT_OPT_STRING).string_value;
  }
  std::vector<int64_t> get_int_list(const char* name) const {
    const auto& v = value(name, GRAFT_OPT_INT_LIST);
    return {v.ints, v.ints + v.count};
  }
  std::vector<double> get_float_list(const char* name) const {
    const auto& v = value(name, GRAFT_OPT_FLOAT_LIST);
    return {v.floats, v.floats + v.count};
  }
  std::vector<std::string> get_string_list(const char* name) const {
    const auto& v = value(name, GRAFT_OPT_STRING_LIST);
    return {v.strings, v.strings + v.count};
  }

 private:
  const graft_option_value* find(const char* name) const {
    for (size_t i = 0; o_ && i < o_->count; ++i)
      if (std::strcmp(o_->values[i].name, name) == 0) return &o_->values[i];
    return nullptr;
  }
  const graft_option_value& value(const char* name, graft_option_type type) const {
    const graft_option_value* v = find(name);
    if (!v) throw Error(GRAFT_ERR_RUNTIME, std::string("option '") + name + "' was not declared");
    if (v->type != type)
      throw Error(GRAFT_ERR_RUNTIME, std::string("option '") + name + "' read with another type");
    return *v;
  }
  const graft_options* o_;
};

// One declared option. Strings are owned here; spec() points into them.
struct OptionDef {
  std::string name, default_value, choices, doc;
  graft_option_type type;
  double min = -1e300, max = 1e300;
  bool required = false;

  OptionDef& range(double lo, double hi) {
    min = lo;
    max = hi;
    return *this;
  }
  graft_option_spec spec() const {
    return graft_option_spec{sizeof(graft_option_spec),
                             name.c_str(),
                             type,
                             required ? nullptr : default_value.c_str(),
                             min,
                             max,
                             choices.empty() ? nullptr : choices.c_str(),
                             doc.c_str()};
  }
};

namespace detail {
inline std::string toml_number(double v) {
  // The shortest text that reads back as the same double (0.9, not 0.90000000000000002).
  char buf[32];
  std::string s(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a TOML float
  return s;
}
inline std::string toml_string(const std::string& v) {
  std::string s = "\"";
  for (char c : v) s += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return s + "\"";
}
}  // namespace detail

inline OptionDef option_bool(std::string name, bool def, std::string doc) {
  return OptionDef{std::move(name), def ? "true" : "false", "", std::move(doc), GRAFT_OPT_BOOL};
}
inline OptionDef option_int(std::string name, int64_t def, std::string doc) {
  return OptionDef{std::move(name), std::to_string(def), "", std::move(doc), GRAFT_OPT_INT};
}
inline OptionDef option_float(std::string name, double def, std::string doc) {
  return OptionDef{std::move(name), detail::toml_number(def), "", std::move(doc), GRAFT_OPT_FLOAT};
}
// choices: "a|b|c" or "" for any string.
inline OptionDef option_string(std::string name, std::string def, std::string doc,
                               std::string choices = "") {
  return OptionDef{std::move(name), detail::toml_string(def), std::move(choices), std::move(doc),
                   GRAFT_OPT_STRING};
}
inline OptionDef option_int_list(std::string name, std::vector<int64_t> def, std::string doc) {
  std::string s = "[";
  for (size_t i = 0; i < def.size(); ++i) s += (i ? ", " : "") + std::to_string(def[i]);
  return OptionDef{std::move(name), s + "]", "", std::move(doc), GRAFT_OPT_INT_LIST};
}
inline OptionDef option_float_list(std::string name, std::vector<double> def, std::string doc) {
  std::string s = "[";
  for (size_t i = 0; i < def.size(); ++i) s += (i ? ", " : "") + detail::toml_number(def[i]);
  return OptionDef{std::move(name), s + "]", "", std::move(doc), GRAFT_OPT_FLOAT_LIST};
}
inline OptionDef option_string_list(std::string name, std::vector<std::string> def,
                                    std::string doc) {
  std::string s = "[";
  for (size_t i = 0; i < def.size(); ++i) s += (i ? ", " : "") + detail::toml_string(def[i]);
  return OptionDef{std::move(name), s + "]", "", std::move(doc), GRAFT_OPT_STRING_LIST};
}
// An option the user must give; no default.
inline OptionDef required(OptionDef d) {
  d.required = true;
  return d;
}

// Wrappers over the host's compute primitives that throw on failure.
inline void gemm(const graft_exec_ctx& ctx, bool ta, bool tb, float alpha, const DLTensor& a,
                 const DLTensor& b, float beta, DLTensor& c) {
  check(ctx.host->gemm(&ctx, ta, tb, alpha, &a, &b, beta, &c));
}
inline void sum_rows(const graft_exec_ctx& ctx, const DLTensor& x, float beta, DLTensor& out) {
  check(ctx.host->sum_rows(&ctx, &x, beta, &out));
}
inline void fill(const graft_exec_ctx& ctx, DLTensor& t, float value) {
  check(ctx.host->fill(&ctx, &t, value));
}
inline void copy(const graft_exec_ctx& ctx, const DLTensor& src, DLTensor& dst) {
  check(ctx.host->copy(&ctx, &src, &dst));
}
inline void axpby(const graft_exec_ctx& ctx, float alpha, const DLTensor& x, float beta,
                  DLTensor& y) {
  check(ctx.host->axpby(&ctx, alpha, &x, beta, &y));
}

}  // namespace graft
