// The exit codes of `cohort`, the same for every command, and the mapping
// from a coordinator's answer to them, so that a script can tell "the group
// failed" from "no such group" from "the coordinator did not answer". Listed
// in `cohort --help`, README.md and the man page.
//
// Thread contract: constants and pure functions; CancelOutcome writes to the
// stream it is given.
#ifndef COHORT_CLI_EXIT_CODES_H_
#define COHORT_CLI_EXIT_CODES_H_

#include <ostream>
#include <string>

#include "common/status.h"

namespace cohort::cli {

// Done: the group completed, or the command did what it was asked.
constexpr int kExitOk = 0;
// The group failed or was cancelled, or the coordinator refused the request.
constexpr int kExitFailed = 1;
// Bad usage: an unknown option, an invalid group, a wrong port.
constexpr int kExitUsage = 2;
// The coordinator did not answer in time, or is full: try again later.
constexpr int kExitUnreachable = 3;
// No such group, step or worker (or not one of yours).
constexpr int kExitNotFound = 4;

// The exit code for a request's outcome (a transport failure or the
// coordinator's answer).
int StatusExit(const common::Status& s);

// What `cohort cancel GROUP [STEP]` says and returns once the coordinator
// answered `answer` (the REPLY as a Status) after `sent` sends. A group that
// had already finished is no error (exit 0): after `cancel`, nothing of the
// group runs either way, and "nothing to cancel" says so in plain words.
// Other refusals are printed as "cohort: ..." with StatusExit's code. With
// `json`, success prints nothing.
int CancelOutcome(const common::Status& answer, const std::string& group, const std::string& step, int sent,
                  bool json, std::ostream& err);

}  // namespace cohort::cli

#endif  // COHORT_CLI_EXIT_CODES_H_
