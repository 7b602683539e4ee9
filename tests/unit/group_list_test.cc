// `cohort groups` (cli/group_list.h): which groups it lists and in what
// order, and the row a person reads for each, with its pending steps and
// elapsed time; any shape of reply is shown without throwing.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/group_list.h"
#include "common/result_json.h"

namespace cohort::cli {
namespace {

using Json = nlohmann::json;

Json Group(const std::string& id, const std::string& state, const std::string& submitted) {
  return {{"group", id}, {"state", state}, {"submitted_at", submitted}, {"finished_at", nullptr}};
}

std::vector<std::string> Ids(const Json& list) {
  std::vector<std::string> ids;
  for (const Json& g : list) ids.push_back(g["group"].get<std::string>());
  return ids;
}

TEST_CASE("the group list is newest first, by state, and cut at the limit", "[groups]") {
  const Json list = {Group("a", "completed", "2026-11-26T10:00:00.000Z"),
                     Group("c", "running", "2026-11-26T12:00:00.000Z"),
                     Group("b", "failed", "2026-11-26T11:00:00.000Z"),
                     Group("d", "running", "2026-11-26T11:00:00.000Z")};
  size_t more = 99;
  CHECK(Ids(SelectGroups(list, "", 0, &more)) == std::vector<std::string>{"c", "b", "d", "a"});
  CHECK(more == 0);
  CHECK(Ids(SelectGroups(list, "", 2, &more)) == std::vector<std::string>{"c", "b"});
  CHECK(more == 2);
  CHECK(Ids(SelectGroups(list, "running", 0, &more)) == std::vector<std::string>{"c", "d"});
  CHECK(Ids(SelectGroups(list, "running", 1, &more)) == std::vector<std::string>{"c"});
  CHECK(more == 1);
  CHECK(SelectGroups(list, "cancelled", 0, &more).empty());
  CHECK(SelectGroups(Json::object(), "", 0, &more).empty());
}

TEST_CASE("only the four group states are states to list by", "[groups]") {
  for (const char* s : {"running", "completed", "failed", "cancelled"}) CHECK(IsGroupState(s));
  for (const char* s : {"", "pending", "Running", "done"}) CHECK_FALSE(IsGroupState(s));
}

TEST_CASE("the coordinator's timestamps read back as the milliseconds written", "[groups]") {
  for (int64_t ms : {int64_t{0}, int64_t{951'782'400'123}, int64_t{1'795'000'000'999}, int64_t{-86'400'000}}) {
    INFO(ms);
    CHECK(ParseUnixMs(common::FormatUnixMs(ms)) == ms);
  }
  for (const char* bad : {"", "2026-11-26", "2026-13-26T11:32:03.123Z", "2026-11-26T11:32:03.123+01:00",
                          "2026-11-26T11:32:03.12Z "}) {
    INFO(bad);
    CHECK_FALSE(ParseUnixMs(bad).has_value());
  }
}

TEST_CASE("elapsed times read as a clock, with days past a day", "[groups]") {
  CHECK(Elapsed(42'999) == "0:42");
  CHECK(Elapsed(3'723'000) == "1:02:03");
  CHECK(Elapsed(3 * 86'400'000 + 4 * 3'600'000 + 5 * 60'000 + 6'000) == "3d 04:05:06");
  CHECK(Elapsed(-5'000) == "0:00");
}

TEST_CASE("a group's row shows its pending steps and elapsed time", "[groups]") {
  const Json list = Json::parse(R"([
    {"group": "live", "state": "running", "total": 4, "pending": 3, "running": 1, "retrying": 0,
     "completed": 0, "failed": 0, "cancelled": 0,
     "submitted_at": "2026-11-26T11:00:00.000Z", "finished_at": null},
    {"group": "done", "state": "completed", "total": 2, "pending": 0, "running": 0, "retrying": 0,
     "completed": 2, "failed": 0, "cancelled": 0,
     "submitted_at": "2026-11-26T10:00:00.000Z", "finished_at": "2026-11-26T10:01:05.000Z"}])");
  const int64_t now = *ParseUnixMs("2026-11-26T12:30:00.000Z");
  std::ostringstream out;
  PrintGroups(list, now, out);
  std::istringstream lines(out.str());
  std::string header, live, done;
  std::getline(lines, header);
  std::getline(lines, live);
  std::getline(lines, done);
  CHECK(header.find("PENDING") != std::string::npos);
  CHECK(header.find("ELAPSED") != std::string::npos);
  // The pending count stands under its header.
  CHECK(live.substr(header.find("PENDING"), 1) == "3");
  CHECK(done.substr(header.find("PENDING"), 1) == "0");
  // A running group counts to now; a finished one to its end.
  CHECK(live.substr(header.find("ELAPSED")) == "1:30:00");
  CHECK(done.substr(header.find("ELAPSED")) == "1:05");
}

TEST_CASE("group lists of any shape are shown without throwing", "[groups]") {
  for (const char* text : {"null", "[]", "{}", "3", R"([1, null, {"group": []}, {"total": {"x": 1}}])",
                           R"([{"submitted_at": 5, "finished_at": "not a time", "total": -1}])",
                           R"([{"submitted_at": "0000-01-01T00:00:00.000Z", "finished_at": null}])"}) {
    INFO(text);
    std::ostringstream out;
    size_t more = 0;
    CHECK_NOTHROW(PrintGroups(SelectGroups(Json::parse(text), "", 1, &more), INT64_MAX, out));
    CHECK_NOTHROW(PrintGroups(Json::parse(text), INT64_MIN, out));
  }
}

}  // namespace
}  // namespace cohort::cli
