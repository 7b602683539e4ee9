// Internal records of the Scheduler: one per group, step and worker, and the
// timer key. Not part of the core's interface; only scheduler*.cc use them.
#ifndef COHORT_COORDINATOR_SCHEDULER_STATE_H_
#define COHORT_COORDINATOR_SCHEDULER_STATE_H_

#include <compare>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common/group_spec.h"
#include "common/result.h"
#include "common/time.h"

namespace cohort::coordinator::internal {

enum class TimerKind : uint8_t {
  kGroupDeadline,
  kAttemptBackstop,  // a = group, b = step, c = attempt
  kBackoff,          // a = group, b = step
  kWorkerExpiry,     // a = worker
  kCancelResend,     // a = group
  kRetention,        // a = group
  kReattach,         // the restored attempts' reattach window ends
};

struct Timer {
  common::Time at{};
  TimerKind kind = TimerKind::kGroupDeadline;
  uint64_t a = 0;
  uint32_t b = 0;
  uint32_t c = 0;
  auto operator<=>(const Timer&) const = default;
};

struct StepRt {
  common::StepState state = common::StepState::kPending;
  bool holds_slot = false;        // counts against the group's max_parallel
  bool cancel_requested = false;  // a cancel was sent for the current attempt
  bool attempt_active = false;    // the last attempt is placed and not yet over
  uint64_t worker = 0;            // seq of the worker running the active attempt
  common::Time cancel_at{};       // when the pending cancel was first asked for
  std::optional<Timer> timer;     // backstop while running, backoff while retrying
  std::vector<common::AttemptRecord> attempts;
  std::string error;
  // A final step of a running group whose attempts' output tails the core
  // let go of to stay within max_output_bytes: the store has them.
  bool output_in_store = false;
};

struct Group {
  uint64_t seq = 0;
  uint64_t submission = 0;  // see AttemptRef
  common::GroupSpec spec;
  std::string client;  // who submitted it (a key name, or "")
  common::Time submitted_at{};
  std::optional<common::Time> finished_at;
  std::vector<StepRt> steps;
  std::unordered_map<std::string_view, uint32_t> index;  // step id -> position

  common::GroupState state = common::GroupState::kRunning;
  bool stopping = false;  // fail-fast or user cancel under way: nothing new starts
  common::GroupState stop_state = common::GroupState::kRunning;
  bool finished = false;
  // A finished group whose spec (but its id), steps and errors the core let
  // go of: the store has them, and Scheduler::Hydrate puts them back. Its
  // state, times and counts stay.
  bool archived = false;
  size_t archived_steps = 0;
  size_t output_bytes = 0;  // its attempts' output tails, while held in memory

  int64_t max_parallel = std::numeric_limits<int64_t>::max();
  int64_t in_progress = 0;  // steps holding a slot
  size_t counts[common::kStepStateCount] = {};

  // Ready to place, per agent label, in submission order. Entries whose step
  // left the state they were queued in are skipped when met.
  std::map<std::string, std::deque<uint32_t>, std::less<>> pending;
  std::map<std::string, std::deque<uint32_t>, std::less<>> retry_ready;
  size_t retry_ready_count = 0;

  std::set<uint32_t> active;    // steps with an attempt placed on a worker
  std::set<uint32_t> backoff;   // steps waiting out a backoff
  std::vector<common::GroupError> errors;

  bool in_ring = false;
  // The labels it is parked under in Scheduler::parked_, each once: empty
  // while not parked.
  std::vector<std::string> parked_under;
  std::optional<Timer> deadline_timer;
  std::optional<Timer> resend_timer;
  std::optional<Timer> retention_timer;

  size_t count(common::StepState s) const { return counts[static_cast<int>(s)]; }
  size_t total() const { return archived ? archived_steps : steps.size(); }
  size_t final_count() const {
    return count(common::StepState::kCompleted) + count(common::StepState::kFailed) +
           count(common::StepState::kCancelled);
  }
};

// Orders free workers: most free slots first, then the oldest.
struct FreeKey {
  int64_t neg_free = 0;
  uint64_t seq = 0;
  auto operator<=>(const FreeKey&) const = default;
};

struct AttemptKey {
  uint64_t group = 0;
  uint32_t step = 0;
  uint32_t attempt = 0;
  auto operator<=>(const AttemptKey&) const = default;
};

struct Worker {
  uint64_t seq = 0;
  std::string name;
  uint64_t instance = 0;  // as joined; see WorkerJoined
  std::string user_id;
  int64_t slots = 0;
  int64_t running = 0;  // attempts occupying a slot
  std::vector<std::string> agents;  // sorted, unique
  // How long a stop of one of its steps may take before its report is
  // overdue: the coordinator's backstop grace, or longer for a worker whose
  // kill grace plus its wait after SIGKILL is longer.
  common::Duration stop_grace{};
  common::Time last_heartbeat{};
  std::optional<Timer> expiry;
  std::set<AttemptKey> attempts;
  // Attempts it runs that are no longer current (it said so when it joined,
  // or in a heartbeat): they were told to stop and hold a slot until it
  // reports them over, or a heartbeat no longer lists them.
  std::set<std::tuple<uint64_t, uint32_t, uint32_t>> stale;  // submission, step, attempt
  // Stale attempts it has since reported over: it keeps each result, and
  // lists it, until a CONFIRM reaches it; no process is left to stop.
  // Forgotten as soon as a list leaves one out, and when it joins again.
  std::set<std::tuple<uint64_t, uint32_t, uint32_t>> reported;
  bool indexed = false;
  FreeKey key;  // its key in the free sets while indexed
  std::string version;
  common::Time joined_at{};  // this process's first join
  // Leaving of its own accord (SIGTERM), since `draining_since`.
  bool draining = false;
  common::Time draining_since{};
  // Offered new steps (Scheduler::Placeable), as of its last Replace.
  bool placeable = true;

  int64_t free() const { return slots > running ? slots - running : 0; }
};

}  // namespace cohort::coordinator::internal

#endif  // COHORT_COORDINATOR_SCHEDULER_STATE_H_
