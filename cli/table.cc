#include "cli/table.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace cohort::cli {

using Json = nlohmann::json;

std::string Text(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "-";
  const Json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", v.get<double>());
    return buf;
  }
  if (v.is_array()) {
    std::string s;
    for (const Json& e : v) {
      if (!s.empty()) s += ",";
      s += e.is_string() ? e.get<std::string>() : e.dump();
    }
    return s.empty() ? "-" : s;
  }
  return "-";
}

std::string Cell(std::string s, size_t max) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

void Table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
           std::ostream& out) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      s += cells[c];
      if (c + 1 < cells.size()) s += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    out << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

}  // namespace cohort::cli
