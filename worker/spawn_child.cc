#include "worker/spawn_child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

// Code that runs in a clone child must not be instrumented: it shares the
// worker's memory (and its sanitizer shadow), or is a copy of a
// multi-threaded process whose sanitizer locks some other thread may hold,
// and it runs on a 64 KiB stack.
#define COHORT_CHILD_CODE __attribute__((no_sanitize("address", "undefined"), noinline))

namespace cohort::worker::spawn_internal {
namespace {

// Where the init keeps the write end of its status pipe.
constexpr int kStatusFd = 3;

// Only raw syscalls from here to the end of the file: glibc wrappers such as
// sigaction or _exit are intercepted by sanitizers, and the clone child must
// not take any lock or allocate, since it shares the parent's heap.
[[noreturn]] COHORT_CHILD_CODE void ChildFail(ChildArgs* args, ChildStage stage, int error) {
  args->stage = stage;
  args->error = error;
  syscall(SYS_exit_group, kChildFailedExit);
  __builtin_unreachable();
}

// An all-zero kernel sigaction is SIG_DFL, no flags, empty mask, whatever the
// architecture's field order. SIGKILL and SIGSTOP refuse, harmlessly.
COHORT_CHILD_CODE void DefaultDispositions() {
  const unsigned long default_action[4] = {0, 0, 0, 0};
  for (int sig = 1; sig < _NSIG; ++sig) {
    syscall(SYS_rt_sigaction, sig, default_action, nullptr, kKernelSigsetBytes);
  }
}

// This process's pid in the namespace /proc was mounted for (the host's, as
// no step has a mount namespace of its own); 0 if /proc cannot say.
COHORT_CHILD_CODE pid_t PidSeenByProc() {
  char buf[16];
  long n = syscall(SYS_readlinkat, AT_FDCWD, "/proc/self", buf, sizeof buf);
  if (n <= 0 || n >= static_cast<long>(sizeof buf)) return 0;
  pid_t pid = 0;
  for (long i = 0; i < n; ++i) {
    if (buf[i] < '0' || buf[i] > '9') return 0;
    pid = pid * 10 + (buf[i] - '0');
  }
  return pid;
}

COHORT_CHILD_CODE bool Report(int fd, int32_t kind, int32_t a, int32_t b) {
  InitReport report;
  report.kind = kind;
  report.a = a;
  report.b = b;
  // At most PIPE_BUF bytes: written whole or not at all.
  long n;
  do {
    n = syscall(SYS_write, fd, &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<long>(sizeof report);
}

[[noreturn]] COHORT_CHILD_CODE void InitFail(ChildStage stage, int error) {
  Report(kStatusFd, InitReport::kFailed, static_cast<int32_t>(stage), error);
  syscall(SYS_exit_group, kChildFailedExit);
  __builtin_unreachable();
}

// Reaps every child that has ended; the step's own end goes to the worker.
// True once the step has ended and the namespace holds nothing else.
COHORT_CHILD_CODE bool ReapAndReport(pid_t step, bool* step_ended) {
  while (true) {
    int status = 0;
    long pid = syscall(SYS_wait4, -1, &status, WNOHANG, nullptr);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) return *step_ended;  // ECHILD: nobody is left
    if (pid == 0) return false;
    if (pid != step) continue;  // an orphan: reaping it is all it needs
    *step_ended = true;
    if (WIFEXITED(status)) {
      Report(kStatusFd, InitReport::kEnded, CLD_EXITED, WEXITSTATUS(status));
    } else {
      Report(kStatusFd, InitReport::kEnded, WCOREDUMP(status) ? CLD_DUMPED : CLD_KILLED, WTERMSIG(status));
    }
  }
}

}  // namespace

COHORT_CHILD_CODE int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);

  // Dispositions first, while the mask the parent set before clone() still
  // blocks everything: a handler of the worker's must never run here, on this
  // stack, in the worker's memory. Ignored signals are reset too, because
  // SIG_IGN survives exec (a worker ignoring SIGPIPE would otherwise make
  // `yes | head` spin on EPIPE).
  DefaultDispositions();
  const uint64_t no_signals = 0;
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &no_signals, nullptr, kKernelSigsetBytes) != 0) {
    ChildFail(args, ChildStage::kSignals, errno);
  }

  // A new session is a new process group (pgid == pid) that also drops the
  // worker's controlling terminal, and since setpgid() only works within a
  // session, no step can join another step's group or the worker's.
  if (syscall(SYS_setsid) < 0) ChildFail(args, ChildStage::kSession, errno);
  if (args->report_pid) args->step_pid = PidSeenByProc();

  // Before PR_SET_PDEATHSIG, which a change of credentials clears. Raw
  // syscalls act on this process alone, which is what is wanted here (glibc's
  // wrappers would try to change every thread of the worker). Groups first,
  // while we may still set them; uid last, as it gives up that right.
  if (args->change_user) {
    if (syscall(SYS_setgroups, args->group_count, args->groups) != 0 ||
        syscall(SYS_setresgid, args->gid, args->gid, args->gid) != 0 ||
        syscall(SYS_setresuid, args->uid, args->uid, args->uid) != 0) {
      ChildFail(args, ChildStage::kCredentials, errno);
    }
  }

  if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    ChildFail(args, ChildStage::kParentDeath, errno);
  }
  // The parent may have died before the prctl: then we were already
  // reparented and the signal will never come. Nobody is left to report to.
  if (syscall(SYS_getppid) != args->parent) syscall(SYS_exit_group, kChildFailedExit);

  // The parent made sure all three sources are above 2, so none is
  // overwritten by an earlier dup3 and none equals its target.
  if (args->stdin_fd >= 0 &&
      (syscall(SYS_dup3, args->stdin_fd, 0, 0) < 0 || syscall(SYS_dup3, args->stdout_fd, 1, 0) < 0 ||
       syscall(SYS_dup3, args->stderr_fd, 2, 0) < 0)) {
    ChildFail(args, ChildStage::kStdio, errno);
  }
  // Our own fds are close-on-exec already; this also catches descriptors
  // other code in the worker opened without O_CLOEXEC. ENOSYS before 5.9 is
  // tolerable for the same reason.
  syscall(SYS_close_range, 3U, ~0U, 0U);

  if (args->cwd != nullptr && syscall(SYS_chdir, args->cwd) != 0) {
    ChildFail(args, ChildStage::kChdir, errno);
  }

  // execvp's rules, on the step's PATH: keep looking past "not here", stop at
  // anything else, and report EACCES if some candidate existed but was not
  // executable. Unlike execvp there is no /bin/sh fallback on ENOEXEC.
  int error = ENOENT;
  bool denied = false;
  for (size_t i = 0; i < args->candidate_count; ++i) {
    syscall(SYS_execve, args->candidates[i], args->argv, args->envp);
    error = errno;
    if (error == EACCES) {
      denied = true;
    } else if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV &&
               error != ETIMEDOUT) {
      ChildFail(args, ChildStage::kExec, error);
    }
  }
  ChildFail(args, ChildStage::kExec, denied ? EACCES : error);
}

COHORT_CHILD_CODE int InitMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);

  // Every signal stays blocked, as the parent set it across clone(): the
  // init takes them with sigtimedwait below. (A PID 1 drops a signal it has
  // no handler for only while the signal is not blocked.)
  DefaultDispositions();

  // The step's stdio in place for it to inherit, the status pipe at a known
  // number, and nothing else of the worker's: the init never execs, so
  // close-on-exec does not close anything for it.
  // Stdio first: its sources are above 2 but one may be kStatusFd itself,
  // which moving the status pipe there would overwrite. A failure is
  // reported on the status pipe where it still is.
  if (syscall(SYS_dup3, args->stdin_fd, 0, 0) < 0 || syscall(SYS_dup3, args->stdout_fd, 1, 0) < 0 ||
      syscall(SYS_dup3, args->stderr_fd, 2, 0) < 0) {
    const int error = errno;
    Report(args->status_fd, InitReport::kFailed, static_cast<int32_t>(ChildStage::kStdio), error);
    syscall(SYS_exit_group, kChildFailedExit);
  }
  if (args->status_fd != kStatusFd && syscall(SYS_dup3, args->status_fd, kStatusFd, O_CLOEXEC) < 0) {
    syscall(SYS_exit_group, kChildFailedExit);  // the worker sees EOF
  }
  syscall(SYS_close_range, kStatusFd + 1U, ~0U, 0U);

  // Out of the worker's session, so that its terminal's signals are not
  // forwarded to the step.
  if (syscall(SYS_setsid) < 0) InitFail(ChildStage::kSession, errno);
  // A dead worker takes the init along, and the kernel the whole namespace.
  if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) InitFail(ChildStage::kParentDeath, errno);

  args->stdin_fd = args->stdout_fd = args->stderr_fd = -1;
  args->parent = static_cast<pid_t>(syscall(SYS_getpid));
  args->report_pid = true;
  pid_t step = clone(ChildMain, args->step_stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD, args);
  if (step < 0) InitFail(ChildStage::kStartInit, errno);
  if (args->stage != ChildStage::kNone) {
    int status = 0;
    while (syscall(SYS_wait4, step, &status, 0, nullptr) < 0 && errno == EINTR) {
    }
    InitFail(args->stage, args->error);
  }
  // A worker that died before the prctl above is noticed here (EPIPE, as
  // SIGPIPE is blocked): then the init exits, and the step with it.
  if (!Report(kStatusFd, InitReport::kStarted, args->step_pid, 0)) syscall(SYS_exit_group, 0);
  // The step holds the output pipes; the init holds no write end of them.
  syscall(SYS_dup3, 0, 1, 0);
  syscall(SYS_dup3, 0, 2, 0);

  const uint64_t all_signals = ~uint64_t{0};
  bool step_ended = false;
  while (true) {
    siginfo_t info{};
    long sig = syscall(SYS_rt_sigtimedwait, &all_signals, &info, nullptr, kKernelSigsetBytes);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      // Exits with what is left once the step has ended; the kernel kills
      // anything that starts in between.
      if (ReapAndReport(step, &step_ended)) syscall(SYS_exit_group, 0);
    } else if (info.si_code <= 0) {
      // Sent by a process (the worker stopping the step), not raised by the
      // kernel for the init itself (SIGPIPE): for every process of the
      // namespace but the init, however it left the step's process group.
      syscall(SYS_kill, -1, sig);
      // A process that stopped itself after the worker's SIGCONT went by
      // would hold this signal pending for ever: continue it after the
      // signal, in this order, whatever order the two reached the init in.
      if (sig != SIGCONT && sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU) {
        syscall(SYS_kill, -1, SIGCONT);
      }
    }
  }
}

}  // namespace cohort::worker::spawn_internal
