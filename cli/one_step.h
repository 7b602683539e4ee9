// What `cohort submit --wait -- CMD ARG...` shows once its one step has
// ended, so that it reads like running CMD here: the step's kept stdout tail
// on stdout and its stderr tail on stderr, byte for byte, and an exit code
// taken from the step's own. Anything cohort itself has to say goes to
// stderr, and only when the step did not complete.
//
// Thread contract: plain functions; the Client is used by the calling thread.
#ifndef COHORT_CLI_ONE_STEP_H_
#define COHORT_CLI_ONE_STEP_H_

#include <string>

#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace cohort::cli {

// A step that ran out of time exits as under timeout(1).
constexpr int kExitTimedOut = 124;
// Ctrl-C while waiting, as a shell reports a command it interrupted
// (128 + SIGINT).
constexpr int kExitInterrupted = 130;

// The exit code of a one-step group's step (a result document's step):
//   0       it completed;
//   N       it exited with code N, unless N is 2 or 3 (cohort's own codes for
//           bad usage and an unreachable coordinator): those become 1;
//   124     it timed out;
//   128+N   it was killed by signal N;
//   1       anything else: cancelled, never started, its worker lost.
int OneStepExit(const nlohmann::json& step);

// Writes the step's kept output (the first page of the group's result is
// `first_body`) and returns OneStepExit. The page's output is used as it is
// unless the coordinator left it out or may have replaced bytes that are
// not UTF-8: then LOGS reads the bytes the step wrote.
int FinishOneStep(Client& client, const std::string& group, const std::string& first_body);

}  // namespace cohort::cli

#endif  // COHORT_CLI_ONE_STEP_H_
