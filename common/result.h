// The result model: what a group and each of its steps became, attempt by
// attempt. The scheduling core fills it in; the CLI and the daemons show and
// send it. Plain data, safe to copy between threads.
#ifndef COHORT_COMMON_RESULT_H_
#define COHORT_COMMON_RESULT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace cohort::common {

enum class StepState : uint8_t {
  kPending,    // not started yet
  kRunning,    // an attempt is dispatched or running (or being stopped)
  kRetrying,   // an attempt failed; waiting out the backoff before the next
  kCompleted,  // final: an attempt succeeded
  kFailed,     // final: the last attempt failed and no retry is left
  kCancelled,  // final: stopped by a cancel (the user's, or the group's fail-fast)
};
constexpr int kStepStateCount = 6;
std::string_view StepStateName(StepState s);
inline bool IsFinal(StepState s) {
  return s == StepState::kCompleted || s == StepState::kFailed || s == StepState::kCancelled;
}

enum class GroupState : uint8_t { kRunning, kCompleted, kFailed, kCancelled };
std::string_view GroupStateName(GroupState s);

// How one attempt ended, as the core classifies it.
enum class AttemptStatus : uint8_t {
  kRunning,     // no result yet
  kSucceeded,   // exit code 0
  kFailed,      // non-zero exit, killed by a signal, or could not start
  kTimedOut,    // ran past its timeout and was killed
  kCancelled,   // stopped because it was cancelled
  kWorkerLost,  // its worker vanished (or never answered: see error)
};
std::string_view AttemptStatusName(AttemptStatus s);

// What a worker reports when an attempt ends.
struct AttemptOutcome {
  std::optional<int> exit_code;  // set when the process exited
  std::optional<int> signal;     // set when a signal ended it
  bool timed_out = false;        // the worker killed it at its timeout
  bool cancelled = false;        // the worker killed it because of a cancel
  bool lost = false;             // the worker stopped it itself, its lease run out
  std::string error;             // e.g. a spawn failure: "cannot start \"x\": No such file or directory"
  std::string stdout_tail;
  std::string stderr_tail;
  uint64_t stdout_bytes = 0;  // everything written, before tailing
  uint64_t stderr_bytes = 0;
};

struct AttemptRecord {
  uint32_t attempt = 0;  // 1-based
  std::string worker;
  Time dispatched_at{};
  std::optional<Time> started_at;   // when the worker said it started
  std::optional<Time> finished_at;
  AttemptStatus status = AttemptStatus::kRunning;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string error;
  std::string stdout_tail;
  std::string stderr_tail;
};

struct StepResult {
  std::string id;
  StepState state = StepState::kPending;
  std::string error;    // why it failed or was cancelled; "" otherwise
  std::string waiting;  // for a pending step: what it waits for
  std::vector<AttemptRecord> attempts;
  // The last attempt's output tails were left out to keep a page within its
  // byte budget (they are empty here); LOGS reads them.
  bool output_omitted = false;
};

struct GroupError {
  std::string step;  // "" for a group-level error such as the deadline
  std::string error;
};

struct GroupResult {
  std::string id;
  uint64_t submission = 0;  // the coordinator's number for this acceptance of the id (docs/PROTOCOL.md)
  GroupState state = GroupState::kRunning;
  std::optional<GroupError> cause;  // the first error, when there is one
  std::vector<GroupError> errors;   // every failed step, in the order they failed
  std::vector<StepResult> steps;    // in submission order
  size_t steps_omitted = 0;         // steps of the group not in `steps` (see Scheduler::ResultPage)
  size_t errors_omitted = 0;        // errors left out of `errors` by the page's byte budget
  // Where the next page starts (a step index, for STATUS's cursor); nullopt
  // once `steps` reaches the group's last step.
  std::optional<uint64_t> next_cursor;
  size_t counts[kStepStateCount] = {};  // every step, by state, whatever was left out
  Time submitted_at{};
  std::optional<Time> finished_at;
};

// One line of a group listing; counts are kept as the group runs, so listing
// 10,000 groups does not walk their steps.
struct GroupSummary {
  std::string id;
  GroupState state = GroupState::kRunning;
  size_t total = 0;
  size_t counts[kStepStateCount] = {};
  Time submitted_at{};
  std::optional<Time> finished_at;
  uint64_t submission = 0;  // see GroupResult
  // Why its pending steps wait (one line per distinct reason, at most a
  // few), "" when none waits: what a progress display shows.
  std::string waiting;

  size_t count(StepState s) const { return counts[static_cast<int>(s)]; }
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_RESULT_H_
