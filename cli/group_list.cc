#include "cli/group_list.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/table.h"

namespace cohort::cli {

using Json = nlohmann::json;

bool IsGroupState(std::string_view state) {
  return std::find(std::begin(kGroupStates), std::end(kGroupStates), state) != std::end(kGroupStates);
}

namespace {

std::string Field(const Json& g, const char* key) {
  return g.is_object() && g.contains(key) && g[key].is_string() ? g[key].get<std::string>() : "";
}

}  // namespace

Json SelectGroups(const Json& list, const std::string& state, size_t limit, size_t* more) {
  std::vector<const Json*> chosen;
  if (list.is_array()) {
    for (const Json& g : list) {
      if (state.empty() || Field(g, "state") == state) chosen.push_back(&g);
    }
  }
  // The timestamps are of one fixed width, so their text sorts as their
  // times do; the id breaks ties, for one order run to run.
  std::stable_sort(chosen.begin(), chosen.end(), [](const Json* a, const Json* b) {
    const std::string ta = Field(*a, "submitted_at"), tb = Field(*b, "submitted_at");
    if (ta != tb) return ta > tb;
    return Field(*a, "group") < Field(*b, "group");
  });
  *more = limit != 0 && chosen.size() > limit ? chosen.size() - limit : 0;
  Json out = Json::array();
  for (size_t i = 0; i < chosen.size() - *more; ++i) out.push_back(*chosen[i]);
  return out;
}

std::optional<int64_t> ParseUnixMs(std::string_view iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0, n = 0;
  if (iso.size() != 24) return std::nullopt;
  const std::string text(iso);
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &s, &ms, &n) != 7 ||
      n != 24 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  // Howard Hinnant's days_from_civil, the inverse of the coordinator's
  // FormatUnixMs.
  const int64_t yy = y - (mo <= 2 ? 1 : 0);
  const int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  const int64_t yoe = yy - era * 400;
  const int64_t doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = era * 146'097 + doe - 719'468;
  return ((days * 24 + h) * 60 + mi) * 60'000 + s * 1000 + ms;
}

std::string Elapsed(int64_t ms) {
  const int64_t t = std::max<int64_t>(ms, 0) / 1000;
  char buf[48];
  const long long days = t / 86'400, hours = t / 3600 % 24, minutes = t / 60 % 60, seconds = t % 60;
  if (days > 0) {
    std::snprintf(buf, sizeof buf, "%lldd %02lld:%02lld:%02lld", days, hours, minutes, seconds);
  } else if (hours > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", hours, minutes, seconds);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", minutes, seconds);
  }
  return buf;
}

namespace {

// From submission to the group's end, or to now while it runs; "-" when
// the list does not say when it was submitted.
std::string ElapsedOf(const Json& g, int64_t now_unix_ms) {
  const std::optional<int64_t> submitted = ParseUnixMs(Field(g, "submitted_at"));
  if (!submitted) return "-";
  const std::optional<int64_t> finished = ParseUnixMs(Field(g, "finished_at"));
  int64_t ms = 0;
  if (__builtin_sub_overflow(finished ? *finished : now_unix_ms, *submitted, &ms)) return "-";
  return Elapsed(ms);
}

}  // namespace

void PrintGroups(const Json& list, int64_t now_unix_ms, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  if (list.is_array()) {
    for (const Json& g : list) {
      rows.push_back({Cell(Text(g, "group"), 40), Text(g, "state"), Text(g, "total"), Text(g, "pending"),
                      Text(g, "running"), Text(g, "completed"), Text(g, "failed"), Text(g, "cancelled"),
                      Text(g, "submitted_at"), ElapsedOf(g, now_unix_ms)});
    }
  }
  Table({"GROUP", "STATE", "STEPS", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SUBMITTED", "ELAPSED"},
        rows, out);
}

}  // namespace cohort::cli
