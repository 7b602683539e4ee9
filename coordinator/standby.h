// Standby is a coordinator that does not lead: the loop it runs until it
// wins the lease of the coordinators sharing a database (leadership.h). It
// binds the client and worker endpoints, so that a client or worker that
// reaches it learns where the leader is instead of waiting on a silent
// port: every client request is answered "unavailable" naming the leader's
// client endpoint, every worker message with REREGISTER naming the
// leader's worker endpoint. It never schedules, dispatches or writes a
// group. Every eighth of the lease it campaigns; when it wins, Run returns
// and the caller closes it and starts the Server on the same endpoints.
//
// Thread contract: one thread constructs it and calls Run(); it owns its
// ZeroMQ context and sockets, all closed by the destructor.
#ifndef COHORT_COORDINATOR_STANDBY_H_
#define COHORT_COORDINATOR_STANDBY_H_

#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/connection_guard.h"
#include "common/curve_keys.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/status.h"
#include "common/systemd_notify.h"
#include "common/metrics_server.h"
#include "common/time.h"
#include "common/transport.h"
#include "coordinator/leader_lease.h"
#include "coordinator/leadership.h"
#include "coordinator/zap_handler.h"

namespace cohort::coordinator {

struct StandbyOptions {
  std::string client_endpoint, worker_endpoint;  // to bind
  Leader me;  // name and advertised endpoints, for campaigns and the log
  std::optional<common::CurveKeyPair> curve;
  std::string authorized_clients, authorized_workers;
  std::string admin_clients;  // "" = none
  common::Time started{};  // when the process started, for PING
  common::SystemdNotifier* notifier = nullptr;  // null: none; outlives the Standby
  common::MetricsServer* metrics = nullptr;     // likewise
  // As the leader's: a standby binds the same ports, to the same peers.
  common::ConnectionLimits connection_limits;
  common::IpcAccess ipc;
};

// The refusal a standby answers with: what this coordinator is and who
// leads, or why nobody is known to.
std::string StandbyMessage(const std::string& me, const std::optional<Leader>& leader, const std::string& trouble);

class Standby {
 public:
  enum class Outcome { kWon, kStopped, kFailed };

  // `election` and `lease` outlive the Standby.
  Standby(StandbyOptions options, Election* election, LeaderLease* lease);
  ~Standby();

  // Binds both endpoints; Unavailable naming the endpoint when one is taken.
  common::Status Bind();
  // Answers and campaigns until this process wins (kWon: *won is the lease
  // with its epoch), `stop` is raised, or polling fails.
  Outcome Run(const common::StopSignal& stop, Leader* won);

 private:
  void Campaign(common::Time now, bool* won);
  void AnswerClients();
  void AnswerWorkers();
  std::string StatusLine() const;

  StandbyOptions options_;
  Election* election_;
  LeaderLease* lease_;
  zmq::context_t context_;
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  std::unique_ptr<ZapHandler> zap_;
  common::ConnectionGuard guard_{context_, options_.connection_limits};  // after the sockets it watches
  std::optional<Leader> leader_;  // as the last campaign found it
  std::string trouble_;           // why the last campaign failed, "" when it did not
  common::RateLimiter trouble_log_{1, std::chrono::seconds(10)};
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STANDBY_H_
