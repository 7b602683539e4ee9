// The documents the coordinator writes and the JSON writer under them:
// timestamps against the C library's calendar, string escaping against
// nlohmann::json's, a whole result document read back field by field, and the
// summaries and lists byte for byte against the nlohmann trees they replaced.
#include <ctime>
#include <random>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/json_writer.h"
#include "common/result_json.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string GmtimeReference(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  int ms = static_cast<int>(unix_ms % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string Quoted(std::string_view s) {
  std::string out;
  common::AppendJsonString(s, &out);
  return out;
}

}  // namespace

TEST_CASE("timestamps match gmtime across leap years, centuries and before 1970", "[json]") {
  for (int64_t ms : {int64_t{0}, int64_t{-1}, int64_t{-86'400'000}, int64_t{951'782'400'000} /* 2000-02-29 */,
                     int64_t{4'107'542'399'999} /* 2100-02-28T23:59:59.999 */, int64_t{1'795'000'000'123},
                     int64_t{253'402'300'799'999} /* 9999-12-31T23:59:59.999 */}) {
    CHECK(common::FormatUnixMs(ms) == GmtimeReference(ms));
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> any(-2'000'000'000'000, 250'000'000'000'000);
  for (int i = 0; i < 20000; ++i) {
    const int64_t ms = any(rng);
    REQUIRE(common::FormatUnixMs(ms) == GmtimeReference(ms));
  }
}

TEST_CASE("strings are escaped as nlohmann::json escapes them", "[json]") {
  const std::string cases[] = {"",           "plain",          "quote \" and backslash \\", "tab\tnew\nline\r",
                               "\b\f\x01\x1f\x7f", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                               std::string("nul\0inside", 10)};
  for (const std::string& s : cases) {
    INFO(s);
    CHECK(Quoted(s) == Json(s).dump());
  }
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD and the text stays parsable", "[json]") {
  const std::string bad = "ok\xFF then \xC3 cut, overlong \xC0\xAF, surrogate \xED\xA0\x80 end";
  const std::string text = Quoted(bad);
  Json back;
  REQUIRE_NOTHROW(back = Json::parse(text));
  const std::string s = back.get<std::string>();
  CHECK(s.rfind("ok\xEF\xBF\xBD then \xEF\xBF\xBD cut", 0) == 0);
  CHECK(s.find(" end") != std::string::npos);
  CHECK(s.find('\xFF') == std::string::npos);
}

TEST_CASE("the writer places commas and keeps numbers typed", "[json]") {
  std::string out;
  common::JsonWriter w(&out);
  w.BeginObject().Key("a").BeginArray().Int(-3).UInt(18446744073709551615u).Double(2).Double(0.125).Null();
  w.EndArray().Key("b").BeginObject().EndObject().Key("c").StringOrNull("").EndObject();
  Json j = Json::parse(out);
  CHECK(j["a"][0] == -3);
  CHECK(j["a"][1] == 18446744073709551615u);
  CHECK(j["a"][2].is_number_float());
  CHECK(j["a"][2] == 2.0);
  CHECK(j["a"][3] == 0.125);
  CHECK(j["a"][4].is_null());
  CHECK(j["b"].empty());
  CHECK(j["c"].is_null());
}

TEST_CASE("a result document reads back with every field", "[json]") {
  const common::Time t0{};
  const common::WallClock clock(t0, 1'795'000'000'000);
  common::GroupResult r;
  r.id = "g1";
  r.state = common::GroupState::kFailed;
  r.cause = common::GroupError{"b", "exited with code 3"};
  r.errors = {*r.cause, {"", "group deadline of 5s exceeded"}};
  r.submitted_at = t0;
  r.finished_at = t0 + 2500ms;
  r.steps_omitted = 7;
  r.counts[static_cast<int>(common::StepState::kCompleted)] = 1;
  r.counts[static_cast<int>(common::StepState::kFailed)] = 1;
  r.counts[static_cast<int>(common::StepState::kPending)] = 7;
  common::StepResult a;
  a.id = "a";
  a.state = common::StepState::kCompleted;
  common::AttemptRecord rec;
  rec.attempt = 1;
  rec.worker = "w1";
  rec.dispatched_at = t0 + 10ms;
  rec.started_at = t0 + 20ms;
  rec.finished_at = t0 + 1020ms;
  rec.status = common::AttemptStatus::kSucceeded;
  rec.exit_code = 0;
  rec.stdout_tail = "hello\n\xFF";
  a.attempts.push_back(rec);
  common::StepResult b;
  b.id = "b";
  b.state = common::StepState::kFailed;
  b.error = "exited with code 3";
  r.steps = {a, b};

  Json j = Json::parse(common::GroupResultJson(r, clock));
  CHECK(j["group"] == "g1");
  CHECK(j["state"] == "failed");
  CHECK(j["cause"]["step"] == "b");
  REQUIRE(j["errors"].size() == 2);
  CHECK(j["errors"][1]["step"].is_null());
  CHECK(j["submitted_at"] == common::FormatUnixMs(1'795'000'000'000));
  CHECK(j["finished_at"] == common::FormatUnixMs(1'795'000'002'500));
  CHECK(j["duration_s"] == 2.5);
  CHECK(j["total"] == 9);
  CHECK(j["counts"]["pending"] == 7);
  CHECK(j["schema"] == common::kReplySchema);
  CHECK(j["steps_omitted"] == 7);
  REQUIRE(j["steps"].size() == 2);
  const Json& sa = j["steps"][0];
  CHECK(sa["id"] == "a");
  CHECK(sa["state"] == "completed");
  CHECK(sa["attempts"] == 1);
  CHECK(sa["worker"] == "w1");
  CHECK(sa["exit_code"] == 0);
  CHECK(sa["signal"].is_null());
  CHECK(sa["error"].is_null());
  CHECK(sa["duration_s"] == 1.0);
  CHECK(sa["stdout"] == "hello\n\xEF\xBF\xBD");
  CHECK(sa["started_at"] == common::FormatUnixMs(1'795'000'000'020));
  REQUIRE(sa["history"].size() == 1);
  CHECK(sa["history"][0]["status"] == common::AttemptStatusName(common::AttemptStatus::kSucceeded));
  CHECK(sa["history"][0]["dispatched_at"] == common::FormatUnixMs(1'795'000'000'010));
  const Json& sb = j["steps"][1];
  CHECK(sb["worker"].is_null());
  CHECK(sb["exit_code"].is_null());
  CHECK(sb["stdout"].is_null());
  CHECK(sb["started_at"].is_null());
  CHECK(sb["history"].empty());
  CHECK(sb["error"] == "exited with code 3");
}


namespace {

// The documents as the coordinator built them before JsonWriter wrote them:
// the form the CLI's parser was written against.
Json SummaryTree(const common::GroupSummary& s, const common::WallClock& clock) {
  Json j{{"group", s.id},
         {"state", std::string(common::GroupStateName(s.state))},
         {"total", s.total},
         {"submitted_at", common::FormatUnixMs(clock.ToUnixMs(s.submitted_at))},
         {"finished_at", s.finished_at ? Json(common::FormatUnixMs(clock.ToUnixMs(*s.finished_at))) : Json()},
         {"waiting", s.waiting.empty() ? Json() : Json(s.waiting)}};
  for (int k = 0; k < common::kStepStateCount; ++k) {
    j[std::string(common::StepStateName(static_cast<common::StepState>(k)))] = s.counts[k];
    j["counts"][std::string(common::StepStateName(static_cast<common::StepState>(k)))] = s.counts[k];
  }
  j["schema"] = common::kReplySchema;
  return j;
}

Json WorkerTree(const common::WorkerSummary& w, const common::WallClock& clock, common::Time now) {
  auto age = [&](common::Time t) { return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count(); };
  return {{"name", w.name},
          {"slots", w.slots},
          {"running", w.running},
          {"agents", w.agents},
          {"last_heartbeat", common::FormatUnixMs(clock.ToUnixMs(w.last_heartbeat))},
          {"last_heartbeat_age_ms", age(w.last_heartbeat)},
          {"version", w.version},
          {"state", w.state},
          {"since", common::FormatUnixMs(clock.ToUnixMs(w.since))},
          {"state_age_ms", age(w.since)},
          {"reason", w.reason}};
}

}  // namespace

TEST_CASE("summaries and lists are written byte for byte as the nlohmann trees were", "[json]") {
  const common::Time t0{};
  const common::WallClock clock(t0, 1'795'000'000'000);
  common::GroupSummary running{"g-1 \"quoted\" caf\xC3\xA9", common::GroupState::kRunning, 21,
                               {1, 2, 3, 4, 5, 6}, t0 + 5ms, std::nullopt, 0, ""};
  running.waiting = "every worker slot is busy";
  common::GroupSummary done{"g2", common::GroupState::kFailed, 2, {0, 0, 0, 1, 1, 0}, t0, t0 + 1500ms, 0, ""};
  for (const auto& s : {running, done}) {
    const std::string text = common::GroupSummaryJson(s, clock);
    CHECK(text == common::DumpJson(SummaryTree(s, clock)));
    CHECK(Json::parse(text) == SummaryTree(s, clock));
  }
  CHECK(common::GroupListJson({}, clock) == common::DumpJson(Json::array()));
  CHECK(common::GroupListJson({running, done}, clock) ==
        common::DumpJson(Json::array({SummaryTree(running, clock), SummaryTree(done, clock)})));

  common::WorkerSummary gpu{"w1", 4, 1, {"gpu", "linux"}, t0 + 250ms, "0.1.0", "cordoned", t0 + 100ms, "by alice"};
  common::WorkerSummary plain{"w\n2", 1, 0, {}, t0, "", "lost", t0 + 1s, "no heartbeat for 3s"};
  const common::Time now = t0 + 2s;
  CHECK(common::WorkerListJson({}, clock, now) == common::DumpJson(Json::array()));
  const std::string workers = common::WorkerListJson({gpu, plain}, clock, now);
  CHECK(workers == common::DumpJson(Json::array({WorkerTree(gpu, clock, now), WorkerTree(plain, clock, now)})));
  const Json parsed = Json::parse(workers);
  CHECK(parsed[0]["last_heartbeat_age_ms"] == 1750);
  CHECK(parsed[1]["state_age_ms"] == 1000);
  CHECK(parsed[0]["slots"].is_number_integer());
  CHECK(parsed[1]["agents"].is_array());

  CHECK(common::SubmittedJson("g7") == common::DumpJson(Json{{"group", "g7"}}));
  CHECK(common::SubmittedJson("bad\xFFid") == common::DumpJson(Json{{"group", "bad\xFFid"}}));
  CHECK(common::SubmittedJson("g7", true, "steps wait") ==
        common::DumpJson(Json{{"group", "g7"}, {"existing", true}, {"warning", "steps wait"}}));
}


TEST_CASE("the result document and the group summary carry the counts in one shape", "[json]") {
  const common::Time t0{};
  const common::WallClock clock(t0, 1'795'000'000'000);
  common::GroupResult r;
  r.id = "g";
  r.submitted_at = t0;
  for (int k = 0; k < common::kStepStateCount; ++k) r.counts[k] = static_cast<size_t>(k + 1);
  common::GroupSummary s{"g", common::GroupState::kRunning, 21, {1, 2, 3, 4, 5, 6}, t0, std::nullopt, 0, ""};
  const Json result = Json::parse(common::GroupResultJson(r, clock));
  const Json summary = Json::parse(common::GroupSummaryJson(s, clock));
  const Json list = Json::parse(common::GroupListJson({s}, clock));
  CHECK(result["counts"] == summary["counts"]);
  CHECK(list[0]["counts"] == summary["counts"]);
  CHECK(summary["counts"].size() == static_cast<size_t>(common::kStepStateCount));
  // The flat keys stay, equal to the object's.
  for (const auto& [state, n] : summary["counts"].items()) CHECK(summary[state] == n);
  CHECK(result["schema"] == 1);
  CHECK(summary["schema"] == 1);
  CHECK(list[0]["schema"] == 1);
}

}  // namespace cohort::testing
