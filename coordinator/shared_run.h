// RunShared is the life of a coordinator that shares a PostgreSQL database
// with others: it stands by (Standby) until it wins the lease, then leads
// (Server, restored from the database) until it is stopped or steps down,
// and then stands by again. Each turn has a connection of its own, so a
// deposed leader's fencing never carries into its next term.
//
// Thread contract: runs on the main thread until the daemon exits.
#ifndef COHORT_COORDINATOR_SHARED_RUN_H_
#define COHORT_COORDINATOR_SHARED_RUN_H_

#include <string>

#include "common/daemon.h"
#include "common/time.h"
#include "coordinator/server.h"

namespace cohort::coordinator {

struct SharedOptions {
  std::string conninfo;  // a postgresql:// URI
  std::string name;      // "" = the host name
  std::string advertise_client, advertise_worker;  // "" = from the bound endpoints
  common::Duration lease = std::chrono::seconds(4);
};

// "tcp://*:5700" -> "tcp://HOST:5700"; other endpoints unchanged.
std::string Advertised(const std::string& endpoint, const std::string& host);

// The process exit code.
int RunShared(SharedOptions shared, const ServerOptions& base, const common::StopSignal& stop,
              common::StopSignal* reload);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SHARED_RUN_H_
