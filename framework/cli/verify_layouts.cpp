// Parsing and enumerating the layouts of `graft verify --layouts`.
#include "cli/verify_layouts.hpp"

#include <sstream>

#include "util/errors.hpp"

namespace graft::cli {

namespace {

const char* kSyntax =
    "; a layout is DATAxPIPELINExTENSOR with optional :zN (zero 0..3) and :gpipe or :1f1b, e.g. "
    "--layouts 2x2x1,2x1x2:z1,1x2x2:gpipe, or --layouts all";

std::vector<std::string> split(const std::string& text, char by) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, by)) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int32_t positive(const std::string& digits, const std::string& entry) {
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(digits, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != digits.size() || value < 1)
    throw runtime::UserError("--layouts: '" + entry + "': '" + digits + "' is not a degree >= 1" +
                             kSyntax);
  return value;
}

Layout parse_one(const std::string& entry) {
  const std::vector<std::string> parts = split(entry, ':');
  const std::vector<std::string> degrees = parts.empty() ? parts : split(parts[0], 'x');
  if (degrees.size() != 3)
    throw runtime::UserError("--layouts: '" + entry + "' does not give three degrees" + kSyntax);
  Layout l;
  l.data = positive(degrees[0], entry);
  l.pipeline = positive(degrees[1], entry);
  l.tensor = positive(degrees[2], entry);
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.size() == 2 && p[0] == 'z' && p[1] >= '0' && p[1] <= '3')
      l.zero = p[1] - '0';
    else if (p == "gpipe" || p == "1f1b")
      l.schedule = p;
    else
      throw runtime::UserError("--layouts: '" + entry + "': unknown part '" + p + "'" + kSyntax);
  }
  return l;
}

// The highest [parallel] zero this graft builds; `all` tries every level up to it.
constexpr int32_t kBuiltZero = 3;

// Every (data, pipeline, tensor) whose product is `world`; zero levels where data > 1, both
// schedules where pipeline > 1.
std::vector<Layout> every_layout(int32_t world) {
  std::vector<Layout> out;
  for (int32_t d = 1; d <= world; ++d)
    for (int32_t p = 1; p <= world; ++p) {
      if (world % (d * p) != 0) continue;
      const int32_t t = world / (d * p);
      for (int32_t z = 0; z <= (d > 1 ? kBuiltZero : 0); ++z)
        for (const char* s : {"1f1b", "gpipe"}) {
          if (p == 1 && std::string(s) == "gpipe") continue;
          Layout l{d, p, t, z, p > 1 ? s : ""};
          out.push_back(l);
        }
    }
  return out;
}

}  // namespace

std::string Layout::name() const {
  std::string s = "mesh " + std::to_string(data) + "x" + std::to_string(pipeline) + "x" +
                  std::to_string(tensor);
  if (zero) s += " z" + std::to_string(zero);
  if (!schedule.empty()) s += " " + schedule;
  return s;
}

std::vector<std::string> Layout::overrides() const {
  std::vector<std::string> out = {
      "parallel.strategy=\"mesh\"", "parallel.data=" + std::to_string(data),
      "parallel.pipeline=" + std::to_string(pipeline), "parallel.tensor=" + std::to_string(tensor),
      "parallel.zero=" + std::to_string(zero)};
  if (!schedule.empty()) out.push_back("parallel.schedule=\"" + schedule + "\"");
  return out;
}

std::vector<Layout> parse_layouts(const std::string& text, int32_t world) {
  if (text == "all") return every_layout(world);
  std::vector<Layout> out;
  for (const std::string& entry : split(text, ',')) {
    Layout l = parse_one(entry);
    if (l.ranks() != world)
      throw runtime::UserError("--layouts: '" + entry + "' needs " + std::to_string(l.ranks()) +
                               " ranks, but the job has " + std::to_string(world) +
                               "; start it with mpirun -np " + std::to_string(l.ranks()) +
                               " or give layouts of " + std::to_string(world) + " ranks");
    out.push_back(l);
  }
  return out;
}

}  // namespace graft::cli
