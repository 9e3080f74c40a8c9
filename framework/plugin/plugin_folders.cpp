// Where plugins are searched: the folders a user named (--plugin-dir, [plugins] paths,
// GRAFT_PLUGIN_PATH), each checked to hold plugin libraries, then the executable's own.
#include <cstdlib>
#include <filesystem>

#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace fs = std::filesystem;

namespace {
bool is_plugin_library(const fs::path& file) {
  return file.filename().string().rfind("graft_", 0) == 0 && file.extension() == ".so";
}

// Why `dir` is not a folder of plugins, or "" when it holds a graft_*.so library.
std::string plugin_folder_problem(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return "does not exist";
  if (!fs::is_directory(dir, ec)) {
    if (is_plugin_library(dir))
      return "is a plugin library, not a folder: pass its folder, --plugin-dir " +
             dir.parent_path().string();
    return "is a file, not a folder of plugin libraries (graft_*.so)";
  }
  for (const auto& item : fs::directory_iterator(dir, ec))
    if (is_plugin_library(item.path())) return "";
  // A build folder or a source tree: name the folder below that holds libraries, if one does.
  std::size_t looked = 0;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator() && looked < 20000; it.increment(ec)) {
    ++looked;
    if (it.depth() > 4) it.disable_recursion_pending();
    if (is_plugin_library(it->path()))
      return "holds no plugin libraries (graft_*.so) itself; " + it->path().parent_path().string() +
             " does: pass that folder";
  }
  if (fs::exists(dir / "CMakeLists.txt", ec))
    return "holds no plugin libraries (graft_*.so); it looks like a source folder: build it "
           "(cmake -S " +
           dir.string() +
           " -B build && cmake --build build) and pass the folder "
           "the libraries are built into";
  return "holds no plugin libraries (graft_*.so)";
}

void check_plugin_folder(const fs::path& dir, const std::string& given) {
  const std::string problem = plugin_folder_problem(dir);
  if (!problem.empty())
    throw UserError(given + ": plugin folder '" + dir.string() + "' " + problem);
}
}  // namespace

std::vector<PluginFolder> plugin_folders(const std::vector<std::string>& command_line,
                                         const std::vector<std::string>& config_paths,
                                         const std::vector<std::string>& places) {
  std::vector<PluginFolder> out;
  for (const std::string& d : command_line) out.push_back({d, "--plugin-dir"});
  for (size_t i = 0; i < config_paths.size(); ++i)
    out.push_back({config_paths[i], i < places.size() ? places[i] : "[plugins] paths"});
  return out;
}

std::vector<fs::path> plugin_search_path(const std::vector<PluginFolder>& given) {
  std::vector<fs::path> dirs;
  for (const PluginFolder& f : given) {
    check_plugin_folder(f.path, f.given);
    dirs.emplace_back(f.path);
  }
  if (const char* env = std::getenv("GRAFT_PLUGIN_PATH")) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) {
        dirs.emplace_back(list.substr(start, end - start));
        check_plugin_folder(dirs.back(), "GRAFT_PLUGIN_PATH");
      }
      start = end + 1;
    }
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path() / "plugins");                           // build tree
    dirs.push_back(exe.parent_path() / ".." / "lib" / "graft" / "plugins");  // install
  }
  return dirs;
}

void load_plugins(Registry& registry, const std::vector<PluginFolder>& given) {
  for (const fs::path& d : plugin_search_path(given)) registry.load_directory(d);
}

}  // namespace graft::runtime
