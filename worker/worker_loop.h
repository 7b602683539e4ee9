// WorkerLoop is the worker daemon's event loop: it owns the DEALER to the
// coordinator, the SUB for cancel broadcasts, and the StepRunner with every
// process it runs. It registers (reporting what it still runs), heartbeats
// both ways as in the ZeroMQ guide's Paranoid Pirate pattern (any message
// counts), runs what it is sent, reports starts and ends, and stops what it
// is told to stop. When the coordinator goes silent it registers again every
// heartbeat until answered, on the same socket (ZeroMQ redials a broken
// connection with exponential backoff; ZMTP heartbeats find a dead one); its
// steps keep running meanwhile and results that finished while it was away
// are reported after it is back.
//
// Thread contract: one thread calls Run().
#ifndef COHORT_WORKER_WORKER_LOOP_H_
#define COHORT_WORKER_WORKER_LOOP_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "common/daemon.h"
#include "common/handshake_monitor.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/secure_options.h"
#include "common/time.h"
#include "worker/step_policy.h"
#include "worker/step_runner.h"

namespace cohort::worker {

struct WorkerOptions {
  std::string coordinator = common::kDefaultWorkerEndpoint;
  std::string name;  // "" = the host name
  int64_t slots = 0;  // 0 = the number of CPUs
  std::vector<std::string> agents;
  common::Duration kill_grace = std::chrono::seconds(5);
  int heartbeat_ms = common::kDefaultHeartbeatMs;  // until the coordinator says otherwise
  int liveness = common::kDefaultLiveness;
  common::Duration max_reconnect_backoff = std::chrono::seconds(30);  // between TCP reconnects
  size_t tail_bytes = 64 * 1024;
  // CURVE toward the coordinator (both sockets); none on loopback demos.
  std::optional<common::PeerCurve> curve;
  // Steps drop to this user; nullopt runs them as the worker's own.
  std::optional<RunAsUser> run_as;
  StepPolicy policy;
};

class WorkerLoop {
 public:
  explicit WorkerLoop(WorkerOptions options);
  ~WorkerLoop();
  WorkerLoop(const WorkerLoop&) = delete;
  WorkerLoop& operator=(const WorkerLoop&) = delete;

  // Serves until `stop` is raised; then says goodbye, stops every step and
  // returns the exit code.
  int Run(const common::StopSignal& stop);

  const WorkerOptions& options() const { return options_; }

 private:
  struct Attempt {
    common::AttemptId id;
    std::string step_id;
  };
  // A result kept for 2 x liveness x heartbeat of registered time after it
  // was last sent (the coordinator has acted on it by then), so a reconnect,
  // after an outage of any length, does not lose it.
  struct Unconfirmed {
    common::FinishedMsg msg;
    common::Time sent_at;
  };

  void Connect(common::Time now);
  void SendRegister(common::Time now);
  void Send(const common::Message& msg);
  void OnCoordinator(const common::Message& msg, common::Time now);
  void OnCancelGroup(const std::string& group, common::Time now);
  void OnRun(const common::RunMsg& run, common::Time now);
  void Report(const RunResult& r);
  // Sends a FINISHED and keeps it until the coordinator has had time to act.
  void SendFinished(common::FinishedMsg f, common::Time now);
  // Reports a step that never started: "worker NAME <why>".
  void FailRun(const common::RunMsg& run, const std::string& why, common::Time now);
  void RefuseAsCancelled(const common::RunMsg& run, const std::string& why, common::Time now);
  void RememberCancelled(const std::string& group);
  common::Time NextWake() const;
  void Shutdown();

  WorkerOptions options_;
  zmq::context_t context_;
  std::optional<zmq::socket_t> dealer_;
  std::optional<zmq::socket_t> sub_;
  std::optional<common::HandshakeMonitor> monitor_;  // of dealer_: says why it cannot connect
  std::string sub_endpoint_;
  StepRunner runner_;
  common::WallClock wall_;

  uint64_t instance_;  // random per process, see RegisterMsg::instance
  uint64_t next_key_ = 1;
  std::unordered_map<uint64_t, Attempt> attempts_;  // runner key -> attempt
  std::map<std::tuple<std::string, uint32_t, uint32_t>, uint64_t> key_of_;
  std::deque<Unconfirmed> unconfirmed_;
  std::set<std::string> cancelled_groups_;
  std::deque<std::string> cancelled_order_;  // bounds the set above

  bool registered_ = false;
  int heartbeat_ms_;
  int liveness_;
  common::Time last_heard_{};
  common::Time next_heartbeat_{};
  common::Time last_register_{};
  common::Duration register_every_;  // while unregistered: doubles up to max_reconnect_backoff
  common::RateLimiter bad_input_log_{10, std::chrono::seconds(10)};
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_WORKER_LOOP_H_
