// `cohort groups` on real daemons with the real CLI: newest first, each
// group's pending steps and elapsed time, --state and --limit, the usage
// error for a state that is not one, and the counts object and schema its
// JSON shares with `cohort status --json`.
#include <cctype>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The cell of `line` under `column` of the table's header.
std::string CellUnder(const std::string& header, const std::string& line, const std::string& column) {
  const size_t at = header.find(column);
  if (at == std::string::npos || at >= line.size()) return "";
  return line.substr(at, line.find(' ', at) - at);
}

std::vector<std::string> Ids(const std::string& json) {
  std::vector<std::string> ids;
  const Json list = Json::parse(json, nullptr, false);
  if (!list.is_array()) return {"(not a list: " + json + ")"};
  for (const Json& g : list) ids.push_back(g.value("group", ""));
  return ids;
}

// One worker; groups "done" (completed), "broken" (failed) and, newest,
// "busy": two long steps one at a time, so one runs and one is pending.
struct Fixture {
  Cluster c;
  Fixture() {
    c.StartCoordinator();
    c.StartWorker("w1", 2);
    REQUIRE(c.Cli({"submit", "--wait", "--id", "done", "--", "true"}).exit_code == 0);
    REQUIRE(c.Cli({"submit", "--wait", "--id", "broken", "--", "false"}).exit_code == 1);
    const Json busy = {{"id", "busy"},
                       {"max_parallel", 1},
                       {"steps", {{{"id", "a"}, {"command", {"sleep", "120"}}},
                                  {{"id", "b"}, {"command", {"sleep", "120"}}}}}};
    REQUIRE(c.SubmitJson(busy, {}).exit_code == 0);
    REQUIRE(WaitUntil([&] { return c.Status("busy").value("counts", Json::object()).value("running", 0) == 1; },
                      30s));
  }
};

// "M:SS" or "H:MM:SS" (digits, then groups of ":" and two digits). Written
// out: GCC 12 warns falsely inside std::regex under the sanitizers.
bool LooksLikeClock(const std::string& s) {
  size_t at = 0;
  while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) ++at;
  if (at == 0) return false;
  int groups = 0;
  while (at < s.size()) {
    if (s.size() - at < 3 || s[at] != ':' || !std::isdigit(static_cast<unsigned char>(s[at + 1])) ||
        !std::isdigit(static_cast<unsigned char>(s[at + 2]))) {
      return false;
    }
    at += 3;
    ++groups;
  }
  return groups == 1 || groups == 2;
}

TEST_CASE("groups lists the newest first with pending steps and elapsed time", "[cli][groups]") {
  Fixture f;
  RunOutput r = f.c.Cli({"groups"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 4);
  const std::string& header = lines[0];
  CHECK(CellUnder(header, lines[1], "GROUP") == "busy");
  CHECK(CellUnder(header, lines[2], "GROUP") == "broken");
  CHECK(CellUnder(header, lines[3], "GROUP") == "done");
  CHECK(CellUnder(header, lines[1], "PENDING") == "1");
  CHECK(CellUnder(header, lines[1], "RUNNING") == "1");
  CHECK(CellUnder(header, lines[3], "PENDING") == "0");
  for (size_t i = 1; i < lines.size(); ++i) CHECK(LooksLikeClock(CellUnder(header, lines[i], "ELAPSED")));
  CHECK(Ids(f.c.Cli({"groups", "--json"}).out) == std::vector<std::string>{"busy", "broken", "done"});
}

TEST_CASE("groups --state shows only the groups in that state", "[cli][groups]") {
  Fixture f;
  CHECK(Ids(f.c.Cli({"groups", "--json", "--state", "failed"}).out) == std::vector<std::string>{"broken"});
  CHECK(Ids(f.c.Cli({"groups", "--json", "--state", "running"}).out) == std::vector<std::string>{"busy"});
  CHECK(Ids(f.c.Cli({"groups", "--json", "--state", "cancelled"}).out).empty());
  RunOutput table = f.c.Cli({"groups", "--state", "completed"});
  CHECK(table.exit_code == 0);
  CHECK(Lines(table.out).size() == 2);
  CHECK(Has(table.out, "done"));
  RunOutput wrong = f.c.Cli({"groups", "--state", "pending"});
  CHECK(wrong.exit_code == 2);
  CHECK(Has(wrong.err, "running, completed, failed or cancelled"));
  CHECK(wrong.out.empty());
}

TEST_CASE("groups --limit shows the newest and says how many more there are", "[cli][groups]") {
  Fixture f;
  RunOutput table = f.c.Cli({"groups", "--limit", "1"});
  INFO(table.out << table.err);
  CHECK(table.exit_code == 0);
  const std::vector<std::string> lines = Lines(table.out);
  REQUIRE(lines.size() == 3);
  CHECK(Has(lines[1], "busy"));
  CHECK(lines[2] == "(2 more; --limit 0 shows all)");
  CHECK(Lines(f.c.Cli({"groups", "--limit", "0"}).out).size() == 4);
  // The JSON stays one document; the note goes to stderr.
  RunOutput json = f.c.Cli({"groups", "--json", "--limit", "2"});
  CHECK(Ids(json.out) == std::vector<std::string>{"busy", "broken"});
  CHECK(Has(json.err, "(1 more; --limit 0 shows all)"));
  CHECK(f.c.Cli({"groups", "--limit", "-1"}).exit_code == 2);
}

TEST_CASE("status --json and groups --json carry the counts in one shape with a schema", "[cli][groups]") {
  Fixture f;
  for (const char* group : {"done", "busy"}) {
    INFO(group);
    const Json result = f.c.Status(group);
    Json summary;
    for (const Json& g : Json::parse(f.c.Cli({"groups", "--json"}).out, nullptr, false)) {
      if (g.value("group", "") == group) summary = g;
    }
    REQUIRE(summary.is_object());
    CHECK(result["schema"] == 1);
    CHECK(summary["schema"] == 1);
    REQUIRE(result["counts"].is_object());
    CHECK(result["counts"].size() == 6);
    CHECK(summary["counts"] == result["counts"]);
    CHECK(summary["pending"] == result["counts"]["pending"]);
  }
  CHECK(f.c.Status("done")["counts"]["completed"] == 1);
}

}  // namespace
}  // namespace cohort::testing
