#include "common/result_json.h"

#include <algorithm>

#include "common/json_writer.h"
#include "common/protocol.h"
#include "common/version.h"

namespace cohort::common {
namespace {

using Json = nlohmann::json;

// Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 characters) at p. The date comes
// from Howard Hinnant's civil_from_days: gmtime_r and snprintf cost 4,000
// instructions per timestamp, and a result document holds five per step.
void FormatUnixMsTo(int64_t unix_ms, char* p) {
  int64_t days = unix_ms / 86'400'000;
  int64_t ms_of_day = unix_ms % 86'400'000;
  if (ms_of_day < 0) {
    ms_of_day += 86'400'000;
    --days;
  }
  const int64_t z = days + 719'468;
  const int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const int64_t doe = z - era * 146'097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) year = year < 0 ? 0 : 9999;  // a clock gone wild still gives 24 characters
  auto put = [&p](int64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i, v /= 10) p[i] = static_cast<char>('0' + v % 10);
    p += digits;
  };
  put(year, 4);
  *p++ = '-';
  put(month, 2);
  *p++ = '-';
  put(day, 2);
  *p++ = 'T';
  put(ms_of_day / 3'600'000, 2);
  *p++ = ':';
  put(ms_of_day / 60'000 % 60, 2);
  *p++ = ':';
  put(ms_of_day / 1000 % 60, 2);
  *p++ = '.';
  put(ms_of_day % 1000, 3);
  *p = 'Z';
}

constexpr size_t kTimestampChars = 24;

// The time between two shown times, from the milliseconds shown: a result
// read back from the store (which keeps milliseconds) reads the same.
double ShownSeconds(Time from, Time to, const WallClock& clock) {
  return static_cast<double>(clock.ToUnixMs(to) - clock.ToUnixMs(from)) / 1000.0;
}

void WriteTime(JsonWriter& w, Time t, const WallClock& clock) {
  char buf[kTimestampChars];
  FormatUnixMsTo(clock.ToUnixMs(t), buf);
  w.String(std::string_view(buf, sizeof buf));
}

void WriteTimeOrNull(JsonWriter& w, const std::optional<Time>& t, const WallClock& clock) {
  if (t) WriteTime(w, *t, clock);
  else w.Null();
}

void WriteError(JsonWriter& w, const GroupError& e) {
  w.BeginObject().Key("step").StringOrNull(e.step).Key("error").String(e.error).EndObject();
}

void WriteAttempt(JsonWriter& w, const AttemptRecord& a, const WallClock& clock) {
  w.BeginObject();
  w.Key("attempt").UInt(a.attempt);
  w.Key("worker").String(a.worker);
  w.Key("status").String(AttemptStatusName(a.status));
  w.Key("exit_code").IntOrNull(a.exit_code);
  w.Key("signal").IntOrNull(a.signal);
  w.Key("error").StringOrNull(a.error);
  w.Key("dispatched_at");
  WriteTime(w, a.dispatched_at, clock);
  w.Key("started_at");
  WriteTimeOrNull(w, a.started_at, clock);
  w.Key("finished_at");
  WriteTimeOrNull(w, a.finished_at, clock);
  w.EndObject();
}

void WriteStep(JsonWriter& w, const StepResult& s, const WallClock& clock) {
  const AttemptRecord* last = s.attempts.empty() ? nullptr : &s.attempts.back();
  const AttemptRecord* first = s.attempts.empty() ? nullptr : &s.attempts.front();
  // Pointers, not optional copies: GCC 12 warns (wrongly) that copies may
  // be read uninitialized.
  const std::optional<Time>* started = first ? &first->started_at : nullptr;
  const std::optional<Time>* finished = last && IsFinal(s.state) ? &last->finished_at : nullptr;
  const bool has_started = started && started->has_value();
  const bool has_finished = finished && finished->has_value();
  w.BeginObject();
  w.Key("id").String(s.id);
  w.Key("state").String(StepStateName(s.state));
  w.Key("attempts").UInt(s.attempts.size());
  w.Key("worker");
  if (last) w.String(last->worker);
  else w.Null();
  w.Key("exit_code");
  if (last) w.IntOrNull(last->exit_code);
  else w.Null();
  w.Key("signal");
  if (last) w.IntOrNull(last->signal);
  else w.Null();
  w.Key("error").StringOrNull(s.error);
  w.Key("waiting").StringOrNull(s.waiting);
  w.Key("started_at");
  if (has_started) WriteTime(w, **started, clock);
  else w.Null();
  w.Key("finished_at");
  if (has_finished) WriteTime(w, **finished, clock);
  else w.Null();
  w.Key("duration_s");
  if (has_started && has_finished) w.Double(ShownSeconds(**started, **finished, clock));
  else w.Null();
  w.Key("stdout");
  if (last) w.String(last->stdout_tail);
  else w.Null();
  w.Key("stderr");
  if (last) w.String(last->stderr_tail);
  else w.Null();
  w.Key("output_omitted").Bool(s.output_omitted);
  w.Key("history").BeginArray();
  for (const AttemptRecord& a : s.attempts) WriteAttempt(w, a, clock);
  w.EndArray();
  w.EndObject();
}

// The summaries below write their keys in sorted order, as nlohmann::json
// writes an object, so clients that compare documents as text see one form
// (tests/unit/result_json_test.cc checks it against nlohmann's).

void WriteSummary(JsonWriter& w, const GroupSummary& s, const WallClock& clock) {
  auto count = [&](StepState k) -> JsonWriter& { return w.Key(StepStateName(k)).UInt(s.count(k)); };
  w.BeginObject();
  count(StepState::kCancelled);
  count(StepState::kCompleted);
  // The counts again in the result document's shape, so that one reader
  // serves both; the flat keys stay for the clients that read them.
  w.Key("counts").BeginObject();
  for (StepState k : {StepState::kCancelled, StepState::kCompleted, StepState::kFailed, StepState::kPending,
                      StepState::kRetrying, StepState::kRunning}) {
    count(k);
  }
  w.EndObject();
  count(StepState::kFailed);
  w.Key("finished_at");
  WriteTimeOrNull(w, s.finished_at, clock);
  w.Key("group").String(s.id);
  count(StepState::kPending);
  count(StepState::kRetrying);
  count(StepState::kRunning);
  w.Key("schema").Int(kReplySchema);
  w.Key("state").String(GroupStateName(s.state));
  w.Key("submitted_at");
  WriteTime(w, s.submitted_at, clock);
  w.Key("total").UInt(s.total);
  w.Key("waiting").StringOrNull(s.waiting);
  w.EndObject();
}

int64_t AgeMs(Time then, Time now) {
  return now > then ? std::chrono::duration_cast<std::chrono::milliseconds>(now - then).count() : 0;
}

void WriteWorker(JsonWriter& w, const WorkerSummary& s, const WallClock& clock, Time now) {
  w.BeginObject();
  w.Key("agents").BeginArray();
  for (const std::string& a : s.agents) w.String(a);
  w.EndArray();
  w.Key("last_heartbeat");
  WriteTime(w, s.last_heartbeat, clock);
  w.Key("last_heartbeat_age_ms").Int(AgeMs(s.last_heartbeat, now));
  w.Key("name").String(s.name);
  w.Key("reason").String(s.reason);
  w.Key("running").Int(s.running);
  w.Key("since");
  WriteTime(w, s.since, clock);
  w.Key("slots").Int(s.slots);
  w.Key("state").String(s.state);
  w.Key("state_age_ms").Int(AgeMs(s.since, now));
  w.Key("version").String(s.version);
  w.EndObject();
}

}  // namespace

std::string FormatUnixMs(int64_t unix_ms) {
  std::string out(kTimestampChars, '\0');
  FormatUnixMsTo(unix_ms, out.data());
  return out;
}

std::string GroupResultJson(const GroupResult& r, const WallClock& clock) {
  std::string out;
  // About 600 bytes per step with one attempt and no output.
  out.reserve(512 + r.steps.size() * 640);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("schema").Int(kReplySchema);
  w.Key("group").String(r.id);
  w.Key("state").String(GroupStateName(r.state));
  w.Key("cause");
  if (r.cause) WriteError(w, *r.cause);
  else w.Null();
  w.Key("errors").BeginArray();
  for (const GroupError& e : r.errors) WriteError(w, e);
  w.EndArray();
  w.Key("submitted_at");
  WriteTime(w, r.submitted_at, clock);
  w.Key("finished_at");
  WriteTimeOrNull(w, r.finished_at, clock);
  w.Key("duration_s");
  if (r.finished_at) w.Double(ShownSeconds(r.submitted_at, *r.finished_at, clock));
  else w.Null();
  size_t total = 0;
  w.Key("counts").BeginObject();
  for (int k = 0; k < kStepStateCount; ++k) {
    w.Key(StepStateName(static_cast<StepState>(k))).UInt(r.counts[k]);
    total += r.counts[k];
  }
  w.EndObject();
  w.Key("total").UInt(total);
  w.Key("errors_omitted").UInt(r.errors_omitted);
  w.Key("steps_omitted").UInt(r.steps_omitted);
  w.Key("next_cursor");
  if (r.next_cursor) w.UInt(*r.next_cursor);
  else w.Null();
  w.Key("steps").BeginArray();
  for (const StepResult& s : r.steps) WriteStep(w, s, clock);
  w.EndArray();
  w.EndObject();
  return out;
}

std::string GroupSummaryJson(const GroupSummary& summary, const WallClock& clock) {
  std::string out;
  JsonWriter w(&out);
  WriteSummary(w, summary, clock);
  return out;
}

std::string GroupListJson(const std::vector<GroupSummary>& groups, const WallClock& clock) {
  std::string out;
  out.reserve(groups.size() * 256);
  JsonWriter w(&out);
  w.BeginArray();
  for (const GroupSummary& s : groups) WriteSummary(w, s, clock);
  w.EndArray();
  return out;
}

std::string WorkerListJson(const std::vector<WorkerSummary>& workers, const WallClock& clock, Time now) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  for (const WorkerSummary& s : workers) WriteWorker(w, s, clock, now);
  w.EndArray();
  return out;
}

std::string PingJson(const PingInfo& ping) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("epoch").UInt(ping.epoch);
  w.Key("leader").String(ping.leader);
  w.Key("name").String(ping.name);
  w.Key("protocol").String(kProtocol);
  w.Key("role").String(ping.role);
  w.Key("uptime_ms").Int(ping.uptime_ms);
  w.Key("version").String(kVersion);
  w.EndObject();
  return out;
}

std::string SubmittedJson(std::string_view group, bool existing, std::string_view warning) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  if (existing) w.Key("existing").Bool(true);
  w.Key("group").String(group);
  if (!warning.empty()) w.Key("warning").String(warning);
  w.EndObject();
  return out;
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

Status CheckJsonDepth(std::string_view text) {
  if (NestingDepth(text) <= kMaxJsonDepth) return Status::Ok();
  return Status::InvalidArgument("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
}

bool ParseJsonBounded(std::string_view text, Json* out, std::string* error) {
  // The parser itself does not recurse, but serializing or walking a deeper
  // tree would, once per level: refuse it before it is built.
  if (Status s = CheckJsonDepth(text); !s.ok()) {
    *error = s.message();
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
