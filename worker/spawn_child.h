// The child side of Spawner (spawn.h): the code that runs between clone()
// and the step's execve, and the small init that heads a step's PID
// namespace. Internal to the spawn path.
//
// ChildMain runs in a clone(CLONE_VM | CLONE_VFORK) child on a stack of its
// own, sharing the memory of whoever cloned it (the worker, or the init), so
// it reports a failure by writing to ChildArgs and the parent reads it once
// clone() returns. InitMain runs in a clone(CLONE_NEWPID) child, a copy of
// the worker rather than a sharer of its memory, as PID 1 of the step's
// namespace: it starts the step with ChildMain and tells the worker on a
// status pipe, in InitReport records, whether the step started, and later how
// it ended, since its own exit status cannot carry a killing signal (PID 1
// cannot die of its own signals).
//
// Thread contract: both run in freshly cloned single-threaded children and
// use raw syscalls only: no locks, no allocation, no sanitizer hooks.
#ifndef COHORT_WORKER_SPAWN_CHILD_H_
#define COHORT_WORKER_SPAWN_CHILD_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace cohort::worker::spawn_internal {

// The kernel's sigset_t is 8 bytes; glibc's 128-byte one is not what the raw
// syscalls take.
inline constexpr long kKernelSigsetBytes = 8;
inline constexpr long kChildFailedExit = 127;

// Where a child that did not reach the step's execve gave up.
enum class ChildStage : int32_t {
  kNone, kSignals, kSession, kCredentials, kParentDeath, kStdio, kChdir, kExec, kStartInit
};

struct ChildArgs {
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* candidates = nullptr;  // paths to try execve on, in order
  size_t candidate_count = 0;
  const char* cwd = nullptr;  // nullptr keeps the worker's
  // -1 for all three: already in place as 0, 1 and 2 (the init put them there).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  pid_t parent = 0;
  // Credentials to drop to, when change_user.
  bool change_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
  // For InitMain only: the write end of the status pipe, and the stack to
  // start the step's ChildMain on.
  int status_fd = -1;
  void* step_stack_top = nullptr;
  // Set by the init: the step child stores its pid as /proc numbers it (the
  // worker's view; inside the namespace it is 2) in step_pid.
  bool report_pid = false;
  pid_t step_pid = 0;
  // Written only by a failing child, read by the parent after clone()
  // returns; CLONE_VFORK orders the two.
  int error = 0;
  ChildStage stage = ChildStage::kNone;
};

// One record on the init's status pipe. The first is kStarted or kFailed;
// after kStarted comes kEnded, unless the init was killed first.
struct InitReport {
  enum Kind : int32_t { kStarted = 1, kFailed = 2, kEnded = 3 };
  int32_t kind = 0;
  // kStarted: the step's pid in the worker's namespace (0 if unknown).
  // kFailed: the ChildStage. kEnded: the si_code (CLD_EXITED, ...).
  int32_t a = 0;
  // kFailed: the errno. kEnded: the exit code or the signal.
  int32_t b = 0;
};

int ChildMain(void* raw);  // a ChildArgs*
int InitMain(void* raw);   // a ChildArgs*

}  // namespace cohort::worker::spawn_internal

#endif  // COHORT_WORKER_SPAWN_CHILD_H_
