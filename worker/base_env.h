// Which variables of the base environment steps start from (DefaultBaseEnv,
// runner_options.h) the worker keeps for itself under a command policy
// (step_policy.h): PATH, which picks the programs an allowed script runs by
// name, and HOME, which picks the dot-files its tools read (.gitconfig,
// .bash_profile, ...). A step that sets either is refused there, so the
// base values, the worker's, are the ones the step sees.
//
// Thread contract: a pure function, callable from any thread.
#ifndef COHORT_WORKER_BASE_ENV_H_
#define COHORT_WORKER_BASE_ENV_H_

#include <string_view>

namespace cohort::worker {

// True for PATH and HOME.
bool WorkerOwnedVariable(std::string_view name);

}  // namespace cohort::worker

#endif  // COHORT_WORKER_BASE_ENV_H_
