// The CLI's display of coordinator documents (cli/display.h): whatever shape
// a reply body has, it is shown without throwing or overflowing. Inputs
// found by fuzz/cli_json_fuzzer are kept here and in fuzz/regressions/.
#include <catch2/catch.hpp>

#include <algorithm>
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

TEST_CASE("a group's end with many failures fits 40 lines and counts what it leaves out", "[display]") {
  GroupEnd end;
  end.summary = {{"group", "g"}, {"state", "failed"}, {"duration_s", 2.5}, {"total", 5000},
                 {"counts", {{"completed", 4000}, {"failed", 900}, {"cancelled", 100}, {"running", 0}}},
                 {"errors", Json::array({{{"step", nullptr}, {"error", "the deadline passed"}}})}};
  const std::string lines = "1\n2\n3\n4\n5\n6\n7\n";
  for (size_t i = 0; i < kEndSteps; ++i) {
    end.failed.push_back({{"id", "s" + std::to_string(i)}, {"error", "exited with code 1"}, {"worker", "w"},
                          {"attempts", 2}, {"tail", LastLines(lines, kTailLines)}, {"tail_stream", "stderr"}});
  }
  end.failed_more = 900 - kEndSteps;
  for (int i = 0; i < 6; ++i) end.cancelled.push_back({"reason " + std::to_string(i), 10 + i});
  std::ostringstream out;
  PrintGroupEnd(end, out);
  const std::string text = out.str();
  INFO(text);
  CHECK(std::count(text.begin(), text.end(), '\n') <= 40);
  CHECK(text.starts_with("group g: failed in 2.50s: 4000 completed, 900 failed, 100 cancelled (5000 steps)\n"
                         "group error: the deadline passed\n900 failed steps:\n"
                         "  s0: exited with code 1 (worker w, 2 attempts), last stderr:\n      | 3\n"));
  CHECK(text.find("      | 7\n  s1:") != std::string::npos);
  CHECK(text.find("  and 895 more\n") != std::string::npos);
  CHECK(text.find("12 cancelled: reason 2\n42 cancelled for other reasons\n") != std::string::npos);
}

TEST_CASE("the last lines of an output are whole lines, cleaned and cut", "[display]") {
  CHECK(LastLines("", 5).empty());
  CHECK(LastLines("a\nb\nc", 2) == std::vector<std::string>{"b", "c"});
  CHECK(LastLines("a\n\nb\n", 5) == std::vector<std::string>{"a", "", "b"});
  CHECK(LastLines("\x1b[31mred\r\n", 1) == std::vector<std::string>{" [31mred "});
  CHECK(LastLines(std::string(500, 'x'), 1)[0].size() == 160);
}

TEST_CASE("the progress bar shows done, running, failed, elapsed, rate and ETA", "[display]") {
  Json summary = {{"group", "g"}, {"total", 100}, {"completed", 20}, {"failed", 5}, {"running", 4}};
  CHECK(ProgressBar(summary, 50) ==
        "g: [#####...............] 25/100 done, 4 running, 5 failed  0:50  0.5/s  ETA 2:30");
  CHECK(ProgressBar(Json{{"total", 3}}, 3725) == "[....................] 0/3 done, 0 running  1:02:05");
  summary["completed"] = 95;
  CHECK(ProgressBar(summary, 10) == "g: [####################] 100/100 done, 4 running, 5 failed  0:10  10.0/s");
  // Why steps wait, when they do; nothing for a null reason.
  Json waiting = {{"total", 2}, {"pending", 2}, {"waiting", "no live worker offers agent \"gpu\""}};
  CHECK(ProgressBar(waiting, 5) ==
        "[....................] 0/2 done, 0 running  0:05  waiting: no live worker offers agent \"gpu\"");
  waiting["waiting"] = nullptr;
  CHECK(ProgressBar(waiting, 5) == "[....................] 0/2 done, 0 running  0:05");
}

TEST_CASE("documents of any shape are shown without throwing", "[display]") {
  for (const char* text : {"null", "[]", "{}", "3", R"({"steps": 1, "errors": {"a": 1}})",
                           R"({"steps": [1, null, {"id": []}], "errors": [2], "duration_s": 1e308})",
                           R"([1, {"name": {"x": 1}}, {"agents": [1, [2]]}])"}) {
    INFO(text);
    Json doc = Json::parse(text);
    std::ostringstream out;
    CHECK_NOTHROW(PrintResult(doc, out));
    CHECK_NOTHROW(PrintWorkers(doc, out));
    CHECK_NOTHROW(ProgressLine(doc));
    CHECK_NOTHROW(ProgressBar(doc, 1e300));
    GroupEnd end;
    end.summary = doc;
    end.failed = {doc, Json{{"tail", doc}}};
    CHECK_NOTHROW(PrintGroupEnd(end, out));
  }
}

}  // namespace
}  // namespace cohort::cli
