// How the step runner behaves: what it keeps of each step's output, how it
// stops steps, the environment and interpreter steps start with, and whom
// they run as. The defaults read the passwd database (DefaultBaseEnv), so
// this is the runner's header, not one of the pure value types of
// worker/run_types.h.
//
// Thread contract: plain values; DefaultBaseEnv may be called from any thread.
#ifndef COHORT_WORKER_RUNNER_OPTIONS_H_
#define COHORT_WORKER_RUNNER_OPTIONS_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/time.h"
#include "worker/run_types.h"

namespace cohort::worker {

// The clean environment steps start from. Nothing of the worker's own
// environment leaks into steps, so a step behaves the same whoever started the
// worker: PATH=/usr/local/bin:/usr/bin:/bin, HOME=<home directory of the
// worker's effective user in the passwd database, or "/">, LANG=C.UTF-8.
EnvVars DefaultBaseEnv();

struct RunnerOptions {
  // Bytes of stdout and of stderr kept per attempt (the last ones).
  size_t tail_bytes = 64 * 1024;
  // Between SIGTERM to the process group and SIGKILL to it.
  common::Duration kill_grace = std::chrono::seconds(5);
  // After SIGKILL, how long to wait for the group to empty before reporting
  // anyway. Only a process stuck in uninterruptible sleep, or a zombie whose
  // parent escaped the group and does not reap it, can outlast a SIGKILL.
  common::Duration give_up_after_kill = std::chrono::milliseconds(common::kStopAfterKillMs);
  EnvVars base_env = DefaultBaseEnv();
  // The interpreter for RunRequest::shell.
  std::string shell = "/bin/sh";
  // When set, each step drops to this user before it execs, unless its
  // RunRequest names a user of its own. Needs a worker that may setuid (root).
  using Credentials = StepCredentials;
  std::optional<Credentials> run_as;
  // kPidNamespace needs CAP_SYS_ADMIN: see ProbePidNamespace (spawn.h).
  StepIsolation isolation = StepIsolation::kProcessGroup;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_RUNNER_OPTIONS_H_
