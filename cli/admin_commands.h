// The operator's commands: `cohort ping` (a health check for scripts and
// load balancers) and `cohort cordon|uncordon|drain WORKER` (maintenance).
#ifndef COHORT_CLI_ADMIN_COMMANDS_H_
#define COHORT_CLI_ADMIN_COMMANDS_H_

#include <string>
#include <vector>

namespace cohort::cli {

// Pings every endpoint of --coordinator on its own, without following a
// standby to its leader: exit 0 when each answered, 3 naming those that
// did not.
int Ping(const std::vector<std::string>& args);

// `name` is cordon, uncordon or drain. drain waits until the worker runs
// nothing (or is lost), up to --timeout.
int SetWorkerMode(const std::string& name, const std::vector<std::string>& args);

}  // namespace cohort::cli

#endif  // COHORT_CLI_ADMIN_COMMANDS_H_
