// WorkerCore is the worker daemon's decisions without its I/O: the worker's
// side of the protocol with the coordinator. It owns the registration state
// and its backoff, the coordinator's liveness (the Paranoid Pirate pattern of
// the ZeroMQ guide: any message counts as a heartbeat), the attempts the
// worker holds by runner key, the results the coordinator has not yet
// confirmed and their resends, and the memory of cancelled submissions.
// Attempts are named by (submission, step, attempt): a group id can be
// submitted again, a submission number cannot.
//
// It has no sockets, reads no clock, starts no process and writes no log:
// each call takes an event plus `now` and appends the actions the caller must
// carry out, in order (send a message, subscribe to the cancel endpoint,
// start or cancel a step, log a notice), the way coordinator::Scheduler does
// for the coordinator. What only I/O can tell (whether a step passed the
// worker's policy and started) comes back as an event. The caller's poll
// timeout is NextDeadline() - now, then Tick().
//
// The caller must carry out a StartStep and report its outcome
// (StepStarted or StepNotStarted) before it hands the core the next event:
// a RUN right after it counts the slot as taken either way.
//
// Thread contract: not thread-safe; one event loop owns it.
#ifndef COHORT_WORKER_WORKER_CORE_H_
#define COHORT_WORKER_WORKER_CORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/messages.h"
#include "common/time.h"
#include "worker/run_types.h"

namespace cohort::worker {

struct WorkerCoreOptions {
  std::string coordinator;  // the endpoint dialled: a wildcard cancel endpoint is rewritten to its host
  // Every coordinator's worker endpoint, when several share a database: the
  // worker dials the first, moves to the leader a standby names, and to the
  // next in the list when the one it dials stays silent. Empty: just
  // `coordinator`.
  std::vector<std::string> coordinators;
  std::string name;         // this worker's, never empty
  int64_t slots = 1;        // >= 1
  std::vector<std::string> agents;  // placement labels offered
  std::string version;
  uint64_t instance = 1;  // random per process, see RegisterMsg::instance
  // This life's token in the worker's state directory (life_record.h): every
  // step carries it as kLifeEnv. "" sets no such variable.
  std::string life;
  int heartbeat_ms = 1000;  // until a WELCOME says otherwise
  int liveness = 3;
  // While unregistered, REGISTER goes out every heartbeat, then less and
  // less often, up to this.
  common::Duration max_reconnect_backoff = std::chrono::seconds(10);
  common::Duration kill_grace = std::chrono::seconds(5);
  // A result is kept until a CONFIRM names its attempt, so that neither a
  // reconnect nor a coordinator that failed to record it loses it. At most
  // max_unconfirmed results are kept, holding at most max_unconfirmed_bytes
  // of output tails and error text; past either bound the oldest is dropped,
  // with a warning naming its attempt, and is lost unless the coordinator
  // recorded it. The newest is always kept. The REGISTER running list holds
  // the running attempts and every kept result, so max_unconfirmed is cut to
  // kMaxArgs - slots.
  size_t max_unconfirmed = 10000;
  size_t max_unconfirmed_bytes = size_t{64} << 20;
  // With `spill`, results past max_unconfirmed_bytes are not dropped: the
  // oldest held in memory go to the worker's own disk (SpillResult), up to
  // max_spilled_bytes there, and only past that is the oldest dropped. The
  // count bound holds either way.
  bool spill = false;
  size_t max_spilled_bytes = size_t{1} << 30;
  // Maps `now` to the Unix milliseconds of a FINISHED that reports a step
  // that never ran.
  common::WallClock wall{common::Time{}, 0};
};

// ---- Events that are not messages -------------------------------------------

enum class StartFailure {
  kRefusedByPolicy,  // the worker's StepPolicy refused it; nothing ran
  kStartFailed,      // the runner could not start it (out of fds or processes)
};

// ---- Actions ----------------------------------------------------------------

// Send this to the coordinator on the worker's DEALER. Shared with the
// core's own copy of an unconfirmed result: resending every kept result
// after an outage copies none of their output tails.
struct SendToCoordinator {
  explicit SendToCoordinator(common::Message m) : msg(std::make_shared<const common::Message>(std::move(m))) {}
  explicit SendToCoordinator(std::shared_ptr<const common::Message> m) : msg(std::move(m)) {}
  std::shared_ptr<const common::Message> msg;  // never null
};
// (Re)create the SUB for CANCEL_GROUP broadcasts, connected to `endpoint`.
struct Subscribe {
  std::string endpoint;
};
// Check `request` against the worker's policy, then start it; report which
// with StepStarted or StepNotStarted.
struct StartStep {
  RunRequest request;
  // The RUN's client (its key name; "" without CURVE), whose user the loop
  // runs the step as when --client-users maps it.
  std::string client;
};
// SIGTERM the step started under this key, SIGKILL after the kill grace.
struct CancelStep {
  uint64_t key = 0;
};
// Shutting down: run the runner until every step has stopped or `until`,
// then tell the core which with StepsAwaited.
struct AwaitSteps {
  common::Time until{};
};
// Keep the kept result numbered `seq` on disk instead of in memory; on
// failure, report SpillFailed (the result is then lost).
struct SpillResult {
  uint64_t seq = 0;
  std::shared_ptr<const common::Message> msg;  // a FinishedMsg, never null
};
// Send the result kept on disk under `seq`; if it cannot be read, report
// SpillFailed.
struct SendSpilled {
  uint64_t seq = 0;
};
// The result kept on disk under `seq` is confirmed or dropped: delete it.
struct DeleteSpilled {
  uint64_t seq = 0;
};
// Close the DEALER and dial endpoint() instead (another coordinator), then
// call Connect.
struct Dial {};
// One `key=value` of a Notice. An integer value is marked `number`, so that
// a JSON log writes it as a number, as it does the daemons' own numbers.
struct NoticeField {
  NoticeField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  NoticeField(std::string k, const char* v) : key(std::move(k)), value(v) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
  NoticeField(std::string k, T v) : key(std::move(k)), value(std::to_string(v)), number(true) {}
  bool operator==(const NoticeField&) const = default;

  std::string key;
  std::string value;
  bool number = false;
};

// A line for the log: `level=... event=EVENT k=v ...`.
struct Notice {
  enum class Level { kDebug, kInfo, kWarn };
  Level level = Level::kInfo;
  std::string event;
  std::vector<NoticeField> fields;
};

using Action = std::variant<SendToCoordinator, Subscribe, StartStep, CancelStep, AwaitSteps, SpillResult,
                            SendSpilled, DeleteSpilled, Dial, Notice>;

// "tcp://0.0.0.0:5702" advertised by a coordinator bound to a wildcard is
// reachable at the host used to reach the coordinator itself; any other
// endpoint is returned as is.
std::string ReachableEndpoint(const std::string& advertised, const std::string& coordinator);

class WorkerCore {
 public:
  explicit WorkerCore(WorkerCoreOptions options);

  // The coordinator endpoint to dial now.
  const std::string& endpoint() const { return current_; }
  uint64_t epoch() const { return epoch_; }

  // The loop has dialled the coordinator: register.
  void Connect(common::Time now, std::vector<Action>* out);
  // A message from the coordinator, decoded and valid. Any counts as a sign
  // of life.
  void OnCoordinator(const common::Message& msg, common::Time now, std::vector<Action>* out);
  // A message from the cancel broadcast; only CANCEL_GROUP means anything.
  void OnBroadcast(const common::Message& msg, common::Time now, std::vector<Action>* out);
  // The outcome of a StartStep.
  void StepStarted(uint64_t key, common::Time now, std::vector<Action>* out);
  void StepNotStarted(uint64_t key, StartFailure why, const std::string& error, common::Time now,
                      std::vector<Action>* out);
  // A started step has ended (the runner's result for its key).
  void StepEnded(const RunResult& result, common::Time now, std::vector<Action>* out);
  // A SpillResult or SendSpilled failed: the result is dropped, with a
  // warning naming its attempt.
  void SpillFailed(uint64_t seq, const std::string& error, common::Time now, std::vector<Action>* out);
  // Heartbeats (each listing what the worker holds, every interval whatever
  // else was sent), registration retries, the coordinator's silence, and the
  // results to send again: while registered, each one the coordinator has
  // not confirmed within liveness x heartbeat of its last send. Results kept
  // on disk are sent at most max_unconfirmed_bytes per heartbeat, so that
  // an outage's backlog never floods memory on either side at once.
  void Tick(common::Time now, std::vector<Action>* out);
  // The worker is stopping: its steps are stopped and awaited (AwaitSteps).
  void Shutdown(common::Time now, std::vector<Action>* out);
  // The worker is leaving gently (worker_core_drain.cc): it tells the
  // coordinator to place nothing new on it (REGISTER and every HEARTBEAT say
  // `draining`), lets its running steps end and their results be confirmed,
  // then shuts down as above; what still runs after `timeout` is stopped
  // then. A RUN that crossed the news still runs. No-op once stopping.
  void Drain(common::Time now, common::Duration timeout, std::vector<Action>* out);
  bool draining() const { return draining_; }
  common::Time drain_until() const { return drain_until_; }
  // Shutdown has run (by a call, or at the end of a drain): the loop closes
  // its sockets and exits.
  bool stopping() const { return stopping_; }
  // The AwaitSteps of Shutdown is over. Only when every step is dead does
  // the worker say BYE (the coordinator then runs them elsewhere at once);
  // otherwise it leaves silently and the coordinator waits out the lease.
  // After the actions, the loop closes its sockets.
  void StepsAwaited(bool all_stopped, common::Time now, std::vector<Action>* out);

  // The latest time Tick() must run (the runner has deadlines of its own).
  common::Time NextDeadline() const;

  // The lease (WelcomeMsg::lease_ms; zero until a WELCOME gives one): the
  // worker stops its steps itself once its latest message the coordinator
  // acknowledged was sent longer ago than the lease minus the kill grace and
  // a second, so that they are dead when the lease runs out and the
  // coordinator may run them elsewhere. An acknowledgement renews it from
  // the acknowledged message's send time, never from when the answer
  // arrived: a reply delayed in the network renews nothing it should not.
  common::Duration lease() const { return lease_; }
  // When the steps are stopped if no acknowledgement comes first.
  common::Time LeaseStopAt() const;

  bool registered() const { return registered_; }
  int heartbeat_ms() const { return heartbeat_ms_; }
  int liveness() const { return liveness_; }
  size_t running() const { return attempts_.size(); }
  size_t unconfirmed() const { return unconfirmed_.size(); }
  size_t unconfirmed_bytes() const { return unconfirmed_bytes_; }  // those in memory
  size_t spilled() const { return spilled_; }
  size_t spilled_bytes() const { return spilled_bytes_; }
  const WorkerCoreOptions& options() const { return options_; }

 private:
  struct Attempt {
    common::AttemptId id;
    std::string step_id;
    bool lease_stopped = false;  // stopped because the lease ran out
  };
  // A result sent and not yet confirmed.
  struct Unconfirmed {
    common::AttemptId id;
    std::shared_ptr<const common::Message> msg;  // a FinishedMsg; null while kept on disk
    common::Time sent_at;                        // when last sent
    size_t bytes = 0;                            // output tails and error text
    bool queued = false;                         // on disk and in spill_queue_, to be sent
  };
  // (submission, step, attempt).
  using AttemptKey = std::tuple<uint64_t, uint32_t, uint32_t>;
  static AttemptKey KeyOf(const common::AttemptId& id) { return {id.submission, id.step, id.attempt}; }

  common::Duration heartbeat() const { return std::chrono::milliseconds(heartbeat_ms_); }
  void SendRegister(common::Time now, std::vector<Action>* out);
  // The next REGISTER or HEARTBEAT number, remembered with its send time.
  uint64_t NextSeq(common::Time now);
  // An acknowledgement of the message numbered `ack` renews the lease.
  void Renew(uint64_t ack);
  bool LeaseRunOut(common::Time now) const { return lease_ > common::Duration::zero() && now >= LeaseStopAt(); }
  void StopForLease(common::Time now, std::vector<Action>* out);
  // What REGISTER and HEARTBEAT list: the attempts running, then those
  // whose results are not yet confirmed.
  std::vector<common::AttemptId> Holding() const;
  // A numbered HEARTBEAT listing Holding(), saying whether it drains.
  void SendHeartbeat(common::Time now, std::vector<Action>* out);
  // Leaders (worker_core_leader.cc). True when `epoch` is a former
  // leader's, whose RUN, CANCEL and acks are ignored; a newer one becomes
  // the one obeyed.
  bool FromOldLeader(uint64_t epoch, std::string_view what, std::vector<Action>* out);
  void MoveTo(const std::string& endpoint, const std::string& why, common::Time now, std::vector<Action>* out);
  // With several coordinators: the next in the list, if the one dialled has
  // been silent for a liveness period since the last move.
  void MoveOnIfSilent(common::Time now, std::vector<Action>* out);
  void OnWelcome(const common::WelcomeMsg& w, common::Time now, std::vector<Action>* out);
  void OnRun(const common::RunMsg& run, common::Time now, std::vector<Action>* out);
  void OnCancelAttempt(const common::AttemptId& id, common::Time now, std::vector<Action>* out);
  void OnCancelGroup(const common::CancelGroupMsg& g, common::Time now, std::vector<Action>* out);
  void OnReregister(const common::ReregisterMsg& r, common::Time now, std::vector<Action>* out);
  void OnConfirm(const common::ConfirmMsg& c, std::vector<Action>* out);
  // While draining: shuts down once nothing is left, or at the deadline.
  void DrainTick(common::Time now, std::vector<Action>* out);
  // Sends a FINISHED and keeps it until the coordinator confirms it.
  void SendFinished(common::FinishedMsg f, common::Time now, std::vector<Action>* out);
  // Reports a step that never started: "worker NAME <why>"; `lost` asks the
  // coordinator to run it elsewhere as a lost worker's step.
  void FailRun(const common::AttemptId& id, const std::string& why, common::Time now, std::vector<Action>* out,
               bool lost = false);
  // Sends the kept result number `seq` (again); one on disk is queued for
  // FlushSpilled.
  void SendResult(uint64_t seq, common::Time now, std::vector<Action>* out);
  // Sends queued results from disk, within this heartbeat's byte budget.
  void FlushSpilled(common::Time now, std::vector<Action>* out);
  // Sends every kept result of the attempt again; false if there is none.
  bool ResendResults(const AttemptKey& key, common::Time now, std::vector<Action>* out);
  void ResendDue(common::Time now, std::vector<Action>* out);
  // Spills or drops the oldest results until the bounds hold.
  void KeepWithinBounds(std::vector<Action>* out);
  void Spill(uint64_t seq, std::vector<Action>* out);
  void Drop(uint64_t seq, const char* why, std::vector<Action>* out);
  void ForgetResult(uint64_t seq, std::vector<Action>* out);
  void RememberCancelled(uint64_t submission);
  // Forgets the attempt under `key`; false if none.
  bool Release(uint64_t key, Attempt* attempt);

  WorkerCoreOptions options_;
  uint64_t next_key_ = 1;
  std::map<uint64_t, Attempt> attempts_;  // runner key -> attempt
  std::map<AttemptKey, uint64_t> key_of_;
  // Kept results by number, in the order they were first sent.
  std::map<uint64_t, Unconfirmed> unconfirmed_;
  uint64_t next_result_ = 1;
  size_t unconfirmed_bytes_ = 0;  // of the results held in memory
  // Results are spilled oldest first, so those numbered below this are the
  // ones on disk.
  uint64_t in_memory_from_ = 1;
  size_t spilled_ = 0;
  size_t spilled_bytes_ = 0;
  std::deque<uint64_t> spill_queue_;  // results on disk to send, in order
  common::Time spill_window_{};       // start of this heartbeat's budget
  size_t spill_window_bytes_ = 0;     // sent from disk since
  // The numbers of each attempt's results: usually one, two when a RUN
  // refused as a duplicate reported on an attempt that then finished.
  std::multimap<AttemptKey, uint64_t> results_of_;
  // (time, result number) of each send while registered, in time order:
  // the resend schedule. An entry whose result was confirmed or sent again
  // since is skipped.
  std::deque<std::pair<common::Time, uint64_t>> sends_;
  std::set<uint64_t> cancelled_;           // submissions heard cancelled
  std::deque<uint64_t> cancelled_order_;   // bounds the set above
  std::optional<std::string> subscribed_;  // the cancel endpoint subscribed to

  bool registered_ = false;
  bool stopping_ = false;  // Shutdown was called: no RUN starts any more
  bool draining_ = false;
  common::Time drain_until_{};
  int heartbeat_ms_;
  int liveness_;
  common::Time last_heard_{};
  common::Time next_heartbeat_{};
  common::Time last_register_{};
  common::Duration register_every_;  // while unregistered: doubles up to max_reconnect_backoff

  common::Duration lease_{};  // zero: no lease
  std::optional<common::Time> lease_from_;  // send time of the latest acknowledged message
  uint64_t next_seq_ = 1;
  std::deque<std::pair<uint64_t, common::Time>> unacked_;  // (seq, sent), oldest first, bounded

  std::string current_;      // the coordinator endpoint dialled
  size_t at_ = 0;            // its place in options_.coordinators, when it is there
  common::Time moved_at_{};  // the last move to another coordinator
  uint64_t epoch_ = 0;       // the highest leadership epoch heard; 0: none
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_WORKER_CORE_H_
