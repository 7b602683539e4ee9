#include "common/result_json.h"

#include <algorithm>
#include <ctime>

namespace cohort::common {
namespace {

using Json = nlohmann::json;

Json TimeOrNull(const std::optional<Time>& t, const WallClock& clock) {
  if (!t) return nullptr;
  return FormatUnixMs(clock.ToUnixMs(*t));
}

template <typename T>
Json OrNull(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json StringOrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

Json AttemptJson(const AttemptRecord& a, const WallClock& clock) {
  return Json{{"attempt", a.attempt},
              {"worker", a.worker},
              {"status", std::string(AttemptStatusName(a.status))},
              {"exit_code", OrNull(a.exit_code)},
              {"signal", OrNull(a.signal)},
              {"error", StringOrNull(a.error)},
              {"dispatched_at", FormatUnixMs(clock.ToUnixMs(a.dispatched_at))},
              {"started_at", TimeOrNull(a.started_at, clock)},
              {"finished_at", TimeOrNull(a.finished_at, clock)}};
}

}  // namespace

std::string FormatUnixMs(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  int ms = static_cast<int>(unix_ms % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

Json GroupResultToJson(const GroupResult& r, const WallClock& clock) {
  Json steps = Json::array();
  for (const StepResult& s : r.steps) {
    const AttemptRecord* last = s.attempts.empty() ? nullptr : &s.attempts.back();
    const AttemptRecord* first = s.attempts.empty() ? nullptr : &s.attempts.front();
    Json history = Json::array();
    for (const AttemptRecord& a : s.attempts) history.push_back(AttemptJson(a, clock));
    std::optional<Time> started = first ? first->started_at : std::nullopt;
    std::optional<Time> finished = last && IsFinal(s.state) ? last->finished_at : std::nullopt;
    Json duration = nullptr;
    if (started && finished) duration = DurationToSeconds(*finished - *started);
    std::string error = s.error;
    steps.push_back(Json{{"id", s.id},
                         {"state", std::string(StepStateName(s.state))},
                         {"attempts", s.attempts.size()},
                         {"worker", last ? Json(last->worker) : Json(nullptr)},
                         {"exit_code", last ? OrNull(last->exit_code) : Json(nullptr)},
                         {"signal", last ? OrNull(last->signal) : Json(nullptr)},
                         {"error", StringOrNull(error)},
                         {"waiting", StringOrNull(s.waiting)},
                         {"started_at", TimeOrNull(started, clock)},
                         {"finished_at", TimeOrNull(finished, clock)},
                         {"duration_s", duration},
                         {"stdout", last ? Json(last->stdout_tail) : Json(nullptr)},
                         {"stderr", last ? Json(last->stderr_tail) : Json(nullptr)},
                         {"history", std::move(history)}});
  }
  Json errors = Json::array();
  for (const GroupError& e : r.errors) errors.push_back(Json{{"step", StringOrNull(e.step)}, {"error", e.error}});
  Json cause = nullptr;
  if (r.cause) cause = Json{{"step", StringOrNull(r.cause->step)}, {"error", r.cause->error}};
  Json duration = nullptr;
  if (r.finished_at) duration = DurationToSeconds(*r.finished_at - r.submitted_at);
  Json counts = Json::object();
  size_t total = 0;
  for (int k = 0; k < kStepStateCount; ++k) {
    counts[std::string(StepStateName(static_cast<StepState>(k)))] = r.counts[k];
    total += r.counts[k];
  }
  return Json{{"group", r.id},
              {"state", std::string(GroupStateName(r.state))},
              {"cause", std::move(cause)},
              {"errors", std::move(errors)},
              {"submitted_at", FormatUnixMs(clock.ToUnixMs(r.submitted_at))},
              {"finished_at", TimeOrNull(r.finished_at, clock)},
              {"duration_s", duration},
              {"total", total},
              {"counts", std::move(counts)},
              {"steps_omitted", r.steps_omitted},
              {"steps", std::move(steps)}};
}

Json GroupSummaryToJson(const GroupSummary& s, const WallClock& clock) {
  Json j{{"group", s.id},
         {"state", std::string(GroupStateName(s.state))},
         {"total", s.total},
         {"submitted_at", FormatUnixMs(clock.ToUnixMs(s.submitted_at))},
         {"finished_at", TimeOrNull(s.finished_at, clock)}};
  for (int k = 0; k < kStepStateCount; ++k) {
    j[std::string(StepStateName(static_cast<StepState>(k)))] = s.counts[k];
  }
  return j;
}

namespace {

// The deepest nesting of arrays and objects in JSON text, by one linear scan
// that skips strings. (A parser callback could count depth too, but with one
// nlohmann-json 3.11 rescans the enclosing array at every closing brace,
// which made a 100,000-step group take seconds to parse.)
int NestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

bool ParseJsonBounded(std::string_view text, Json* out, std::string* error) {
  // The parser itself does not recurse, but serializing or walking a deeper
  // tree would, once per level: refuse it before it is built.
  if (NestingDepth(text) > kMaxJsonDepth) {
    *error = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }
  try {
    *out = Json::parse(text.begin(), text.end());
    return true;
  } catch (const Json::exception& e) {
    *error = e.what();
    return false;
  }
}

std::string DumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace cohort::common
