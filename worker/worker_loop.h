// WorkerLoop is the worker daemon's event loop: it owns the DEALER to the
// coordinator, the SUB for cancel broadcasts, the StepRunner with every
// process it runs, and the WorkerCore that makes every decision. Each turn it
// polls the sockets and the runner's descriptors together (with a timeout no
// later than the core's and the runner's deadlines), decodes what arrived,
// hands it to the core with `now`, and carries out the actions the core
// returns: it sends, subscribes, starts and cancels steps (checking each
// against the worker's StepPolicy first) and writes the log. The sockets are
// kept across a silent coordinator: ZeroMQ redials a broken connection with
// exponential backoff and ZMTP heartbeats find a dead one.
//
// Thread contract: one thread calls Run().
#ifndef COHORT_WORKER_WORKER_LOOP_H_
#define COHORT_WORKER_WORKER_LOOP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/daemon.h"
#include "common/handshake_monitor.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/secure_options.h"
#include "common/systemd_notify.h"
#include "common/metrics_poll.h"
#include "common/metrics_server.h"
#include "common/clock.h"
#include "common/time.h"
#include "worker/client_users.h"
#include "worker/result_spill.h"
#include "worker/step_policy.h"
#include "worker/step_runner.h"
#include "worker/worker_core.h"

namespace cohort::worker {

struct WorkerOptions {
  std::string coordinator = common::kDefaultWorkerEndpoint;
  std::string name;  // "" = the host name
  int64_t slots = 0;  // 0 = the number of CPUs
  std::vector<std::string> agents;  // placement labels offered
  common::Duration kill_grace = std::chrono::seconds(5);
  int heartbeat_ms = common::kDefaultHeartbeatMs;  // until the coordinator says otherwise
  int liveness = common::kDefaultLiveness;
  common::Duration max_reconnect_backoff = std::chrono::seconds(10);  // between TCP reconnects
  size_t tail_bytes = 64 * 1024;
  // WorkerCoreOptions.life: the token LifeRecord::Begin recorded.
  std::string life;
  // Results kept until the coordinator confirms them: the bounds of
  // WorkerCoreOptions.
  size_t max_unconfirmed = WorkerCoreOptions{}.max_unconfirmed;
  size_t max_unconfirmed_bytes = WorkerCoreOptions{}.max_unconfirmed_bytes;
  size_t max_spilled_bytes = WorkerCoreOptions{}.max_spilled_bytes;  // with a ResultSpill
  // CURVE toward the coordinator (both sockets); none on loopback demos.
  std::optional<common::PeerCurve> curve;
  // Steps drop to this user; nullopt runs them as the worker's own.
  std::optional<RunAsUser> run_as;
  // The users the steps of clients run as, instead of run_as; nullopt runs
  // every step as run_as.
  std::optional<ClientUsers> client_users;
  // kPidNamespace only where Spawner::ProbePidNamespace says it works.
  StepIsolation isolation = StepIsolation::kProcessGroup;
  StepPolicy policy;
  // On the first SIGTERM the worker drains for up to this long (see
  // WorkerCore::Drain); zero stops its steps at once. A second SIGTERM stops
  // them at once either way.
  common::Duration drain_timeout = std::chrono::seconds(30);
  // Readiness, status and watchdog for systemd; null sends none. Outlives
  // the loop.
  common::SystemdNotifier* notifier = nullptr;
  // Answers Prometheus's scrapes from the loop; null: no --metrics-endpoint.
  // Outlives the loop.
  common::MetricsServer* metrics = nullptr;
};

// `o` with what was left to the worker filled in: the host name for an
// empty name, the number of CPUs for slots <= 0.
WorkerOptions WithDefaults(WorkerOptions o);

class WorkerLoop {
 public:
  // `spill`, when given, holds the results past max_unconfirmed_bytes (up
  // to max_spilled_bytes) and must outlive the loop; without it they are
  // dropped.
  explicit WorkerLoop(WorkerOptions options, const ResultSpill* spill = nullptr);
  ~WorkerLoop();
  WorkerLoop(const WorkerLoop&) = delete;
  WorkerLoop& operator=(const WorkerLoop&) = delete;

  // Serves until `stop` is raised; then drains (drain_timeout), says
  // goodbye, stops every step and returns the exit code. `stop` is lowered
  // when read, so that a second raise cuts the drain short.
  int Run(common::StopSignal& stop);

  const WorkerOptions& options() const { return options_; }

 private:
  void Connect(common::Time now);
  void Subscribe(const std::string& endpoint);
  // Carries out `actions` in order, feeding the outcome of each StartStep
  // back to the core before the next one; a StartStep's request is used up.
  void Execute(std::vector<Action>& actions, common::Time now);
  // Runs the runner until every step has stopped or `until`, then tells the
  // core which (AwaitSteps).
  void AwaitStopped(common::Time until);
  void StartOne(StartStep& start, common::Time now);
  void Send(const common::Message& msg);
  void SendSpilled(uint64_t seq, common::Time now);
  void ReadCoordinator(common::Time now);
  void ReadBroadcasts(common::Time now);
  void Shutdown();
  void CloseSockets();
  // The first stop drains; a second, or a stop without a drain timeout,
  // shuts down at once.
  void OnStop(common::Time now);
  common::Time NextWake() const;
  std::string StatusLine(common::Time now) const;
  std::string MetricsText(common::Time now) const;
  void Notify(common::Time now);

  WorkerOptions options_;
  const ResultSpill* spill_;
  zmq::context_t context_;
  std::optional<zmq::socket_t> dealer_;
  std::optional<zmq::socket_t> sub_;
  std::optional<common::HandshakeMonitor> monitor_;  // of dealer_: says why it cannot connect
  StepRunner runner_;
  WorkerCore core_;
  common::RateLimiter bad_input_log_{10, std::chrono::seconds(10)};
  common::Time next_status_{};
  common::MetricsPoll metrics_{options_.metrics};
  common::Time started_ = common::Clock::now();
  // Steps that ended since start, by how: exited 0, exited non-zero, killed
  // by a signal, could not be started, reaped outside the runner (status
  // unknown).
  uint64_t ended_ok_ = 0, ended_exit_ = 0, ended_signal_ = 0, ended_not_started_ = 0, ended_lost_ = 0;
  uint64_t bad_messages_ = 0;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_WORKER_LOOP_H_
