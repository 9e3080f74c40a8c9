// The search for graft's own modules: the environment's paths, then beside the executable,
// ../lib/graft and the build tree, first that exists wins (module_candidates, find_module).
#include "util/modules.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

std::vector<fs::path> module_candidates(const char* library, const char* build_path,
                                        std::vector<fs::path> first) {
  std::vector<fs::path> out = std::move(first);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / library);
    out.push_back(exe.parent_path() / ".." / "lib" / "graft" / library);
  }
  if (build_path && *build_path) out.emplace_back(build_path);
  return out;
}

fs::path find_module(const std::vector<fs::path>& candidates, std::string& tried) {
  tried.clear();
  for (const fs::path& path : candidates) {
    std::error_code ec;
    if (fs::exists(path, ec)) return path;
    tried += (tried.empty() ? "" : ", ") + path.string();
  }
  return {};
}

}  // namespace graft::runtime
