// The CLI's display of coordinator documents (cli/display.h): whatever shape
// a reply body has, it is shown without throwing or overflowing. Inputs
// found by fuzz/cli_json_fuzzer are kept here and in fuzz/regressions/.
#include <catch2/catch.hpp>

#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/display.h"

namespace cohort::cli {
namespace {

using Json = nlohmann::json;

TEST_CASE("the progress line counts a group's steps", "[display]") {
  Json summary = {{"group", "g"}, {"total", 10}, {"completed", 3}, {"failed", 1}, {"cancelled", 2},
                  {"running", 2}, {"retrying", 1}};
  CHECK(ProgressLine(summary) == "g: 6/10 done, 2 running, 1 retrying, 1 failed, 2 cancelled");
  CHECK(ProgressLine(Json::array()) == "");
}

// fuzz/regressions/cli_json/progress-overflow.json: the done count summed
// int64 counts and overflowed (undefined behaviour, a negative count shown).
TEST_CASE("the progress line survives counts at the edges of their range", "[display][fuzz]") {
  Json summary = Json::parse(R"({"completed": 9223372036854775807, "failed": 1})");
  CHECK(ProgressLine(summary) == "-: 9223372036854775808/0 done, 0 running, 1 failed");
  summary = Json::parse(R"({"completed": 18446744073709551615, "cancelled": 18446744073709551615})");
  CHECK(ProgressLine(summary) ==
        "-: 18446744073709551615/0 done, 0 running, 18446744073709551615 cancelled");
  // Counts are never negative; one that is shows as none.
  CHECK(ProgressLine(Json::parse(R"({"total": -4, "failed": -1, "running": 2.5})")) == "-: 0/0 done, 0 running");
}

TEST_CASE("documents of any shape are shown without throwing", "[display]") {
  for (const char* text : {"null", "[]", "{}", "3", R"({"steps": 1, "errors": {"a": 1}})",
                           R"({"steps": [1, null, {"id": []}], "errors": [2], "duration_s": 1e308})",
                           R"([1, {"name": {"x": 1}}, {"agents": [1, [2]]}])"}) {
    INFO(text);
    Json doc = Json::parse(text);
    std::ostringstream out;
    CHECK_NOTHROW(PrintResult(doc, out));
    CHECK_NOTHROW(PrintGroups(doc, out));
    CHECK_NOTHROW(PrintWorkers(doc, out));
    CHECK_NOTHROW(ProgressLine(doc));
  }
}

}  // namespace
}  // namespace cohort::cli
