// The daemons' exit codes, chosen so that systemd can tell whether a restart
// may help: a unit lists kExitUsage and kExitNotConfigured in
// RestartPreventExitStatus=, and restarts on kExitFailure. The values are
// systemd's own where it has one (systemd.exec(5), "Process Exit Codes").
//
// Thread contract: constants and a pure function.
#ifndef COHORT_COMMON_EXIT_CODES_H_
#define COHORT_COMMON_EXIT_CODES_H_

#include "common/status.h"

namespace cohort::common {

// A clean stop (SIGTERM, SIGINT), or --help, --version, --check-config OK.
inline constexpr int kExitOk = 0;
// A failure a restart may cure: the store unreachable or failing, a runtime
// error.
inline constexpr int kExitFailure = 1;
// Bad usage: an unknown option, a bad value on the command line or in a
// config file, options that do not go together, a key file or allowlist that
// cannot be read or is not protected as it must be (EXIT_INVALIDARGUMENT).
inline constexpr int kExitUsage = 2;
// Cannot start as configured on this host: an address in use or not on this
// host, a state directory locked by another process or unusable
// (EXIT_NOTCONFIGURED).
inline constexpr int kExitNotConfigured = 6;

// The exit code for a failure to start: InvalidArgument is bad usage,
// FailedPrecondition something on this host that is not as the options
// need it (the start-up paths report an address in use and a locked or
// unusable state directory so), anything else a failure a restart may cure.
inline int StartFailureExitCode(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk: return kExitOk;
    case Status::Code::kInvalidArgument: return kExitUsage;
    case Status::Code::kFailedPrecondition: return kExitNotConfigured;
    default: return kExitFailure;
  }
}

}  // namespace cohort::common

#endif  // COHORT_COMMON_EXIT_CODES_H_
