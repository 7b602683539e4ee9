// Store is the coordinator's durable memory: an append-mostly log of what
// happened to each group, kept so that a restarted coordinator can rebuild
// its scheduling core instead of forgetting every group. The core speaks to
// it in the plain records below; an implementation (SqliteStore today, a
// PostgreSQL one later, both on the schema in store_schema.h) turns them into
// rows and back. Nothing here names a database type, so the pure core may
// include this header.
//
// Every record is keyed by the group's submission: a number given to one
// acceptance of a group and never to another, even when the same group id
// is submitted again later. The store remembers the highest submission ever
// committed, past forgetting and restarts, so the caller can continue above
// it (LoadedState::max_submission) and the store refuses one at or below it.
//
// Commit is group commit: the caller gathers the records of one loop turn
// and hands them over together; they are applied in one transaction, all or
// none. Load returns every group still running, its records folded into the
// shape the core restores from, and a summary of each finished group not yet
// forgotten; LoadGroup reads one group in full when someone asks for it. So
// a restart reads what it must schedule, not every result it retains.
//
// Errors are common::Status values; no exception crosses this interface.
// Times are wall-clock Unix milliseconds (the core's monotonic Time does not
// survive a restart).
//
// Thread contract: an implementation is not thread-safe; the one event loop
// that owns it calls it. Destroying it closes the database and gives up the
// state directory.
#ifndef COHORT_COORDINATOR_STORE_H_
#define COHORT_COORDINATOR_STORE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace cohort::coordinator {

// Integers are stored as signed 64-bit SQL BIGINTs, so unsigned counts and
// submissions must stay at or below this; Commit refuses larger ones.
constexpr uint64_t kMaxStoredUnsigned = INT64_MAX;

// ---- Records ----------------------------------------------------------------

// A group was accepted: it is durable once this commits. `spec_json` is the
// spec as the core will parse it again on restore.
struct GroupAccepted {
  uint64_t submission = 0;  // >= 1, above every submission committed before
  std::string group_id;
  std::string spec_json;
  std::string client;  // who submitted it (the CURVE key's name, or "")
  int64_t submitted_unix_ms = 0;
  uint64_t step_count = 0;

  friend bool operator==(const GroupAccepted&, const GroupAccepted&) = default;
};

// An attempt was dispatched to a worker. (submission, step, attempt) is
// unique: the attempt number is the core's fencing token.
struct AttemptStarted {
  uint64_t submission = 0;
  uint32_t step = 0;     // index in the group's steps, submission order
  uint32_t attempt = 0;  // 1-based
  std::string worker;
  int64_t dispatched_unix_ms = 0;

  friend bool operator==(const AttemptStarted&, const AttemptStarted&) = default;
};

// An attempt that was started is over. The tails are bytes as the step wrote
// them (not necessarily UTF-8); the byte counts are everything it wrote.
struct AttemptEnded {
  uint64_t submission = 0;
  uint32_t step = 0;
  uint32_t attempt = 0;
  int64_t ended_unix_ms = 0;
  std::optional<int64_t> started_unix_ms;  // when the worker said it started, if it did
  common::AttemptStatus status = common::AttemptStatus::kFailed;  // never kRunning
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool timed_out = false;
  bool cancelled = false;
  std::string error;
  std::string stdout_tail;
  std::string stderr_tail;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;

  friend bool operator==(const AttemptEnded&, const AttemptEnded&) = default;
};

// A step reached its final state (completed, failed or cancelled), once.
struct StepEnded {
  uint64_t submission = 0;
  uint32_t step = 0;
  common::StepState state = common::StepState::kFailed;  // IsFinal(state)
  std::string error;
  int64_t unix_ms = 0;

  friend bool operator==(const StepEnded&, const StepEnded&) = default;
};

// Someone asked to cancel the group (no step) or one step. Kept in order.
struct CancelRequested {
  uint64_t submission = 0;
  std::optional<uint32_t> step;
  std::string who;
  int64_t unix_ms = 0;

  friend bool operator==(const CancelRequested&, const CancelRequested&) = default;
};

// The group started to stop: nothing new starts, running attempts are being
// cancelled, and `state` (cancelled or failed) is the state it ends in. Once
// per group; a restored group goes on stopping.
struct GroupStopped {
  uint64_t submission = 0;
  common::GroupState state = common::GroupState::kFailed;  // kCancelled or kFailed
  int64_t unix_ms = 0;

  friend bool operator==(const GroupStopped&, const GroupStopped&) = default;
};

// An entry of the group's error list (what a result reports as `errors`),
// `seq` its position from 0. `step_id` is "" for an error of the whole group
// (its deadline).
struct ErrorAdded {
  uint64_t submission = 0;
  uint32_t seq = 0;
  std::string step_id;
  std::string error;
  int64_t unix_ms = 0;

  friend bool operator==(const ErrorAdded&, const ErrorAdded&) = default;
};

// The group reached its final state.
struct GroupEnded {
  uint64_t submission = 0;
  common::GroupState state = common::GroupState::kFailed;  // never kRunning
  int64_t unix_ms = 0;

  friend bool operator==(const GroupEnded&, const GroupEnded&) = default;
};

// The group's retention is over: every row of it is deleted. Its submission
// stays given out.
struct GroupForgotten {
  uint64_t submission = 0;

  friend bool operator==(const GroupForgotten&, const GroupForgotten&) = default;
};

// An operator cordoned, drained or readied a worker (coordinator::WorkerMode
// by name: "cordoned", "draining", or "ready", which clears it). Kept so a
// restarted coordinator still places nothing on a worker being serviced.
// The only record not about a group: it has no submission.
struct WorkerModeSet {
  std::string worker;
  std::string mode;
  std::string who;
  int64_t unix_ms = 0;

  friend bool operator==(const WorkerModeSet&, const WorkerModeSet&) = default;
};

using Record = std::variant<GroupAccepted, AttemptStarted, AttemptEnded, StepEnded, CancelRequested,
                            GroupStopped, ErrorAdded, GroupEnded, GroupForgotten, WorkerModeSet>;

// "AttemptEnded submission=7 step=2 attempt=1", for error messages.
std::string Describe(const Record& record);

// ---- What Load returns --------------------------------------------------------

struct LoadedAttempt {
  AttemptStarted started;
  std::optional<AttemptEnded> ended;  // absent: it was running when the store last heard

  friend bool operator==(const LoadedAttempt&, const LoadedAttempt&) = default;
};

// Only steps with an attempt or an end are listed: a step missing from
// LoadedGroup::steps is still pending.
struct LoadedStep {
  uint32_t step = 0;
  std::vector<LoadedAttempt> attempts;  // ascending attempt number
  std::optional<StepEnded> ended;

  friend bool operator==(const LoadedStep&, const LoadedStep&) = default;
};

struct LoadedGroup {
  GroupAccepted accepted;
  std::vector<LoadedStep> steps;         // ascending step index
  std::vector<CancelRequested> cancels;  // in the order they were committed
  std::vector<ErrorAdded> errors;        // ascending seq
  std::optional<GroupStopped> stopped;   // absent: not stopping
  std::optional<GroupEnded> ended;       // absent: still running

  friend bool operator==(const LoadedGroup&, const LoadedGroup&) = default;
};

// A finished group as Load lists it: what a list of groups shows and what
// its retention needs.
struct FinishedSummary {
  uint64_t submission = 0;
  std::string group_id;
  std::string client;
  int64_t submitted_unix_ms = 0;
  uint64_t step_count = 0;
  GroupEnded ended;
  std::array<uint64_t, common::kStepStateCount> counts{};  // steps by final state

  friend bool operator==(const FinishedSummary&, const FinishedSummary&) = default;
};

struct LoadedState {
  std::vector<LoadedGroup> groups;         // unfinished, ascending submission
  std::vector<FinishedSummary> finished;  // finished, not forgotten, ascending submission
  uint64_t max_submission = 0;             // the highest ever committed; 0 for a new store
  std::vector<WorkerModeSet> worker_modes;  // the modes in force (never "ready"), by worker name

  friend bool operator==(const LoadedState&, const LoadedState&) = default;
};

// ---- The interface --------------------------------------------------------------

class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` in order in one transaction. On any error nothing of the
  // batch is kept and the store stays usable: a later Commit may succeed
  // (after a full disk has room again, say). Codes: InvalidArgument (a
  // record that can never be stored), FailedPrecondition (a record that does
  // not fit what is stored: an unknown group, an attempt never started, a
  // submission reused), Unavailable (disk full, database busy), IoError,
  // Corruption. The message names the offending record.
  virtual common::Status Commit(const std::vector<Record>& batch) = 0;

  // Replaces `*out` with the unfinished groups and the finished ones'
  // summaries. Corruption when rows contradict each other (a step index past
  // the group's step count, an unknown state).
  virtual common::Status Load(LoadedState* out) = 0;

  // Replaces `*out` with everything stored of one group, finished or not.
  // NotFound when it was forgotten or never committed; Corruption as Load.
  virtual common::Status LoadGroup(uint64_t submission, LoadedGroup* out) = 0;

  // One ended attempt's output tails, for a running group whose output the
  // core let go of. NotFound when no such ended attempt is stored.
  virtual common::Status LoadOutput(uint64_t submission, uint32_t step, uint32_t attempt, std::string* stdout_tail,
                                    std::string* stderr_tail) = 0;

  // Commit in two halves, for a store on another process (PostgreSQL):
  // StartCommit sends the batch and returns; the caller goes on, polls
  // fd() for readability, and calls FinishCommit with the same batch until
  // *done, which then gives Commit's outcome. One at a time; nothing else
  // is asked of the store in between. An error from StartCommit means the
  // batch was not committed, as Commit's. Only when pipelined().
  virtual bool pipelined() const { return false; }
  virtual common::Status StartCommit(const std::vector<Record>& batch) { return Commit(batch); }
  virtual common::Status FinishCommit(const std::vector<Record>& /*batch*/, bool* done) {
    *done = true;
    return common::Status::Ok();
  }
  virtual int fd() const { return -1; }
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STORE_H_
