// `cohort groups` for a person (cli/group_list.h): one row a group from the
// GROUPS reply, and any shape of reply shown without throwing.
#include <catch2/catch.hpp>

#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/group_list.h"

namespace cohort::cli {
namespace {

using Json = nlohmann::json;

TEST_CASE("the group list shows a row a group", "[groups]") {
  const Json list = Json::parse(R"([{"group": "build-1", "state": "running", "total": 4, "completed": 1,
                                     "running": 2, "failed": 0, "cancelled": 0, "pending": 1,
                                     "submitted_at": "2026-11-26T11:32:03.123Z", "finished_at": null}])");
  std::ostringstream out;
  PrintGroups(list, out);
  const std::string text = out.str();
  CHECK(text.rfind("GROUP", 0) == 0);
  CHECK(text.find("build-1") != std::string::npos);
  CHECK(text.find("running") != std::string::npos);
}

TEST_CASE("group lists of any shape are shown without throwing", "[groups]") {
  for (const char* text : {"null", "[]", "{}", "3", R"([1, null, {"group": []}, {"total": {"x": 1}}])",
                           R"([{"submitted_at": 5, "finished_at": "not a time", "total": -1}])"}) {
    INFO(text);
    std::ostringstream out;
    CHECK_NOTHROW(PrintGroups(Json::parse(text), out));
  }
}

}  // namespace
}  // namespace cohort::cli
