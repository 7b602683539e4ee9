// Scheduler is the coordinator's group membership table: the pure core that
// decides which step runs where and when. It owns every submitted group (spec
// and per-step runtime state), the table of live workers with their free
// slots, and one ordered set of timers (attempt backstops, retry backoffs,
// group deadlines, worker expiries, cancel resends, result retention).
//
// It does no I/O and reads no clock: each call takes an event plus `now` and
// appends the actions the caller must carry out (dispatch, cancel, report),
// the way etcd's raft leaves all I/O to its caller. The same events with the
// same `now` values and seed give the same actions, so the event stream can
// be journaled and replayed. NextDeadline() tells the caller's poll loop how
// long it may sleep before it must call Tick().
//
// Rules it enforces (docs/ARCHITECTURE.md explains each):
//  - at most max_parallel steps of a group in progress; a step holds its slot
//    from first start, through retries and backoff, until final;
//  - steps start in submission order; groups share workers round robin;
//  - a worker never gets more attempts than its slots; agent labels must match;
//  - attempt timeouts (with a backstop), group deadlines, retries with
//    exponential backoff and seeded jitter;
//  - on_failure=cancel: the first final failure cancels every other step, and
//    the group's result is produced only once every running attempt is
//    confirmed stopped or its worker is lost;
//  - fencing: reports for an attempt that is not current are ignored;
//  - reconciliation: what a worker says it holds (when it joins, and in its
//    heartbeats) against what was placed on it: an attempt it does not hold
//    is lost (in a heartbeat, only past a grace for the RUN to arrive), one
//    it holds that is not current is told to stop.
//
// Each event costs O(log n) in steps, groups and workers, amortized; cancelling
// a whole group touches each of its unfinished steps once.
//
// The code is split by what it handles: scheduler.cc groups, steps and
// attempts; scheduler_workers.cc workers; scheduler_timers.cc timers;
// scheduler_placement.cc placement; scheduler_result.cc the queries;
// scheduler_restore.cc the restore from a store and the reattach.
//
// With SchedulerOptions::journal, every change that must survive a restart
// is also written as a Record (coordinator/store.h) to a journal the caller
// takes after each batch of events and commits before anything that
// followed those events leaves the process.
//
// Thread contract: not thread-safe; one event loop owns it.
#ifndef COHORT_COORDINATOR_SCHEDULER_H_
#define COHORT_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "coordinator/core_types.h"
#include "coordinator/scheduler_state.h"
#include "coordinator/store.h"

namespace cohort::coordinator {

struct SchedulerOptions {
  common::Duration heartbeat_interval = std::chrono::seconds(1);
  int liveness = 3;  // missed heartbeats before a worker is lost
  // How long past an attempt's timeout (or a cancel) the core waits for the
  // worker's report before it declares that worker lost. Must exceed the
  // workers' kill grace plus their wait after SIGKILL (5 s + 10 s by
  // default), or a worker still killing a step would be given up on.
  common::Duration backstop_grace = std::chrono::seconds(30);
  // How often a cancel is sent again to a worker that has not confirmed it.
  common::Duration cancel_resend = std::chrono::seconds(1);
  // How long a finished group stays queryable.
  common::Duration retention = std::chrono::hours(1);
  // What the core holds at most, running and retained groups together, so a
  // flood of submissions costs bounded memory (~0.8 KiB per step). A submit
  // that would pass either limit first forgets the oldest finished groups
  // before their retention is over; if running groups alone leave no room it
  // is refused with Unavailable.
  size_t max_groups = 100000;
  size_t max_steps = 1000000;
  // Bytes of the steps' output tails held in memory, running and finished
  // groups together. Past it, finished groups leave memory as for max_steps
  // (with a journal their output stays in the store), and while running
  // groups alone hold more, a submit is refused with Unavailable.
  size_t max_output_bytes = size_t{2} << 30;
  // Attempts in all for a step whose attempts keep being lost with workers,
  // independent of its max_attempts (infrastructure failures retry, as in Ray).
  int worker_lost_attempts = 3;
  uint64_t seed = 1;  // for retry jitter; fixed seed, same decisions
  // Assigned group ids are `id_prefix` + a number. The daemon makes it
  // different for every coordinator run, so a group submitted after a
  // restart never takes an id that workers still associate with another.
  std::string id_prefix = "g";
  // Maps the core's Time to the wall-clock times of journal records and
  // back when restoring.
  common::WallClock wall{common::Time{}, 0};
  // Whether the core writes a journal of Records (coordinator/store.h) for
  // its caller to commit; off when nothing is stored, so nothing is built.
  bool journal = false;
  // The workers' lease (WelcomeMsg::lease_ms): a worker stops its steps
  // itself once this long has passed since the latest of its messages the
  // coordinator acknowledged. So a lost worker's steps run again elsewhere
  // only this long after its last message (unless it said BYE, or came back
  // without them), and after Restore the attempts the store had as running
  // wait this long for their worker to claim them. Both make sure a step
  // never runs twice at once; the cost is this much delay after a worker
  // dies for good.
  common::Duration worker_lease = std::chrono::seconds(60);
  // How long a lost worker stays in LostWorkers(), so an operator sees what
  // went away and when; at most kMaxLostWorkers are kept.
  common::Duration lost_listed_for = std::chrono::hours(1);
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Feeds one event. Actions are appended to `out`. A non-OK status means the
  // event was refused (an invalid spec, an unknown group or worker) and
  // changed nothing; its message is meant for the peer that sent it.
  common::Status Handle(Event event, common::Time now, std::vector<Action>* out);

  // Rebuilds the groups a store kept (scheduler_restore.cc). Only into a
  // new core, before any other event. Timers come back at their stored
  // wall-clock times, so one that passed while the coordinator was down
  // fires at the next Tick; attempts that were running wait up to the
  // reattach window for their worker to claim them. Submissions continue
  // above state.max_submission. Corruption naming the group when a stored
  // group cannot be rebuilt (its spec no longer parses), and nothing is
  // restored then.
  common::Status Restore(const LoadedState& state, common::Time now, std::vector<Action>* out);

  // A finished group restored from the store (or, with a journal, let go of
  // to make room) keeps only its summary here: Summary() and Groups() show
  // it, Result() does not. The caller reads it from the store and hands it
  // to Hydrate() before it asks for the result, submits under its id, or
  // cancels it. ArchivedSubmission() says which submission to read, if the
  // group `id` is archived. Everything the journal holds must be committed
  // before the read, or the group read back would miss its end.
  std::optional<uint64_t> ArchivedSubmission(std::string_view id) const;
  // Corruption when `stored` is not the archived group's record or cannot be
  // rebuilt; Unavailable when running groups leave no room for its steps.
  common::Status Hydrate(const LoadedGroup& stored, common::Time now);

  // Appends the journal written since the last call to *out and clears it.
  // The caller commits these before it lets any action or reply that
  // followed them leave the process.
  void TakeJournal(std::vector<Record>* out);
  bool journal_empty() const { return journal_.empty(); }

  // A spec whose id names a group that the same client submitted with the
  // same spec (a client sending again after losing the answer) attaches to
  // that group: OK, nothing new, *attached set. Another spec under an id in
  // use is AlreadyExists.
  common::Status Submit(SubmitGroup e, common::Time now, std::vector<Action>* out,
                        std::string* assigned_id = nullptr, bool* attached = nullptr);
  common::Status Submit(common::GroupSpec spec, common::Time now, std::vector<Action>* out,
                        std::string* assigned_id = nullptr) {
    return Submit(SubmitGroup{std::move(spec), "", ""}, now, out, assigned_id);
  }
  // AlreadyExists when a live worker holds the name and the join comes from
  // another connection with another instance or key (see WorkerJoined).
  common::Status Join(const WorkerJoined& w, common::Time now, std::vector<Action>* out);
  // Any message from the worker: records the time, nothing more (the hot path).
  common::Status Heartbeat(std::string_view worker, common::Time now);
  // A HEARTBEAT: as above, and with a list, reconciles it (see WorkerHeartbeat).
  // The caller passes a list only while the messages the core asked it to send
  // leave within a heartbeat: the grace counts from the dispatch.
  common::Status Heartbeat(const WorkerHeartbeat& h, common::Time now, std::vector<Action>* out);
  // The caller read nothing for `busy`: workers that stopped hearing from it
  // are registering again, at intervals that doubled meanwhile (up to about
  // the stall's length), so each gets that long again plus a full expiry
  // window from `now`.
  void Stalled(common::Duration busy, common::Time now);
  // Cordons, drains or readies a worker, live or recently lost, by name
  // (see WorkerMode); NotFound for a name never seen. A worker that is not
  // ready keeps its running steps and is offered no new one.
  common::Status SetMode(const SetWorkerMode& e, common::Time now, std::vector<Action>* out);
  // No worker may expire before `until`; later expiries are kept. Stalled()
  // is the event's rule; this is the mechanism under it.
  void GraceWorkers(common::Time until);
  // `steps_stopped`: the worker said BYE after its steps were dead; its
  // attempts run again at once. Otherwise they wait for its lease.
  common::Status Lose(std::string_view worker, std::string_view reason, common::Time now,
                      std::vector<Action>* out, bool steps_stopped = false);
  common::Status Started(const StepStarted& e, common::Time now, std::vector<Action>* out);
  common::Status Finished(const StepFinished& e, common::Time now, std::vector<Action>* out);
  // Fires the timers that are due. `workers_unread`: the caller has not read
  // its worker socket to the end, so a worker's message may be waiting. The
  // timers that judge a worker by its silence (expiry, attempt backstop,
  // reattach window) then wait for the read, but at most one expiry window
  // past their time; every other timer fires on time whatever the load.
  void Tick(common::Time now, std::vector<Action>* out, bool workers_unread = false);
  // `who` asked (a client's key name, or ""), for the journal.
  common::Status CancelGroupById(std::string_view group, common::Time now, std::vector<Action>* out,
                                 std::string_view who = "");
  common::Status CancelStepById(std::string_view group, std::string_view step_id, common::Time now,
                                std::vector<Action>* out, std::string_view who = "");

  // When Tick() must next be called; nullopt when nothing is timed.
  std::optional<common::Time> NextDeadline() const;

  // ---- Queries (no side effects) ----
  // The whole result with every attempt's output, for tests and tools;
  // replies use ResultPage. Nothing for an archived group: see Hydrate().
  std::optional<common::GroupResult> Result(std::string_view group) const;
  // One page of a group's result, for a reply that must stay within a
  // message: its steps from index `from` in submission order, at most
  // `max_steps` of them and `max_bytes` of output and error text (counted
  // with a fixed overhead per step and per attempt, see PageCost), and the
  // group's errors within `max_bytes` too. A page holds at least one step
  // while any is left; a step that alone passes the budget comes without
  // its output tails (output_omitted). next_cursor says where the next page
  // starts. Nothing for an archived group: see Hydrate().
  std::optional<common::GroupResult> ResultPage(std::string_view group, uint64_t from, size_t max_steps,
                                                size_t max_bytes) const;
  // The kept output tail of one attempt (0: the last) of a step: stdout, or
  // stderr with `stderr`. NotFound naming what is missing.
  // When the core let go of that output (a running group's, past
  // max_output_bytes), *in_store names the attempt and *out is empty: the
  // caller reads it with Store::LoadOutput.
  common::Status Output(std::string_view group, std::string_view step_id, uint32_t attempt, bool stderr,
                        std::string* out, std::optional<AttemptRef>* in_store) const;
  std::optional<common::GroupSummary> Summary(std::string_view group) const;
  std::vector<common::GroupSummary> Groups() const;
  // Who submitted `group` (a key name, or ""); null if no such group is
  // known, archived ones included.
  const std::string* OwnerOf(std::string_view group) const;
  // The live workers, with their state (ready, cordoned, draining, drained).
  std::vector<WorkerView> Workers() const;
  // Workers lost (or that left: said goodbye) within lost_listed_for before
  // `now`, newest first.
  std::vector<WorkerView> LostWorkers(common::Time now) const;
  // Linear in the groups and workers held (scheduler_metrics.cc).
  CoreCounts Counts() const;
  const CoreObservations& observations() const { return observations_; }
  static constexpr size_t kMaxLostWorkers = 1024;
  size_t group_count() const { return groups_.size(); }
  // The mapping records are written with: whoever shows the core's times
  // uses it too, so a time shown before a restart is shown the same after.
  const common::WallClock& wall() const { return options_.wall; }
  // Restored attempts still waiting for their worker to claim them.
  size_t unclaimed_attempts() const { return unclaimed_count_; }
  size_t step_count() const { return steps_held_; }
  size_t output_bytes() const { return output_held_; }
  uint64_t stale_reports() const { return stale_reports_; }
  // Labels the placement indexes hold an entry for (waiting groups, free
  // and live workers), counted once per index: what a label that nobody
  // needs any more must not keep.
  size_t label_entries() const { return parked_.size() + free_by_agent_.size() + agent_workers_.size(); }

 private:
  using Group = internal::Group;
  using StepRt = internal::StepRt;
  using Worker = internal::Worker;
  using Timer = internal::Timer;
  enum class Placement { kDispatched, kGroupFull, kNoWorker, kNothing };

  Group* FindGroup(std::string_view id) const;
  Worker* FindWorker(std::string_view name) const;

  // Timers (scheduler_timers.cc).
  void AddTimer(const Timer& t, std::optional<Timer>* slot);
  common::Duration ExpiryWindow() const { return options_.heartbeat_interval * options_.liveness; }
  // A worker with this kill grace stops a step within the result; see
  // internal::Worker::stop_grace.
  common::Duration StopGraceFor(common::Duration kill_grace) const;
  // The stop grace of the worker `seq`, or the backstop grace if it is gone.
  common::Duration StopGraceOf(uint64_t worker_seq) const;
  void ClearTimer(std::optional<Timer>* slot);
  void FireTimer(const Timer& t, common::Time now, std::vector<Action>* out);
  void FireWorkerExpiry(const Timer& t, common::Time now, std::vector<Action>* out);
  // Sends again the cancels of `g` not yet confirmed; past the grace, their
  // workers are declared lost.
  void ResendCancels(Group* g, common::Time now, std::vector<Action>* out);
  // The core's own decision that a worker is gone (`name` is a copy: Lose
  // destroys the worker record).
  void ExpireWorker(std::string name, const std::string& reason, common::Time now, std::vector<Action>* out);

  // Journal (scheduler.cc). Records are built only when journaling: the
  // arguments are forwarded, not copied, when it is off.
  template <typename R, typename... Args>
  void Journal(Args&&... args) {
    if (options_.journal) journal_.emplace_back(std::in_place_type<R>, std::forward<Args>(args)...);
  }
  int64_t UnixMs(common::Time t) const { return options_.wall.ToUnixMs(t); }
  void JournalAttemptEnd(const Group& g, uint32_t step, const common::AttemptOutcome* outcome);
  void AddError(Group* g, std::string step_id, std::string error);

  // Reconciling what a worker says it holds (scheduler_workers.cc). Listed
  // attempts current on `w` go into *held; any other is told to stop and
  // holds a slot until reported over, except, with `results_taken`, one whose
  // result the core already took from `w` (the worker keeps it until
  // CONFIRM).
  void SortListed(Worker* w, const std::vector<AttemptRef>& listed, bool results_taken,
                  std::set<internal::AttemptKey>* held, std::vector<Action>* out);
  // Whether the core already has the result of `ref` (step `st`, if the
  // group is known) from `w`: what `w` lists of it is that result.
  static bool ResultTaken(const Worker& w, const StepRt* st, const AttemptRef& ref);
  // Loses the attempts of `w` not in `held`; with `dispatched_before`, only
  // those dispatched by then. Returns whether any was lost.
  bool LoseUnheld(Worker* w, const std::set<internal::AttemptKey>& held, std::optional<common::Time> dispatched_before,
                  const std::string& why, common::Time now, std::vector<Action>* out);

  // Restore (scheduler_restore.cc).
  // `seq`: the group takes the place of the archived one with that seq.
  common::Status RestoreGroup(const LoadedGroup& lg, common::GroupSpec spec, common::Time now,
                              std::optional<uint64_t> seq = std::nullopt);
  void RestoreArchived(const FinishedSummary& f);
  // Lets go of a finished group's details (see ArchivedSubmission).
  void Archive(Group* g);
  void RestoreStep(Group* g, const LoadedStep& ls, bool cancel_asked, common::Time now);
  // A worker that joined claims the restored attempts it lists; the rest
  // of those recorded on its name are lost.
  void ClaimRestored(Worker* w, const std::vector<AttemptRef>& running, common::Time now,
                     std::vector<Action>* out);
  void LoseUnclaimed(common::Time now, std::vector<Action>* out);
  void ArmBackstop(Group* g, uint32_t step, common::Time now);

  // Step bookkeeping.
  void SetState(Group* g, uint32_t step, common::StepState s);
  void ReleaseSlot(Group* g, uint32_t step);
  void CloseAttempt(Group* g, uint32_t step, common::AttemptStatus status, common::Time now);
  // A lost worker's attempt is retried no earlier than `retry_not_before`.
  void Decide(Group* g, uint32_t step, common::AttemptStatus status, const std::string& error,
              common::Time now, std::vector<Action>* out, common::Time retry_not_before = {});
  // Ends a step's backoff now: its retry is ready to place.
  void RetryNow(Group* g, uint32_t step);
  void FailStep(Group* g, uint32_t step, std::string error, common::Time now, std::vector<Action>* out);
  void CancelPendingOrBackoff(Group* g, uint32_t step, std::string why);
  void RequestAttemptCancel(Group* g, uint32_t step, common::Time now, std::vector<Action>* out);
  void StopGroup(Group* g, common::GroupState final_state, common::Time now, std::vector<Action>* out);
  // What a step stopped with its group is told: the cancel, or the first error.
  static std::string StopReason(const Group& g);
  void MaybeFinish(Group* g, common::Time now, std::vector<Action>* out);
  void Forget(Group* g);
  // Frees room until `steps` more steps and one more group fit within the
  // limits: archives finished groups (ArchiveForRoom), then forgets them,
  // oldest first; false if running groups leave no room.
  bool MakeRoom(size_t steps);
  // Counts `bytes` more output held by the group, and makes finished groups
  // leave memory while max_output_bytes is passed.
  void HoldOutput(Group* g, size_t bytes);
  // With a journal, lets go of the output of running groups' final steps
  // (the store has it) until a quarter of max_output_bytes is free.
  void EvictRunningOutput();
  // With a journal, archives finished groups, oldest first, until `steps`
  // more steps fit; whether they do.
  bool ArchiveForRoom(size_t steps);
  void LoseAttempt(Group* g, uint32_t step, const std::string& why, common::Time now,
                   std::vector<Action>* out, common::Time retry_not_before = {});
  // A worker that went silent is back (scheduler_workers.cc): its fenced
  // steps run again now if it is a new process, or does not list them.
  void ReleaseFenced(const std::string& name, uint64_t instance, const std::vector<AttemptRef>& running);
  // The worker reported the lost attempt `ref` over: it is dead, so the
  // step need not wait out the lease. True when the step was released.
  bool ReleaseFencedAttempt(std::string_view worker, const AttemptRef& ref);
  common::Duration BackoffDelay(const common::RetryPolicy& p, uint32_t attempts_made);

  // Placement (scheduler_placement.cc).
  void Pump(common::Time now, std::vector<Action>* out);
  Placement PlaceOne(Group* g, common::Time now, std::vector<Action>* out);
  void DispatchTo(Group* g, uint32_t step, Worker* w, common::Time now, std::vector<Action>* out);
  void Enqueue(Group* g);
  bool HasReady(const Group* g) const;
  Worker* FreeWorkerFor(const std::string& agent) const;
  void IndexWorker(Worker* w);
  void UnindexWorker(Worker* w);
  void AdjustRunning(Worker* w, int64_t delta);
  void Park(Group* g);
  // Takes the group out of every label it is parked under.
  void Unpark(Group* g);
  void WakeFor(Worker* w);
  // A live worker offering `agent` came or went.
  void CountAgentWorker(const std::string& agent, int delta);
  // Worker states (scheduler_worker_states.cc). Whether new steps may go to
  // `w`: ready, as an operator set it, and not leaving of its own accord.
  bool Placeable(const Worker& w) const;
  // Brings w->placeable (and the count of unplaceable workers) up to date;
  // only while `w` is out of the free index. True if it changed.
  bool SetPlaceable(Worker* w);
  // After a change of either: takes `w` out of the free index or puts it
  // back, and places what waited for it.
  void Replace(Worker* w, common::Time now, std::vector<Action>* out);
  WorkerView ViewOf(const Worker& w) const;
  // Keeps `gone` in the lost list, evicting what is old: "left" when it said
  // goodbye (`left`), "lost" otherwise.
  void RememberLost(const Worker& gone, std::string reason, bool left, common::Time now);
  std::string WaitingReason(const Group& g, uint32_t step) const;
  // Why a step of `g` needing `agent` ("" for any worker) waits now.
  QueueCause CauseOf(const Group& g, const std::string& agent) const;

  SchedulerOptions options_;
  std::mt19937_64 rng_;
  uint64_t next_group_seq_ = 1;
  uint64_t next_worker_seq_ = 1;
  uint64_t stale_reports_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Group>> groups_;
  std::unordered_map<uint64_t, Group*> groups_by_seq_;
  std::map<std::string, std::unique_ptr<Worker>, std::less<>> workers_;
  std::unordered_map<uint64_t, Worker*> workers_by_seq_;

  // Workers with a free slot, most free first then oldest: for any step, and
  // per agent label for labelled steps.
  std::set<internal::FreeKey> free_any_;
  std::unordered_map<std::string, std::set<internal::FreeKey>> free_by_agent_;
  std::unordered_map<std::string, int> agent_workers_;  // live workers offering a label
  int64_t total_free_ = 0;

  // Groups with a step ready to place, served round robin; groups whose ready
  // steps all wait for a busy (or absent) labelled worker are parked under
  // each label they wait for, and woken only by a worker offering it.
  // A label's entry lives only while a group waits for it or a worker
  // offers it: labels come and go (a commit hash per build) and must not
  // pile up.
  std::deque<uint64_t> ring_;
  std::unordered_map<std::string, std::set<uint64_t>> parked_;  // oldest group first

  std::set<Timer> timers_;

  std::vector<Record> journal_;
  common::Time event_time_{};      // the `now` of the event being handled, for records
  uint64_t next_submission_ = 1;
  // Restored attempts that were running, by the worker they ran on, until
  // it claims them or the reattach window ends.
  std::map<std::string, std::set<internal::AttemptKey>, std::less<>> unclaimed_;
  size_t unclaimed_count_ = 0;
  std::optional<Timer> reattach_timer_;
  // Workers lost in silence whose attempts wait out the lease: the retry
  // timers of those attempts, by worker name, until the lease ends.
  struct Fenced {
    uint64_t instance = 0;
    common::Time until{};
    std::vector<Timer> retries;
  };
  std::map<std::string, Fenced, std::less<>> fenced_;
  // Operator modes other than ready, by worker name, whether or not the
  // worker is live now; journaled (WorkerModeSet), so a restart keeps them.
  struct ModeEntry {
    WorkerMode mode = WorkerMode::kReady;
    common::Time since{};
    std::string who;
  };
  std::map<std::string, ModeEntry, std::less<>> modes_;
  size_t unplaceable_ = 0;  // live workers not offered new steps
  std::map<std::string, WorkerView, std::less<>> lost_;
  CoreObservations observations_;

  size_t steps_held_ = 0;              // steps of every group held, running or retained
  size_t output_held_ = 0;             // their output tails in memory
  bool workers_unread_ = false;        // during Tick: see Tick()
  // EvictRunningOutput scans again only once output_held_ reaches this: a
  // scan that freed too little (the output is in retrying steps) is not
  // repeated on every result.
  size_t next_eviction_at_ = 0;
  std::deque<uint64_t> finished_seqs_;  // finished groups, oldest first (some may be forgotten)
  // Finished groups whose details are held, oldest first (some may be
  // forgotten or archived since): what MakeRoom archives first.
  std::deque<uint64_t> detailed_seqs_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SCHEDULER_H_
