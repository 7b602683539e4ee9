// Spawner starts one step as a child process, the hot path of the step
// runner: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on a private stack, then
// in the child default signal dispositions, an empty signal mask, a new
// session (hence a new process group), PR_SET_PDEATHSIG, stdin from
// /dev/null, stdout and stderr into pipes, every other fd closed, chdir, and
// execve with the step's own PATH search. Because the parent stays suspended
// until the child has exec'd or exited, the child reports a failure (and its
// errno) by writing to memory the two share, and no error pipe is needed.
//
// With StepIsolation::kPidNamespace the clone child is instead a copy of the
// worker in a new PID namespace (clone(CLONE_NEWPID), no shared memory, no
// waiting), and runs as the namespace's init (spawn_child.h): it starts the
// step as above and reports on a status pipe, first whether it started (Spawn
// waits for that), then how it ended. The init forwards the signals the
// worker sends it to every process of the namespace, and its exit makes the
// kernel kill whatever is left there.
//
// A Spawner owns the child stacks and a /dev/null descriptor. It is not
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
  pid_t pid = 0;  // the direct child: the step, or its namespace's init
  pid_t step_pid = 0;  // the step's main process (== pid without a namespace)
  UniqueFd pidfd;  // of the direct child
  UniqueFd stdout_read;
  UniqueFd stderr_read;
  // With a namespace: the init's InitReport records after kStarted.
  UniqueFd status_read;
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

  // OK if this process may start children in PID namespaces of their own
  // (it has CAP_SYS_ADMIN, and no seccomp filter or container forbids it);
  // FailedPrecondition naming the error otherwise. Starts and reaps one
  // child that exits at once.
  static common::Status ProbePidNamespace();

 private:
  common::Status EnsureReady();

  void* stack_base_ = nullptr;  // mmap'd: two stacks, the lowest page of each a guard
  size_t stack_size_ = 0;
  UniqueFd dev_null_;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_SPAWN_H_
