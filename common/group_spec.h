// GroupSpec is what a user submits: a group of steps (shell commands) that
// succeed or fail together, with the group's concurrency limit, timeouts,
// deadline, retry policy and failure mode. It is plain data with no behaviour
// beyond validation; the scheduling core (coordinator/scheduler.h) gives it
// its meaning. ValidateGroupSpec() refuses anything the core could not run
// and names the field and the step in its message, so a user can fix a
// thousand-step file from the error alone.
#ifndef COHORT_COMMON_GROUP_SPEC_H_
#define COHORT_COMMON_GROUP_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cohort::common {

// The ways an attempt can fail that a retry policy may choose to retry.
enum class FailureKind : uint8_t {
  kExit = 1 << 0,        // the command exited non-zero, died of a signal, or could not start
  kTimeout = 1 << 1,     // the attempt ran past its timeout and was killed
  kWorkerLost = 1 << 2,  // the worker running it vanished
};
constexpr uint8_t kAllFailureKinds = 0x7;

std::string_view FailureKindName(FailureKind kind);
// Parses "exit" / "timeout" / "worker_lost"; false for anything else.
bool ParseFailureKind(std::string_view name, FailureKind* out);

struct RetryPolicy {
  int64_t max_attempts = 1;        // attempts in all, >= 1
  double backoff_s = 1.0;          // delay before the 2nd attempt
  double backoff_multiplier = 2.0; // each later delay is this many times the previous
  double max_backoff_s = 60.0;     // no delay is longer
  double jitter = 0.0;             // fraction in [0, 1]: delay * (1 +/- jitter)
  uint8_t retry_on = kAllFailureKinds;  // bit set of FailureKind
  bool retry_on_given = false;     // the user named retry_on explicitly

  bool RetriesOn(FailureKind kind) const { return (retry_on & static_cast<uint8_t>(kind)) != 0; }
  bool operator==(const RetryPolicy&) const = default;
};

struct StepSpec {
  std::string id;                    // unique within the group, non-empty
  std::vector<std::string> argv;     // run directly when non-empty ...
  std::string shell;                 // ... otherwise run with /bin/sh -c
  std::string agent;                 // only workers offering this label run it ("" = any)
  std::vector<std::pair<std::string, std::string>> env;  // added to the worker's base environment
  std::string cwd;                   // "" = the worker's default
  std::optional<double> timeout_s;   // overrides the group's timeout_s
  std::optional<RetryPolicy> retry;  // overrides the group's retry
  bool operator==(const StepSpec&) const = default;
};

enum class OnFailure : uint8_t {
  kCancel,    // asyncio.TaskGroup: the first final failure cancels the rest
  kContinue,  // asyncio.gather(return_exceptions=True): collect failures, cancel nothing
};
std::string_view OnFailureName(OnFailure mode);

struct GroupSpec {
  std::string id;                        // "" = the coordinator assigns one
  std::vector<StepSpec> steps;           // in submission order
  std::optional<int64_t> max_parallel;   // nullopt = unlimited; else >= 1
  std::optional<double> timeout_s;       // default per-attempt timeout; nullopt = none
  std::optional<double> deadline_s;      // the whole group, from submission; nullopt = none
  OnFailure on_failure = OnFailure::kCancel;
  RetryPolicy retry;                     // default for steps that give none
  bool operator==(const GroupSpec&) const = default;
};

// Limits that keep one spec from costing the coordinator unbounded memory.
constexpr size_t kMaxIdBytes = 256;
constexpr size_t kMaxStepsPerGroup = 1'000'000;
// Every attempt's record is kept with its step until the group is forgotten.
constexpr int64_t kMaxAttempts = 1000;

// OK, or InvalidArgument naming the field and the step, e.g.
//   steps[2] (id "lint"): timeout_s must be a positive number of seconds, got -1
Status ValidateGroupSpec(const GroupSpec& spec);
Status ValidateRetryPolicy(const RetryPolicy& policy, std::string_view where);

// The policy and timeout in force for a step: its own, else the group's.
const RetryPolicy& EffectiveRetry(const GroupSpec& group, const StepSpec& step);
std::optional<double> EffectiveTimeout(const GroupSpec& group, const StepSpec& step);

// Reads a group from its JSON text (the format in docs/PROTOCOL.md). Any
// error, syntax or type or value, comes back as InvalidArgument naming the
// field, never as an exception. The result is also validated.
// Reading stops at step max_steps + 1 (so a group over a limit costs no more
// than the limit to refuse); `limit_name` (e.g. "--max-steps-per-group") is
// named in that message when given; over a max_steps below
// kMaxStepsPerGroup the Status is FailedPrecondition (the caller's limit).
Status ParseGroupSpecJson(std::string_view text, GroupSpec* out, size_t max_steps = kMaxStepsPerGroup,
                          std::string_view limit_name = {});

}  // namespace cohort::common

#endif  // COHORT_COMMON_GROUP_SPEC_H_
