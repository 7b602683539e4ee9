// Spawner starts one step as a child process, the hot path of the step
// runner: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on a private stack, then
// in the child default signal dispositions, an empty signal mask, a new
// session (hence a new process group), PR_SET_PDEATHSIG, stdin from
// /dev/null, stdout and stderr into pipes, every other fd closed, chdir, and
// execve with the step's own PATH search. Because the parent stays suspended
// until the child has exec'd or exited, the child reports a failure (and its
// errno) by writing to memory the two share, and no error pipe is needed.
//
// A Spawner owns the child stack and a /dev/null descriptor. It is not
// thread-safe: one thread spawns at a time, and the thread that spawns should
// outlive the children, because PR_SET_PDEATHSIG fires when the spawning
// thread (not process) exits.
#ifndef COHORT_WORKER_SPAWN_H_
#define COHORT_WORKER_SPAWN_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "common/status.h"
#include "worker/runner_options.h"
#include "worker/unique_fd.h"

namespace cohort::worker {

// A running child. The read ends are non-blocking; every fd is close-on-exec.
struct SpawnedChild {
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd stdout_read;
  UniqueFd stderr_read;
};

// InvalidArgument when the request cannot be run as written: neither or both
// of argv and shell, an empty program name, NUL bytes, a bad variable name.
common::Status ValidateRequest(const RunRequest& request, const RunnerOptions& options);

class Spawner {
 public:
  Spawner() = default;
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // Three outcomes. Not OK: the worker itself could not try (out of fds or
  // processes); nothing was started. OK with *step_error set: the step cannot
  // start (bad cwd, command not found, not executable); its child has already
  // been reaped and *step_error reads `cannot start "cmd": <reason>`. OK
  // otherwise: *child is running. `request` must have passed ValidateRequest.
  common::Status Spawn(const RunRequest& request, const RunnerOptions& options, SpawnedChild* child,
                       std::string* step_error);

 private:
  common::Status EnsureReady();

  void* stack_base_ = nullptr;  // mmap'd, lowest page a guard
  size_t stack_size_ = 0;
  UniqueFd dev_null_;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_SPAWN_H_
