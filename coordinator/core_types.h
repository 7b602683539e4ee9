// The vocabulary of the scheduling core: the events it is fed and the actions
// it returns. Both are plain values so that a daemon can carry them out, a
// test can compare them, and a later journal can record the events and
// replay them into an identical core.
#ifndef COHORT_COORDINATOR_CORE_TYPES_H_
#define COHORT_COORDINATOR_CORE_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/group_spec.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/time.h"

namespace cohort::coordinator {

// Names one attempt of one step: what dispatches carry and workers echo back.
// `submission` tells this acceptance of the group id from any other (the id
// may be submitted again once the group is forgotten, even across restarts);
// `attempt` is the fencing token: only the current attempt's reports count.
struct AttemptRef {
  std::string group;
  uint32_t step = 0;  // index in the group's steps, submission order
  uint32_t attempt = 0;
  uint64_t submission = 0;  // >= 1; 0 names nothing

  friend bool operator==(const AttemptRef&, const AttemptRef&) = default;
};

// ---- Events ---------------------------------------------------------------

struct SubmitGroup {
  common::GroupSpec spec;
  // Kept only in the journal (GroupAccepted): the spec as sent, which a
  // restarted core parses again.
  std::string spec_json;
  // Who sends it (a key name, or ""): the same client sending the same spec
  // under an id in use attaches to that group.
  std::string client;
};
struct WorkerJoined {
  std::string name;
  int64_t slots = 1;
  std::vector<std::string> agents;
  // What the worker says it still runs (after a reconnect). Attempts the core
  // placed on it that are missing here are treated as lost with the worker;
  // listed attempts that are no longer current are told to stop.
  std::vector<AttemptRef> running;
  // A repeated REGISTER on a connection the worker already registered on:
  // attempts sent to it since its first REGISTER are legitimately missing
  // from `running`, so none is declared lost (stale ones are still stopped).
  bool same_connection = false;
  // Who the worker is beyond its name: the process instance it gives (0 =
  // none) and, with CURVE, the User-Id of the key it connected with ("" without
  // CURVE). A join under a live worker's name from another connection is
  // refused (AlreadyExists) if the keys differ or the live worker gave an
  // instance this one does not repeat, so two processes sharing a name
  // cannot take each other's steps away in turn.
  uint64_t instance = 0;
  std::string user_id;
  // The worker's time between SIGTERM and SIGKILL (zero: it did not say).
  common::Duration kill_grace{};
  std::string version;  // its build, for `cohort workers`
  // It is leaving (SIGTERM): it finishes what it runs and takes nothing new.
  bool draining = false;
};
struct WorkerHeartbeat {
  std::string name;
  // What a HEARTBEAT says the worker holds: its running attempts and the
  // results it keeps until confirmed (nullopt: it says nothing of them).
  // ZeroMQ drops a RUN silently at the high-water mark, so an attempt
  // placed on the worker more than heartbeat x liveness ago that is missing
  // here never arrived: it is lost. Listed attempts that are not current
  // are told to stop.
  std::optional<std::vector<AttemptRef>> running;
  bool draining = false;  // as in WorkerJoined
};
struct WorkerLost {
  std::string name;
  std::string reason;
};
struct StepStarted {
  AttemptRef ref;
  std::string worker;
};
struct StepFinished {
  AttemptRef ref;
  std::string worker;
  common::AttemptOutcome outcome;
};
struct Tick {};
// The caller read nothing for `busy` (a long loop turn): workers may have
// taken it for gone and be registering again, so none may expire for that.
struct LoopStalled {
  common::Duration busy{};
};
struct CancelGroup {
  std::string group;
  std::string who;  // for the journal: the client that asked
};
struct CancelStep {
  std::string group;
  std::string step_id;
  std::string who;
};
// Whether new steps may be placed on a worker, as an operator sets it. It is
// kept by name, so a cordoned worker that restarts comes back cordoned.
enum class WorkerMode { kReady, kCordoned, kDraining };
struct SetWorkerMode {
  std::string worker;
  WorkerMode mode = WorkerMode::kReady;
  std::string who;  // for the log: the client that asked
};

using Event = std::variant<SubmitGroup, WorkerJoined, WorkerHeartbeat, WorkerLost, StepStarted,
                           StepFinished, Tick, LoopStalled, CancelGroup, CancelStep, SetWorkerMode>;

// ---- Actions --------------------------------------------------------------

// Send this attempt to this worker. The action holds its own copy of the
// step, so a list of actions stays valid whatever the core handles after it;
// the caller moves the copy into the message it sends, which it had to copy
// anyway.
struct Dispatch {
  AttemptRef ref;
  std::string worker;
  std::optional<common::Duration> timeout;
  common::StepSpec spec;
  std::string client;  // who submitted the group (a key name, or "")
};
// Publish "cancel every step of this group" to all workers.
struct BroadcastCancel {
  std::string group;
  uint64_t submission = 0;
};
// Tell one worker to stop one attempt (direct, in case it missed a broadcast,
// or because the attempt is stale).
struct CancelAttempt {
  AttemptRef ref;
  std::string worker;
};
struct GroupFinished {
  std::string group;
  common::GroupState state = common::GroupState::kRunning;
  uint64_t submission = 0;
};
// The core declared a worker lost on its own (no heartbeat in time, or no
// report of an attempt or a cancel within the grace); the daemon forgets its
// route, so the worker's next message gets REREGISTER. Not emitted for an
// explicit WorkerLost event.
struct WorkerExpired {
  std::string worker;
  std::string reason;
};

using Action = std::variant<Dispatch, BroadcastCancel, CancelAttempt, GroupFinished, WorkerExpired>;

// Why steps that could start do not: the first of these that holds.
enum class QueueCause { kMaxParallel, kNoEligibleWorker, kNoFreeSlot, kBehindOtherGroups, kBackoff };
inline constexpr int kQueueCauseCount = 5;
std::string_view QueueCauseName(QueueCause cause);

// What the core holds, counted: for the daemon's status line and metrics.
struct CoreCounts {
  size_t groups_running = 0;
  size_t groups_finished = 0;  // held for their retention (archived ones included)
  size_t steps[common::kStepStateCount] = {};  // by state, over the groups held in full
  size_t workers = 0;  // live
  size_t workers_unplaceable = 0;  // cordoned, draining or leaving
  int64_t slots = 0;   // of live workers
  int64_t slots_busy = 0;
  // Steps of running groups waiting to start, by cause. Each group's
  // waiting steps count under the cause of its first one.
  size_t queued[kQueueCauseCount] = {};
};

// What the core has seen since it started, for metrics: latencies in
// seconds and counts of decisions. Not restored from a store.
struct CoreObservations {
  CoreObservations();
  common::Histogram dispatch_to_start;  // RUN sent to STARTED heard
  common::Histogram run_time;           // started to ended, every attempt that ran
  common::Histogram cancel_latency;     // cancel asked to the attempt reported over
  // Attempts that failed and were retried, by how they failed.
  uint64_t retries_exit = 0, retries_timeout = 0, retries_worker_lost = 0;
  uint64_t groups_ended[4] = {};  // by common::GroupState
};

struct WorkerView {
  std::string name;
  int64_t slots = 0;
  int64_t running = 0;
  std::vector<std::string> agents;
  common::Time last_heartbeat{};
  std::string user_id;  // as joined: the CURVE User-Id (NAME|KEY), "" without CURVE
  std::string version;
  // "ready", "cordoned", "draining" (new steps go elsewhere, running ones
  // finish), "drained" (draining with nothing left running), "left" (said
  // goodbye) or "lost" (went silent).
  std::string state = "ready";
  common::Time since{};  // when it entered `state` (for "lost": when it was lost)
  std::string reason;     // why: who cordoned it, "the worker is stopping", or why it was lost
};

std::string_view WorkerModeName(WorkerMode mode);
// The inverse of WorkerModeName; false for any other text.
bool ParseWorkerMode(std::string_view name, WorkerMode* out);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_CORE_TYPES_H_
