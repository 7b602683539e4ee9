// The messages of cohort's wire protocol as plain C++ values: one struct per
// message, and Message, the variant of them all, which is what the codec
// (common/codec.h) encodes and decodes. Field names follow the wire keys
// (docs/PROTOCOL.md), except stdout/stderr, which are macros in <cstdio>.
//
// Who sends what:
//   client -> coordinator   SUBMIT STATUS WAIT CANCEL GROUPS WORKERS LOGS PING CORDON
//                           (each with a req id)
//   coordinator -> client   REPLY (echoing req)
//   worker -> coordinator   REGISTER STARTED FINISHED HEARTBEAT BYE
//   coordinator -> worker   WELCOME RUN CANCEL HEARTBEAT REREGISTER CONFIRM
//   coordinator PUB -> SUB  CANCEL_GROUP
// CANCEL is one command name with two bodies: a client's (CancelRequestMsg,
// with req) and the coordinator's to a worker (CancelAttemptMsg, without).
//
// Thread contract: plain data, safe to copy and move between threads.
#ifndef COHORT_COMMON_MESSAGES_H_
#define COHORT_COMMON_MESSAGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"

namespace cohort::common {

// One attempt of one step: the unit a worker runs. The attempt number is the
// fencing token: the coordinator ignores reports for an attempt that is not
// the step's current one. A group id can be submitted again once the old
// group is forgotten, so (submission, step, attempt) is what names an
// attempt; the group id is carried for logs and error messages.
struct AttemptId {
  std::string group;
  uint32_t step = 0;     // index of the step in the group's spec
  uint32_t attempt = 0;  // 1-based
  // The coordinator's number for one acceptance of the group: >= 1 on the
  // wire, never reused, not even across a coordinator restart. Last, so that
  // {group, step, attempt} still initialises the rest.
  uint64_t submission = 0;
  bool operator==(const AttemptId&) const = default;
};

// ---- Client -> coordinator ---------------------------------------------------
// Every request carries `req`, chosen by the client and echoed in the REPLY,
// so one client can have many requests in flight on one socket.

struct SubmitMsg {
  uint64_t req = 0;
  std::string spec;  // the group's JSON text, exactly as in a group file
  bool operator==(const SubmitMsg&) const = default;
};

struct StatusMsg {
  uint64_t req = 0;
  std::string group;
  // Optional on the wire (sent only when true): reply with the group's
  // summary (state and counts per step state), cheap at any size.
  bool brief = false;
  // Optional on the wire (0 = the first page): the step index the page
  // starts at, from the previous page's next_cursor (docs/PROTOCOL.md).
  uint64_t cursor = 0;
  bool operator==(const StatusMsg&) const = default;
};

// Like STATUS, but the REPLY comes only once the group has finished.
struct WaitMsg {
  uint64_t req = 0;
  std::string group;
  bool operator==(const WaitMsg&) const = default;
};

// Wire command CANCEL, from a client.
struct CancelRequestMsg {
  uint64_t req = 0;
  std::string group;
  std::string step;  // a step id; "" cancels the whole group
  bool operator==(const CancelRequestMsg&) const = default;
};

struct GroupsMsg {
  uint64_t req = 0;
  bool operator==(const GroupsMsg&) const = default;
};

struct WorkersMsg {
  uint64_t req = 0;
  bool operator==(const WorkersMsg&) const = default;
};

// ---- Coordinator -> client ---------------------------------------------------

struct ReplyMsg {
  uint64_t req = 0;
  // On the wire as "ok", "invalid_argument", ... (WireCodeName in codec.h).
  Status::Code code = Status::Code::kOk;
  std::string error;  // the human message; "" when ok
  std::string body;   // a JSON document, "" when none (see docs/PROTOCOL.md)
  // From a standby coordinator (code unavailable; optional on the wire, ""
  // = not given): the client endpoint of the one that leads, to ask instead.
  std::string leader;
  bool operator==(const ReplyMsg&) const = default;
};

// ---- Worker <-> coordinator --------------------------------------------------

struct RegisterMsg {
  std::string name;                 // unique among workers
  uint32_t slots = 1;               // attempts it runs at once, >= 1
  std::vector<std::string> agents;  // labels it offers
  std::vector<AttemptId> running;   // attempts it still runs (after a reconnect)
  std::string version;              // the worker's build, for the log
  // Random per worker process (optional on the wire, 0 = not given): tells a
  // reconnect of the same worker from a second worker using the same name.
  uint64_t instance = 0;
  // Numbers this REGISTER for the WELCOME's ack (optional, 0 = not given).
  uint64_t seq = 0;
  // The worker's time between SIGTERM and SIGKILL (optional, 0 = not given,
  // at most kMaxKillGraceMs): the coordinator waits at least this much more
  // than the worker's own wait after SIGKILL for a stopped step's report.
  uint32_t kill_grace_ms = 0;
  // The worker is leaving (SIGTERM) and wants no new steps (optional, false
  // = not given). Its heartbeats say the same while it lasts.
  bool draining = false;
  bool operator==(const RegisterMsg&) const = default;
};

struct WelcomeMsg {
  uint32_t heartbeat_ms = kDefaultHeartbeatMs;  // >= 1
  uint32_t liveness = kDefaultLiveness;         // heartbeats missed before giving up, >= 1
  std::string cancel_endpoint;                  // where to SUBscribe to CANCEL_GROUP
  // The worker's lease (optional on the wire, 0 = none): a worker whose
  // latest acknowledged message was sent longer ago than this has stopped
  // its steps, so the coordinator may run them elsewhere.
  uint32_t lease_ms = 0;
  uint64_t ack = 0;  // the seq of the REGISTER answered (optional, 0 = none)
  // The coordinator's leadership epoch (optional, 0 = none: a coordinator
  // that does not share its store). A worker obeys RUN and CANCEL only from
  // the highest epoch it has seen (docs/ARCHITECTURE.md).
  uint64_t epoch = 0;
  bool operator==(const WelcomeMsg&) const = default;
};

// Both ways. Any message counts as one; this one only says "still here",
// and from a worker also what it holds.
struct HeartbeatMsg {
  // Worker -> coordinator only (optional on the wire, absent = not given):
  // the attempts the worker holds, as in REGISTER's running list. ZeroMQ
  // drops a RUN silently at the high-water mark, so this is how the
  // coordinator learns that a RUN never arrived.
  std::optional<std::vector<AttemptId>> running;
  // Worker -> coordinator: this heartbeat's number. Coordinator -> worker:
  // the seq of the latest worker REGISTER or HEARTBEAT it received, which
  // renews the worker's lease from the time that one was sent. Both
  // optional on the wire, 0 = not given.
  uint64_t seq = 0;
  uint64_t ack = 0;
  uint64_t epoch = 0;  // coordinator -> worker, as in WELCOME
  bool draining = false;  // worker -> coordinator, as in REGISTER
  bool operator==(const HeartbeatMsg&) const = default;
};

struct RunMsg {
  AttemptId id;
  std::string step_id;            // the step's id in the spec, for logs and errors
  std::vector<std::string> argv;  // run directly when non-empty ...
  std::string shell;              // ... otherwise run with /bin/sh -c
  std::vector<std::pair<std::string, std::string>> env;  // added, in order, to the worker's base environment
  std::string cwd;                // "" = the worker's default
  uint64_t timeout_ms = 0;        // 0 = no timeout
  uint64_t epoch = 0;             // as in WELCOME
  // The key name of the client that submitted the group (optional on the
  // wire, "" = not given: no CURVE, or an older coordinator). The worker maps
  // it to the Unix user the step runs as.
  std::string client;
  bool operator==(const RunMsg&) const = default;
};

struct StartedMsg {
  AttemptId id;
  bool operator==(const StartedMsg&) const = default;
};

struct FinishedMsg {
  AttemptId id;
  std::optional<int> exit_code;  // set when the process exited
  std::optional<int> signal;     // set when a signal ended it
  bool timed_out = false;        // killed at its timeout
  bool cancelled = false;        // killed (or refused) because of a cancel
  bool escalated = false;        // SIGTERM was not enough; SIGKILL was sent
  // The worker stopped it on its own, its lease run out (optional on the
  // wire): counted as a lost worker's attempt, retried as one.
  bool lost = false;
  std::string error;             // e.g. why it could not start; "" otherwise
  std::string stdout_tail;       // wire "stdout": the last bytes, any bytes
  std::string stderr_tail;       // wire "stderr"
  uint64_t stdout_bytes = 0;     // totals written, before tailing
  uint64_t stderr_bytes = 0;
  int64_t started_ms = 0;        // worker wall clock, Unix ms
  int64_t finished_ms = 0;
  bool operator==(const FinishedMsg&) const = default;
};

// Wire command CANCEL, from the coordinator to the worker running the attempt.
struct CancelAttemptMsg {
  AttemptId id;
  uint64_t epoch = 0;  // as in WELCOME
  bool operator==(const CancelAttemptMsg&) const = default;
};

// The coordinator does not know this worker (it restarted, or declared the
// worker lost); the worker must REGISTER again.
struct ReregisterMsg {
  std::string reason;
  // From a standby coordinator (optional, "" = not given): the worker
  // endpoint of the one that leads, to register with instead.
  std::string leader;
  bool operator==(const ReregisterMsg&) const = default;
};

// The worker is shutting down; the coordinator treats it as lost at once.
struct ByeMsg {
  bool operator==(const ByeMsg&) const = default;
};

// The coordinator has durably recorded these attempts' results (or refused
// them as stale): the worker may forget them. Until then it keeps each
// result and sends it again.
struct ConfirmMsg {
  std::vector<AttemptId> ids;  // at most kMaxArgs
  bool operator==(const ConfirmMsg&) const = default;
};

// ---- Coordinator PUB -> worker SUB -------------------------------------------

// Stop every attempt of one submission of the group.
struct CancelGroupMsg {
  std::string group;
  uint64_t submission = 0;  // as in AttemptId; what a worker matches on
  uint64_t epoch = 0;       // as in WELCOME
  bool operator==(const CancelGroupMsg&) const = default;
};

// New messages go last: the index of each alternative is its number in the
// fuzz corpus (fuzz/make_seeds.cc).
// Wire command LOGS, from a client: the kept output tail of one attempt of a
// step. The REPLY's body is the tail's bytes as the step wrote them.
struct LogsMsg {
  uint64_t req = 0;
  std::string group;
  std::string step;      // the step's id
  uint32_t attempt = 0;  // 1-based; 0 = the last
  std::string stream;    // "stdout" or "stderr"
  bool operator==(const LogsMsg&) const = default;
};

// Wire command PING, from a client: is this coordinator up, which version,
// and does it lead? Answered by a leader and by a standby alike (REPLY ok;
// the body says which), without following any redirect: a health check.
struct PingMsg {
  uint64_t req = 0;
  bool operator==(const PingMsg&) const = default;
};

// Wire command CORDON, from a client: whether new steps may go to a worker.
// `mode` is "cordoned" (no new steps), "draining" (the same; the CLI then
// waits for the running ones to end) or "ready".
struct CordonMsg {
  uint64_t req = 0;
  std::string worker;
  std::string mode;
  bool operator==(const CordonMsg&) const = default;
};

using Message = std::variant<SubmitMsg, StatusMsg, WaitMsg, CancelRequestMsg, GroupsMsg, WorkersMsg, ReplyMsg,
                             RegisterMsg, WelcomeMsg, HeartbeatMsg, RunMsg, StartedMsg, FinishedMsg,
                             CancelAttemptMsg, ReregisterMsg, ByeMsg, CancelGroupMsg, ConfirmMsg, LogsMsg, PingMsg,
                             CordonMsg>;

}  // namespace cohort::common

#endif  // COHORT_COMMON_MESSAGES_H_
