// Fuzz target: reading a checkpoint (framework/checkpoint/checkpoint.cpp, safetensors.cpp). Byte 0
// picks the file: even, the rest is a step_N.safetensors (header length, JSON header, data);
// odd, the rest is the step_N.json beside it (step, epoch, position, seed, optimizer steps).
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/safetensors.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft::runtime;
  if (size < 1) return 0;
  static const graft::fuzz::fs::path file = graft::fuzz::scratch_dir() / "step_1.safetensors";
  try {
    if (data[0] & 1) {
      const CheckpointMeta meta = read_checkpoint_meta(
          std::string(reinterpret_cast<const char*>(data + 1), size - 1), "checkpoint step_1.json");
      GRAFT_FUZZ_REQUIRE(meta.position.step >= 0 && meta.position.epoch >= 0 &&
                             meta.position.batch_in_epoch >= 0 && meta.optimizer_steps >= 0,
                         "a training position read back negative");
    } else {
      graft::fuzz::write_file(file, data + 1, size - 1);
      const SafetensorsFile read = read_safetensors(file);
      for (const auto& named : read.tensors) {
        size_t elements = 1;
        for (int64_t d : named.second.shape) elements *= static_cast<size_t>(d);
        GRAFT_FUZZ_REQUIRE(named.second.values.size() == elements,
                           "a tensor's values disagree with its shape");
      }
    }
  } catch (const UserError&) {
  }
  return 0;
}
