#include "coordinator/shared_run.h"

#include <poll.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "coordinator/leader_lease.h"
#include "coordinator/postgres_store.h"
#include "coordinator/standby.h"

namespace cohort::coordinator {

using common::LogError;
using common::LogInfo;
using common::LogWarn;
using common::Status;

namespace {

// Waits up to `ms` for `stop`; true if it was raised.
bool StopWithin(const common::StopSignal& stop, int ms) {
  pollfd p{stop.fd(), POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

// Connects until it works, stop is raised (false, *code 0), or the error
// is one no retry mends (false, *code 1).
bool OpenStore(const std::string& conninfo, const common::StopSignal& stop, std::unique_ptr<PostgresStore>* out,
               int* code, common::SystemdNotifier* notifier) {
  common::RateLimiter log{1, std::chrono::seconds(10)};
  while (true) {
    Status s = PostgresStore::Open(conninfo, out);
    if (s.ok()) return true;
    if (s.code() != Status::Code::kUnavailable) {
      LogError("store_failed").Kv("error", s.message());
      *code = 1;
      return false;
    }
    uint64_t suppressed = 0;
    if (log.Allow(common::Clock::now(), &suppressed)) {
      LogWarn("database_unreachable").Kv("error", s.message()).Kv("suppressed", suppressed);
    }
    if (notifier) {
      // Started, and saying why it cannot stand by yet: a start that waited
      // for the database would time out and be restarted over and over.
      notifier->Ready("waiting for the database: " + s.message());
      notifier->Watchdog(common::Clock::now());
    }
    if (StopWithin(stop, 1000)) {
      *code = 0;
      return false;
    }
  }
}

}  // namespace

std::string Advertised(const std::string& endpoint, const std::string& host) {
  for (const char* wildcard : {"tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"}) {
    const std::string w = wildcard;
    if (endpoint.rfind(w, 0) == 0) return "tcp://" + host + ":" + endpoint.substr(w.size());
  }
  return endpoint;
}

int RunShared(SharedOptions shared, const ServerOptions& base, const common::StopSignal& stop,
              common::StopSignal* reload) {
  const std::string host = common::HostName("localhost");
  Leader me;
  me.holder = shared.name.empty() ? host : shared.name;
  me.client_endpoint = shared.advertise_client.empty() ? Advertised(base.client_endpoint, host)
                                                       : shared.advertise_client;
  me.worker_endpoint = shared.advertise_worker.empty() ? Advertised(base.worker_endpoint, host)
                                                       : shared.advertise_worker;
  LeaderLease lease(shared.lease);
  while (true) {
    std::unique_ptr<PostgresStore> store;
    int code = 0;
    if (!OpenStore(shared.conninfo, stop, &store, &code, base.notifier)) return code;
    Leader won;
    {
      StandbyOptions so{base.client_endpoint,    base.worker_endpoint,     me,
                        base.curve,               base.authorized_clients,  base.authorized_workers,
                        base.admin_clients,       base.started,             base.notifier,
                        base.metrics,             base.connection_limits,   base.ipc};
      Standby standby(std::move(so), store.get(), &lease);
      if (Status s = standby.Bind(); !s.ok()) {
        LogError("bind_failed").Kv("error", s.message());
        return common::StartFailureExitCode(s);
      }
      switch (standby.Run(stop, &won)) {
        case Standby::Outcome::kWon: break;
        case Standby::Outcome::kStopped: return 0;
        case Standby::Outcome::kFailed: return 1;
      }
    }  // the standby's sockets are closed here, before the Server binds the same endpoints
    LogInfo("leading").Kv("name", me.holder).Kv("epoch", won.epoch).Kv("client", me.client_endpoint);
    ServerOptions options = base;
    options.name = me.holder;
    options.advertised_client = me.client_endpoint;
    options.election = store.get();
    options.lease = &lease;
    options.epoch = won.epoch;
    options.store_description = "postgresql " + store->where() + " epoch=" + std::to_string(won.epoch);
    options.store = std::move(store);
    Server server(std::move(options));
    Status s = server.Bind();
    if (!s.ok()) {
      // The database failed while the state was read: stand by again (the
      // lease runs out and whoever wins reads it whole). Any other failure
      // would fail again the same way.
      LogError("lead_failed").Kv("epoch", won.epoch).Kv("error", s.message());
      if (s.code() != Status::Code::kUnavailable) return common::StartFailureExitCode(s);
      lease.Lost(common::Clock::now());
      continue;
    }
    const int rc = server.Run(stop, reload);
    if (rc != Server::kSteppedDown) return rc;
    LogWarn("stepped_down").Kv("epoch", won.epoch).Kv("detail", "standing by");
    lease.Lost(common::Clock::now());
  }
}

}  // namespace cohort::coordinator
