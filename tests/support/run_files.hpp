// Reading what a run leaves behind (metrics.jsonl) in integration tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace graft::test {

// Every JSON line of a metrics.jsonl whose "event" equals `event`.
inline std::vector<nlohmann::json> metric_events(const std::filesystem::path& file,
                                                 const std::string& event) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("event", "") == event) out.push_back(j);
  }
  return out;
}

inline std::string config_path(const std::string& name) {
  return std::string(GRAFT_SOURCE_DIR) + "/configs/" + name;
}

}  // namespace graft::test
