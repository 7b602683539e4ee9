// The JSON documents the coordinator sends its clients, each written straight
// to text with JsonWriter: the result document (a group's result, the body of
// STATUS and WAIT replies and the output of `cohort ... --json`), the group
// summary and the group list, the worker list and the reply to SUBMIT. Every
// key is always present; what is not known is null. Times are ISO-8601 UTC
// strings with milliseconds. Bytes of strings that are not valid UTF-8 are
// replaced with U+FFFD when the document is written. Also the bounded parser
// and the serializer the CLI uses for the documents it reads and writes.
// Stateless functions; safe from any thread.
#ifndef COHORT_COMMON_RESULT_JSON_H_
#define COHORT_COMMON_RESULT_JSON_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/status.h"
#include "common/time.h"

namespace cohort::common {

// "2026-11-26T11:32:03.123Z"
std::string FormatUnixMs(int64_t unix_ms);

// The "schema" every result document and group summary carries: raised
// when a field changes meaning or goes away, not when one is added, so a
// client can refuse a shape it was not written for.
inline constexpr int kReplySchema = 1;

// The whole result document as JSON text, written directly (see
// common/json_writer.h): a 10,000-step document is built on the
// coordinator's loop when a group ends.
std::string GroupResultJson(const GroupResult& result, const WallClock& clock);

// The group summary: one group's counts without its steps, the body of a
// brief STATUS and the progress line of `cohort wait`.
std::string GroupSummaryJson(const GroupSummary& summary, const WallClock& clock);
// The reply to GROUPS: every group held, as an array of summaries.
std::string GroupListJson(const std::vector<GroupSummary>& groups, const WallClock& clock);

// One worker as the WORKERS reply lists it: live ones, then those lost lately.
struct WorkerSummary {
  std::string name;
  int64_t slots = 0;
  int64_t running = 0;
  std::vector<std::string> agents;
  Time last_heartbeat{};
  std::string version;
  std::string state = "ready";  // ready, cordoned, draining, drained or lost
  Time since{};                 // when it entered `state`
  std::string reason;           // who cordoned it, or why it was lost
};
// Ages ("last_heartbeat_age_ms", "state_age_ms") count to `now` on the
// coordinator's clock, so a client on a skewed clock still reads them right.
std::string WorkerListJson(const std::vector<WorkerSummary>& workers, const WallClock& clock, Time now);

// The reply to PING: who answers and how long it has run. "version" and
// "protocol" are this build's.
struct PingInfo {
  std::string role;    // "leader" or "standby"
  std::string name;    // the coordinator's name (--name, or the host name)
  std::string leader;  // the leader's client endpoint: its own for a leader, "" when a standby knows none
  uint64_t epoch = 0;  // the leadership epoch (0: a coordinator that shares no store)
  int64_t uptime_ms = 0;
};
std::string PingJson(const PingInfo& ping);

// The reply to SUBMIT: {"group":"<id>"}.
// {"group": ID}, and "existing": true when the SUBMIT attached to a group
// the same client had submitted with the same spec.
// `warning`, when not empty: something the submitter should know about a
// group that was accepted (steps no live worker can take).
std::string SubmittedJson(std::string_view group, bool existing = false, std::string_view warning = "");

// Parses JSON without throwing and without letting nesting run deeper than
// kMaxJsonDepth: serializing or walking a hostile 200,000-level document
// recurses once per level and would overflow the stack. false and *error
// set on bad syntax or too deep a document.
constexpr int kMaxJsonDepth = 64;
// The same depth check alone, by a linear scan of the text: InvalidArgument
// "nested deeper than ..." when it is too deep.
Status CheckJsonDepth(std::string_view text);
bool ParseJsonBounded(std::string_view text, nlohmann::json* out, std::string* error);

// Serializes without throwing: invalid UTF-8 (from a step's output) becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace cohort::common

#endif  // COHORT_COMMON_RESULT_JSON_H_
