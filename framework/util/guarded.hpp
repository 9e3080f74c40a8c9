// The runtime's side of the C tables it lends to plugins (graft_model_api, graft_comm_api):
// exceptions must not cross the ABI, so each entry runs its body through guarded().
#pragma once

#include <exception>

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

// Runs f; what it throws comes back as a graft_status (NULL on success). A UserError is the
// caller's mistake (GRAFT_ERR_INVALID_ARGUMENT); anything else failed while running.
template <class F>
graft_status* guarded(F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const UserError& e) {
    return host_api()->make_status(GRAFT_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return host_api()->make_status(GRAFT_ERR_RUNTIME, e.what());
  }
}

}  // namespace graft::runtime
