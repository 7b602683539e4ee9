// Internal to the wire codec (common/codec.h): what its two halves share,
// encoding and validation in common/codec.cc and decoding in
// common/codec_decode.cc. Nothing else includes this header. It holds the
// command-name table, the wording of field errors, and the
// value rules (Checker and its Check overloads) that Decode and
// ValidateMessage both apply.
//
// Thread contract: stateless free functions; a Checker belongs to one call.
#ifndef COHORT_COMMON_CODEC_INTERNAL_H_
#define COHORT_COMMON_CODEC_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"
#include "common/utf8.h"

namespace cohort::common::codec_internal {

using common::FirstInvalidUtf8;
using common::RepairUtf8InPlace;
using common::Utf8SequenceLength;

// Indexed by Message's alternatives, in order.
inline constexpr std::string_view kCommandNames[] = {
    "SUBMIT",    "STATUS", "WAIT",    "CANCEL",   "GROUPS", "WORKERS",    "REPLY", "REGISTER",     "WELCOME",
    "HEARTBEAT", "RUN",    "STARTED", "FINISHED", "CANCEL", "REREGISTER", "BYE",   "CANCEL_GROUP", "CONFIRM",
    "LOGS",      "PING",   "CORDON"};
static_assert(std::size(kCommandNames) == std::variant_size_v<Message>);

inline constexpr size_t kNone = std::string_view::npos;

// ---- Text --------------------------------------------------------------------

// ---- Field errors -------------------------------------------------------------

// Where a value sits in its message: "argv", "argv[3]", "running[3].group",
// "env[2][1]". Spelled out only when something is wrong with it.
struct Where {
  Where(const char* field) : field(field) {}  // NOLINT: implicit, so a field name reads as one
  explicit Where(std::string_view field) : field(field) {}
  Where(std::string_view field, size_t index, std::string_view sub = {}) : field(field), index(index), sub(sub) {}
  std::string str() const {
    return std::string(field) + (index == kNone ? "" : "[" + std::to_string(index) + "]") + std::string(sub);
  }

  std::string_view field;
  size_t index = kNone;
  std::string_view sub;
};

inline std::string FieldError(std::string_view command, const Where& where, const std::string& what) {
  return std::string(command) + ": field \"" + where.str() + "\" " + what;
}

inline std::string TooMany(std::string_view command, const Where& where, size_t n) {
  return FieldError(command, where, "has " + std::to_string(n) + " entries, over the limit of " +
                                        std::to_string(kMaxArgs) + " (kMaxArgs)");
}

// ---- Value rules (shared by Decode and ValidateMessage) ------------------------

// Checks sizes, counts and encodings. Keeps the first problem, so a caller
// chains every check and reads status() once.
class Checker {
 public:
  explicit Checker(std::string_view command) : command_(command) {}

  Checker& Name(std::string_view v, Where w) { return Bytes(v, w, kMaxNameBytes, "kMaxNameBytes", true); }
  Checker& String(std::string_view v, Where w) { return Bytes(v, w, kMaxStringBytes, "kMaxStringBytes", true); }
  // Free text is repaired rather than refused, so only its size matters.
  Checker& Text(std::string_view v, Where w) { return Bytes(v, w, kMaxStringBytes, "kMaxStringBytes", false); }
  // JSON documents: the receiver's JSON parser judges their encoding and can
  // answer the sender, which a dropped message cannot.
  Checker& Document(std::string_view v, Where w) {
    return Bytes(v, w, kMaxDocumentBytes, "kMaxDocumentBytes", false);
  }
  Checker& Output(std::string_view v, Where w) { return Bytes(v, w, kMaxOutputBytes, "kMaxOutputBytes", false); }
  Checker& Count(size_t n, Where w) { return n > kMaxArgs ? Fail(TooMany(command_, w, n)) : *this; }
  Checker& Rule(bool holds, Where w, const char* what) {
    return holds ? *this : Fail(FieldError(command_, w, what));
  }
  // Every submission is numbered from 1, so 0 can only be a sender that
  // never filled it in.
  Checker& Submission(uint64_t v, Where w) { return Rule(v >= 1, w, "must be at least 1, got 0"); }
  // An AttemptId inline in the body (`list` empty), or entry `i` of `list`.
  Checker& Id(const AttemptId& id, std::string_view list = {}, size_t i = kNone) {
    if (list.empty()) return Name(id.group, "group").Submission(id.submission, "submission");
    return Name(id.group, {list, i, ".group"}).Submission(id.submission, {list, i, ".submission"});
  }
  Checker& Ids(const std::vector<AttemptId>& ids, std::string_view list) {
    Count(ids.size(), Where(list));
    for (size_t i = 0; i < ids.size(); ++i) Id(ids[i], list, i);
    return *this;
  }
  Status status() const { return error_.empty() ? Status::Ok() : Status::Corruption(error_); }

 private:
  Checker& Bytes(std::string_view v, const Where& w, size_t limit, const char* limit_name, bool utf8) {
    if (!error_.empty()) return *this;
    if (v.size() > limit) {
      return Fail(FieldError(command_, w, "is " + std::to_string(v.size()) + " bytes, over the limit of " +
                                              std::to_string(limit) + " (" + limit_name + ")"));
    }
    size_t bad = utf8 ? FirstInvalidUtf8(v) : kNone;
    if (bad == kNone) return *this;
    return Fail(FieldError(command_, w, "is not valid UTF-8 (byte " + std::to_string(bad) + ")"));
  }
  Checker& Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return *this;
  }

  std::string_view command_;
  std::string error_;
};

inline void Check(Checker&, const GroupsMsg&) {}
inline void Check(Checker&, const WorkersMsg&) {}
inline void Check(Checker&, const PingMsg&) {}
inline void Check(Checker& c, const CordonMsg& m) {
  c.Name(m.worker, "worker").Rule(!m.worker.empty(), "worker", "must name a worker");
  c.Rule(m.mode == "cordoned" || m.mode == "draining" || m.mode == "ready", "mode",
         "must be \"cordoned\", \"draining\" or \"ready\"");
}
inline void Check(Checker&, const ByeMsg&) {}
inline void Check(Checker& c, const SubmitMsg& m) { c.Document(m.spec, "spec"); }
inline void Check(Checker& c, const StatusMsg& m) { c.Name(m.group, "group"); }
inline void Check(Checker& c, const LogsMsg& m) {
  c.Name(m.group, "group").Name(m.step, "step");
  c.Rule(m.stream == "stdout" || m.stream == "stderr", "stream", "must be \"stdout\" or \"stderr\"");
}
inline void Check(Checker& c, const WaitMsg& m) { c.Name(m.group, "group"); }
inline void Check(Checker& c, const CancelRequestMsg& m) { c.Name(m.group, "group").Name(m.step, "step"); }
inline void Check(Checker& c, const ReplyMsg& m) {
  c.Rule(!WireCodeName(m.code).empty(), "code", "is not a known status code");
  c.Text(m.error, "error").Document(m.body, "body").String(m.leader, "leader");
}
inline void Check(Checker& c, const RegisterMsg& m) {
  c.Name(m.name, "name").Rule(m.slots >= 1, "slots", "must be at least 1, got 0").Count(m.agents.size(), "agents");
  if (m.agents.size() > kMaxAgents) {
    c.Rule(false, "agents",
           ("must list at most " + std::to_string(kMaxAgents) + " labels (kMaxAgents), got " +
            std::to_string(m.agents.size())).c_str());
  }
  for (size_t i = 0; i < m.agents.size(); ++i) c.Name(m.agents[i], {"agents", i});
  c.Ids(m.running, "running").Name(m.version, "version");
  c.Rule(m.kill_grace_ms <= kMaxKillGraceMs, "kill_grace_ms", "must be at most 3600000 (an hour)");
}
inline void Check(Checker& c, const HeartbeatMsg& m) {
  if (m.running) c.Ids(*m.running, "running");
}
inline void Check(Checker& c, const WelcomeMsg& m) {
  c.Rule(m.heartbeat_ms >= 1, "heartbeat_ms", "must be at least 1, got 0");
  c.Rule(m.liveness >= 1, "liveness", "must be at least 1, got 0").String(m.cancel_endpoint, "cancel_endpoint");
}
inline void Check(Checker& c, const RunMsg& m) {
  c.Id(m.id).Name(m.step_id, "step_id").Count(m.argv.size(), "argv");
  for (size_t i = 0; i < m.argv.size(); ++i) c.String(m.argv[i], {"argv", i});
  c.String(m.shell, "shell").Count(m.env.size(), "env");
  for (size_t i = 0; i < m.env.size(); ++i) {
    c.String(m.env[i].first, {"env", i, "[0]"}).String(m.env[i].second, {"env", i, "[1]"});
  }
  c.String(m.cwd, "cwd");
  if (!m.client.empty()) c.Name(m.client, "client");
}
inline void Check(Checker& c, const StartedMsg& m) { c.Id(m.id); }
inline void Check(Checker& c, const FinishedMsg& m) {
  c.Id(m.id).Text(m.error, "error").Output(m.stdout_tail, "stdout").Output(m.stderr_tail, "stderr");
}
inline void Check(Checker& c, const CancelAttemptMsg& m) { c.Id(m.id); }
inline void Check(Checker& c, const ReregisterMsg& m) { c.Text(m.reason, "reason").String(m.leader, "leader"); }
inline void Check(Checker& c, const CancelGroupMsg& m) {
  c.Name(m.group, "group").Submission(m.submission, "submission");
}
inline void Check(Checker& c, const ConfirmMsg& m) { c.Ids(m.ids, "ids"); }

}  // namespace cohort::common::codec_internal

#endif  // COHORT_COMMON_CODEC_INTERNAL_H_
