// graft::Mesh: the device mesh of a strategy's world (graft/mesh.h) as C++, with one graft::Comm
// per axis. From an older host (no mesh in graft_world) it is the one-axis mesh that host's
// world implies: every rank a data replica, with the world's communicator as the data group.
#pragma once

#include <array>
#include <string>

#include "graft/cpp/strategy.hpp"

namespace graft {

class Mesh {
 public:
  Mesh() = default;
  Mesh(const graft_world& world, const char* who) {
    const graft_mesh* m = detail::has_member(world, &graft_world::mesh) ? world.mesh : nullptr;
    if (m) {
      for (int a = 0; a < GRAFT_MESH_AXES; ++a) {
        degree_[a] = m->degree[a];
        coord_[a] = m->coord[a];
        order_[a] = m->order[a];
        comms_[a] = Comm(m->axis_comm[a], world.comm_api, who);
      }
      zero_ = m->zero;
    } else {
      degree_ = {world.size, 1, 1};
      coord_ = {world.rank, 0, 0};
      comms_[GRAFT_AXIS_DATA] = Comm(world, who);
    }
  }

  int32_t degree(graft_axis a) const { return degree_[a]; }
  int32_t coord(graft_axis a) const { return coord_[a]; }
  int32_t zero() const { return zero_; }
  // The axes from the fastest-varying rank to the slowest ([parallel] order).
  graft_axis axis_at(int k) const { return graft_axis(order_[size_t(k)]); }
  // The group of ranks that differ from this one only on axis a; empty when only planned.
  const Comm& comm(graft_axis a) const { return comms_[a]; }
  // Whether the host lent communicators (false: `graft validate --world N` planning).
  bool connected() const {
    for (int a = 0; a < GRAFT_MESH_AXES; ++a)
      if (degree_[a] > 1 && !comms_[a]) return false;
    return true;
  }
  int32_t size() const { return degree_[0] * degree_[1] * degree_[2]; }

  // "data 0, pipeline 1, tensor 1": this rank's place, for messages.
  std::string describe() const {
    static const char* names[GRAFT_MESH_AXES] = {"data", "pipeline", "tensor"};
    std::string s;
    for (int a = 0; a < GRAFT_MESH_AXES; ++a)
      s += (a ? ", " : "") + std::string(names[a]) + " " + std::to_string(coord_[a]);
    return s;
  }

 private:
  std::array<int32_t, GRAFT_MESH_AXES> degree_{1, 1, 1}, coord_{0, 0, 0};
  std::array<int32_t, GRAFT_MESH_AXES> order_{GRAFT_AXIS_TENSOR, GRAFT_AXIS_DATA,
                                              GRAFT_AXIS_PIPELINE};
  int32_t zero_ = 0;
  std::array<Comm, GRAFT_MESH_AXES> comms_;
};

}  // namespace graft
