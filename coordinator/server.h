// Server is the coordinator daemon's event loop: it owns the three sockets
// (client ROUTER, worker ROUTER, cancel PUB), the Scheduler, the map between
// worker names and their ZeroMQ routes, and the clients waiting on groups.
// Each iteration polls with a timeout that ends at the nearest deadline (the
// core's next timer or the next heartbeat to send), decodes what arrived,
// hands it to the core as an event with the current time, and carries out
// the actions. Nothing here decides scheduling policy, worker identity or
// liveness; that is the core's job. What stays here is I/O and access: the
// ZAP allowlists (ZapHandler) admit keys, and the loop measures its own
// stalls and reports them to the core, and withholds the lists in workers'
// heartbeats from it while what it sent may have left late (the core's grace
// for a RUN to arrive counts from the dispatch).
//
// With a store, nothing leaves the process before the records it follows
// are committed: the core journals each change, and every reply, RUN,
// cancel and CONFIRM a loop turn produces waits in an outbox until the
// turn's journal is committed in one transaction (group commit). A client
// that was told "ok" and a worker whose result was confirmed can rely on it
// whatever crashes next. When a commit fails for want of space the outbox is
// held, the journal is tried again each second, and submissions are refused
// meanwhile; any other store error stops the daemon, which restarts from
// what was committed.
//
// server.cc holds the loop and the actions, server_store.cc the store and the
// outbox, server_clients.cc the client requests and WAITs, server_workers.cc
// the worker messages and routes.
//
// Thread contract: one thread calls Bind() then Run().
#ifndef COHORT_COORDINATOR_SERVER_H_
#define COHORT_COORDINATOR_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "common/connection_guard.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"
#include "common/systemd_notify.h"
#include "common/metrics.h"
#include "common/metrics_poll.h"
#include "common/metrics_server.h"
#include "common/curve_keys.h"
#include "common/clock.h"
#include "common/time.h"
#include "common/transport.h"
#include "coordinator/client_limits.h"
#include "coordinator/group_access.h"
#include "coordinator/leader_lease.h"
#include "coordinator/leadership.h"
#include "coordinator/scheduler.h"
#include "coordinator/store.h"
#include "coordinator/zap_handler.h"

namespace cohort::coordinator {

// WAITs one client may hold at once, and an attempt's output tail kept per
// stream: sixteen times the worker's default --output-tail-kib.
inline constexpr size_t kDefaultMaxWaitsPerClient = 1000;
inline constexpr size_t kDefaultMaxTailBytes = 1u << 20;

struct ServerOptions {
  std::string client_endpoint = common::kDefaultClientEndpoint;
  std::string worker_endpoint = common::kDefaultWorkerEndpoint;
  std::string cancel_endpoint = common::kDefaultCancelEndpoint;
  int heartbeat_ms = common::kDefaultHeartbeatMs;
  int liveness = common::kDefaultLiveness;
  SchedulerOptions scheduler;  // its heartbeat settings are taken from above
  // With a secret key, every socket is a CURVE server and only the keys in
  // the two allowlist directories may connect (docs/SECURITY.md).
  std::optional<common::CurveKeyPair> curve;
  std::string authorized_clients, authorized_workers;
  std::string admin_clients;  // "" = none: no client reaches another's groups
  // What peers still in their handshake may hold (common/connection_guard.h),
  // and who may open the ipc:// sockets bound.
  common::ConnectionLimits connection_limits;
  common::IpcAccess ipc;
  size_t max_groups_per_client = 0;  // 0 = no limit
  size_t max_waits_per_client = kDefaultMaxWaitsPerClient;
  // The longest output tail kept of one attempt's stream; a worker that
  // sends more has the start of it cut.
  size_t max_tail_bytes = kDefaultMaxTailBytes;
  size_t max_steps_per_group = 0;
  // Where groups and results are kept across restarts; null keeps them in
  // memory only (--store memory).
  std::shared_ptr<Store> store;
  std::string store_description = "memory";  // for the log: "sqlite /var/lib/cohort/cohort.db"
  // With coordinators sharing the store (docs/ARCHITECTURE.md): the election
  // the store offers and the lease this process won, both outliving the
  // Server, and the lease's epoch, which every message to a worker carries.
  // Null when this is the only coordinator.
  Election* election = nullptr;
  LeaderLease* lease = nullptr;
  uint64_t epoch = 0;
  // Who this is in PING answers and when the process started; the client
  // endpoint PING names as the leader's ("" = client_endpoint, which may be
  // a wildcard only a standby's --advertise-client turns into an address).
  std::string name;
  std::string advertised_client;
  common::Time started = common::Clock::now();
  // Readiness, status and watchdog for systemd; null sends none. Outlives
  // the Server.
  common::SystemdNotifier* notifier = nullptr;
  // Answers Prometheus's scrapes from the loop (server_metrics.cc); null:
  // no --metrics-endpoint. Outlives the Server.
  common::MetricsServer* metrics = nullptr;
};

// What every coordinator's scrape holds, leading or standing by: the build,
// the uptime and the role.
void CoordinatorBuildMetrics(common::Exposition& e, bool leading, common::Time started, common::Time now);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Restores what the store kept, then binds all three sockets; the store's
  // error, or Unavailable naming the endpoint, on failure.
  common::Status Bind();
  // Serves until `stop` is raised; rereads the allowlists whenever `reload`
  // is raised. Returns the process exit code, or kSteppedDown when it
  // stopped leading (deposed, or its lease ran out unrenewed) and has sent
  // nothing since.
  int Run(const common::StopSignal& stop, common::StopSignal* reload = nullptr);
  static constexpr int kSteppedDown = -1;

  const std::string& bound_client_endpoint() const { return bound_client_; }
  const std::string& bound_worker_endpoint() const { return bound_worker_; }
  const std::string& bound_cancel_endpoint() const { return bound_cancel_; }

 private:
  struct Waiter {
    std::string route;
    uint64_t req;
    std::string client;
  };
  // What a poll found readable.
  struct Ready {
    bool stop = false;
    bool reload = false;
    bool zap = false;
  };

  // The loop (server.cc). Wait polls until a socket is readable or the next
  // deadline is due; false if polling failed.
  bool Wait(const common::StopSignal& stop, common::StopSignal* reload, Ready* ready);
  // False when the store failed in a way only a restart can mend.
  bool Turn(const Ready& ready, common::StopSignal* reload, common::Envelope& env);
  // Handles up to one batch of worker messages; true if none is left.
  bool DrainWorkers(common::Envelope& env, common::Time now);
  void ServeClients(common::Envelope& env, common::Time now);
  void BadMessage(std::string_view socket, const common::Status& why, common::Time now);
  common::Time NextWake() const;
  // systemd's STATUS= line: what runs, on how many workers, and any trouble.
  std::string StatusLine() const;
  // Pings the watchdog and redraws the status, at most once a second.
  void Notify(common::Time now);
  // The text of a scrape (server_metrics.cc).
  std::string MetricsText(common::Time now) const;

  // The store and the outbox (server_store.cc).
  // Loads the store into the core; the core's clock starts after the load,
  // so a long load does not eat into the reattach window.
  common::Status Restore();
  // Sends now without a store; otherwise once the journal is committed.
  void Send(zmq::socket_t& socket, std::optional<std::string> route, common::Message msg);
  // The worker at `route` reported this result: confirm it once committed.
  void ConfirmLater(const std::string& route, const common::AttemptId& id);
  // Commits the core's journal. After an error a retry cannot mend, every
  // later call fails too and the turn ends the loop.
  common::Status CommitJournal(common::Time now);
  // One attempt's output tail that the core keeps in the store only.
  common::Status ReadStoredOutput(const AttemptRef& ref, bool stderr, common::Time now, std::string* out);
  // Commits the journal, then sends what waited for it; false on an error a
  // retry cannot mend.
  bool Flush(common::Time now);
  // A failed commit: held for a retry (true), or the end of leading or of
  // the daemon (false).
  bool CommitFailed(const common::Status& s, common::Time now);
  void Committed();
  // Pipelined commits (server_store.cc): Flush's way with a store that
  // commits while the loop goes on. PollCommit takes a landed commit's
  // outcome and sends what waited for it; SettleInFlight waits for it.
  bool FlushPipelined(common::Time now);
  bool StartCommit(common::Time now);
  void JoinInFlight();
  bool PollCommit(common::Time now);
  common::Status SettleInFlight(common::Time now);
  // Puts an archived finished group back in the core before a request about
  // it is handled (coordinator/archived.h); the error is the request's answer.
  common::Status ReadArchived(std::string_view group, common::Time now);
  void SendHeld();
  struct Outgoing;
  void SendOutgoing(std::vector<Outgoing>* messages,
                    std::vector<std::pair<std::string, std::vector<common::AttemptId>>>* confirms);
  // Why submissions are refused now ("" when they are not).
  std::string StoreTrouble() const;
  // Renews the lease when due; false when this process no longer leads
  // (then nothing more may leave it).
  bool KeepLease(common::Time now);
  bool Leads() const;
  // Ends the lease at a clean stop, so a standby takes over at once.
  void Resign();

  // Actions (server.cc).
  void Apply(common::Time now);
  void Carry(Action& action, common::Time now);
  void SendDispatch(Dispatch& d, common::Time now);

  // Clients (server_clients.cc).
  void OnClient(const common::Envelope& env, common::Time now);
  // The caller a client request comes from, by its CURVE User-Id.
  Caller CallerOf(const std::string& user_id) const;
  // The group `named` by `caller`'s request for `command`, into *group, if
  // it exists and the caller may reach it. If not, replies "no group" in the
  // same words either way, and logs a refusal of one that exists.
  bool Reach(const Caller& caller, const std::string& named, std::string_view command, const std::string& route,
             uint64_t req, common::Time now, std::string* group);
  void OnCordon(const Caller& caller, const std::string& route, uint64_t req, const common::CordonMsg& m,
                common::Time now);
  // Copies the last max_tail_bytes of each of `m`'s tails into `o`; logs a cut.
  void KeepTails(const std::string& worker, const common::FinishedMsg& m, common::AttemptOutcome* o,
                 common::Time now);
  void OnSubmit(const std::string& route, uint64_t req, const std::string& client, const common::SubmitMsg& m,
                common::Time now);
  void OnWait(const std::string& route, uint64_t req, const std::string& client, const std::string& group,
              common::Time now);
  void Reply(const std::string& route, uint64_t req, const common::Status& status, std::string body);
  std::string ResultBody(std::string_view group, uint64_t cursor) const;
  void AnswerWaiters(const GroupFinished& f, common::Time now);
  // Forgets the WAITs of clients that have disconnected (see server_clients.cc).
  void SweepWaiters(common::Time now);
  bool ClientGone(const std::string& route);

  // Workers (server_workers.cc).
  void OnWorker(const common::Envelope& env, common::Time now);
  void OnRegister(const common::Envelope& env, const common::RegisterMsg& reg, common::Time now);
  void OnReport(const std::string& name, const std::string& route, const common::Message& msg, common::Time now);
  // The core's event for a HEARTBEAT that lists what the worker holds (the
  // list is moved out of *beat).
  static WorkerHeartbeat Holding(const std::string& name, common::HeartbeatMsg* beat);
  // After a turn: whether its messages left late, so that lists must wait.
  // `was_held`: the outbox was held for the store when the turn began.
  void NoteSendDelay(common::Time turn_start, bool was_held);
  void NoteRefusedReport(const common::Status& s, const common::Message& msg);
  void Refuse(const std::string& route, std::string reason);
  void SendToWorker(const std::string& worker, common::Message msg);
  void SendHeartbeats(common::Time now);
  void Forget(const std::string& worker);
  // After a reload: workers whose key left the allowlist are lost.
  void RevokeWorkers(common::Time now);

  // A message held until the journal before it is committed.
  struct Outgoing {
    zmq::socket_t* socket;
    std::optional<std::string> route;
    common::Message msg;
  };

  ServerOptions options_;
  zmq::context_t context_;
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  zmq::socket_t cancels_;
  std::unique_ptr<ZapHandler> zap_;  // with CURVE only
  // Declared after the sockets it watches: its monitors close first.
  common::ConnectionGuard guard_{context_, options_.connection_limits};
  std::string bound_client_, bound_worker_, bound_cancel_;

  Scheduler core_;
  ClientLimits limits_;
  common::WallClock wall_;
  std::vector<Action> actions_;
  std::unordered_map<std::string, std::string> route_of_;   // worker name -> route
  std::unordered_map<std::string, std::string> worker_at_;  // route -> worker name
  // Worker name -> the seq of its latest REGISTER or HEARTBEAT received:
  // every HEARTBEAT we send it acknowledges that one, renewing its lease.
  std::unordered_map<std::string, uint64_t> acked_;
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;  // group -> clients in WAIT
  size_t waiter_count_ = 0;
  common::Time next_waiter_sweep_{};
  common::Time next_heartbeat_{};
  // Heartbeat lists are passed to the core from then on (NoteSendDelay).
  common::Time lists_from_{};
  common::RateLimiter bad_input_log_{10, std::chrono::seconds(10)};
  common::RateLimiter refusal_log_{20, std::chrono::seconds(10)};
  bool trim_memory_ = false;  // a big request was handled: give its memory back

  std::vector<Record> unsaved_;  // journal taken from the core, not yet committed
  std::vector<Outgoing> outbox_;
  std::vector<std::pair<std::string, std::vector<common::AttemptId>>> confirms_;  // route -> results
  std::unordered_map<std::string, size_t> confirm_at_;  // route -> index in confirms_
  std::optional<common::Status> store_error_;  // the last commit's failure, while it lasts
  std::optional<common::Status> store_failed_;  // a failure only a restart mends
  // A pipelined commit in flight, and what waits for it to land.
  bool in_flight_ = false;
  common::Time in_flight_since_{};
  std::vector<Record> in_flight_records_;
  std::vector<Outgoing> in_flight_outbox_;
  std::vector<std::pair<std::string, std::vector<common::AttemptId>>> in_flight_confirms_;
  common::Time next_store_retry_ = common::Time::max();
  common::RateLimiter store_log_{1, std::chrono::seconds(10)};
  bool stepped_down_ = false;
  common::RateLimiter lease_log_{1, std::chrono::seconds(5)};
  common::Time next_status_{};
  std::vector<zmq::pollitem_t> poll_items_;  // the last poll's, kept for MetricsPoll::Serve
  common::MetricsPoll metrics_{options_.metrics};
  common::Histogram commit_time_{common::Histogram::DefaultSecondsBounds()};
  uint64_t bad_client_messages_ = 0, bad_worker_messages_ = 0;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SERVER_H_
