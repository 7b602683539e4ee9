#include "worker/spawn.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

// Code that runs in the clone child shares the worker's memory (and its
// sanitizer shadow), so it must not be instrumented: a sanitizer report or a
// leak check from in there would run on a 64 KiB stack inside the worker.
#define COHORT_CHILD_CODE __attribute__((no_sanitize("address", "undefined"), noinline))

namespace cohort::worker {
namespace {

using common::Status;

constexpr size_t kChildStackSize = 64 * 1024;
// P_PIDFD (Linux 5.4) is not in glibc 2.36's idtype_t yet.
constexpr idtype_t kIdPidfd = static_cast<idtype_t>(3);
constexpr long kChildFailedExit = 127;
// The kernel's sigset_t is 8 bytes; glibc's 128-byte one is not what the raw
// syscalls take.
constexpr long kKernelSigsetBytes = 8;
constexpr std::string_view kDefaultSearchPath = "/bin:/usr/bin";  // execvp's, when PATH is unset
constexpr size_t kMaxDisplayChars = 80;

enum class ChildStage : int { kNone, kSignals, kSession, kCredentials, kParentDeath, kStdio, kChdir, kExec };

struct ChildArgs {
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* candidates = nullptr;  // paths to try execve on, in order
  size_t candidate_count = 0;
  const char* cwd = nullptr;  // nullptr keeps the worker's
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  pid_t parent = 0;
  // Credentials to drop to (RunnerOptions::run_as), when change_user.
  bool change_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
  // Written only by a failing child, read by the parent after clone()
  // returns; CLONE_VFORK orders the two.
  int error = 0;
  ChildStage stage = ChildStage::kNone;
};

// Only raw syscalls from here to the end of ChildMain: glibc wrappers such as
// sigaction or _exit are intercepted by sanitizers, and the clone child must
// not take any lock or allocate, since it shares the parent's heap.
[[noreturn]] COHORT_CHILD_CODE void ChildFail(ChildArgs* args, ChildStage stage, int error) {
  args->stage = stage;
  args->error = error;
  syscall(SYS_exit_group, kChildFailedExit);
  __builtin_unreachable();
}

COHORT_CHILD_CODE int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);

  // Dispositions first, while the mask the parent set before clone() still
  // blocks everything: a handler of the worker's must never run here, on this
  // stack, in the worker's memory. Ignored signals are reset too, because
  // SIG_IGN survives exec (a worker ignoring SIGPIPE would otherwise make
  // `yes | head` spin on EPIPE). An all-zero kernel sigaction is SIG_DFL, no
  // flags, empty mask, whatever the architecture's field order. SIGKILL and
  // SIGSTOP refuse, harmlessly.
  const unsigned long default_action[4] = {0, 0, 0, 0};
  for (int sig = 1; sig < _NSIG; ++sig) {
    syscall(SYS_rt_sigaction, sig, default_action, nullptr, kKernelSigsetBytes);
  }
  const uint64_t no_signals = 0;
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &no_signals, nullptr, kKernelSigsetBytes) != 0) {
    ChildFail(args, ChildStage::kSignals, errno);
  }

  // A new session is a new process group (pgid == pid) that also drops the
  // worker's controlling terminal, and since setpgid() only works within a
  // session, no step can join another step's group or the worker's.
  if (syscall(SYS_setsid) < 0) ChildFail(args, ChildStage::kSession, errno);

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
  // The worker may have died before the prctl: then we were already
  // reparented and the signal will never come. Nobody is left to report to.
  if (syscall(SYS_getppid) != args->parent) syscall(SYS_exit_group, kChildFailedExit);

  // The parent made sure all three sources are above 2, so none is
  // overwritten by an earlier dup3 and none equals its target.
  if (syscall(SYS_dup3, args->stdin_fd, 0, 0) < 0 || syscall(SYS_dup3, args->stdout_fd, 1, 0) < 0 ||
      syscall(SYS_dup3, args->stderr_fd, 2, 0) < 0) {
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

std::string ErrnoText(int error) { return std::error_code(error, std::generic_category()).message(); }

// argv[0] or the shell string, quoted and shortened, as error messages name it.
std::string Display(const RunRequest& request) {
  std::string_view what = request.argv.empty() ? std::string_view(request.shell) : request.argv[0];
  std::string shown(what.substr(0, kMaxDisplayChars));
  if (what.size() > kMaxDisplayChars) shown += "...";
  return "\"" + shown + "\"";
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

Status CheckEnv(const EnvVars& env, const std::string& where) {
  for (const auto& [name, value] : env) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name)) {
      return Status::InvalidArgument(where + "variable name \"" + name + "\" is empty or contains '=' or NUL");
    }
    if (HasNul(value)) return Status::InvalidArgument(where + "value of " + name + " contains a NUL byte");
  }
  return Status::Ok();
}

// Keeps fds 0..2 free for the child's dup3 targets even in a worker that
// closed its own stdio.
Status MoveAboveStdio(UniqueFd* fd) {
  if (fd->get() > 2) return Status::Ok();
  int moved = fcntl(fd->get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return Status::IoError("fcntl(F_DUPFD_CLOEXEC): " + ErrnoText(errno));
  fd->Reset(moved);
  return Status::Ok();
}

// The read end is non-blocking for the event loop; the write end stays
// blocking, because a step must see a slow reader as back-pressure, not as
// EAGAIN.
Status MakeOutputPipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::IoError("pipe2: " + ErrnoText(errno));
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  if (Status s = MoveAboveStdio(read_end); !s.ok()) return s;
  if (Status s = MoveAboveStdio(write_end); !s.ok()) return s;
  if (fcntl(read_end->get(), F_SETFL, O_NONBLOCK) != 0) {
    return Status::IoError("fcntl(O_NONBLOCK): " + ErrnoText(errno));
  }
  return Status::Ok();
}

// base_env, then the step's variables replacing same-named ones.
std::vector<std::string> MergeEnv(const EnvVars& base, const EnvVars& step) {
  std::vector<std::string> merged;
  merged.reserve(base.size() + step.size());
  auto put = [&merged](const std::string& name, const std::string& value) {
    for (std::string& entry : merged) {
      if (entry.size() > name.size() && entry[name.size()] == '=' && entry.compare(0, name.size(), name) == 0) {
        entry = name + "=" + value;
        return;
      }
    }
    merged.push_back(name + "=" + value);
  };
  for (const auto& [name, value] : base) put(name, value);
  for (const auto& [name, value] : step) put(name, value);
  return merged;
}

std::string_view SearchPath(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    if (entry.starts_with("PATH=")) return std::string_view(entry).substr(5);
  }
  return kDefaultSearchPath;
}

std::vector<std::string> ExecCandidates(const std::string& program, std::string_view search_path) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> out;
  size_t begin = 0;
  while (true) {
    size_t end = search_path.find(':', begin);
    std::string_view dir = search_path.substr(begin, end == std::string_view::npos ? end : end - begin);
    // An empty element means the working directory, as for execvp.
    if (dir.empty()) {
      out.push_back(program);
    } else {
      std::string path(dir);
      if (path.back() != '/') path += '/';
      out.push_back(path + program);
    }
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return out;
}

std::vector<char*> PointerArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// What a child that failed before exec says about it, as the step's error.
std::string ChildFailure(const ChildArgs& args, const RunRequest& request, const RunnerOptions& options,
                         const std::string& display, std::string_view search_path) {
  const std::string reason = ErrnoText(args.error);
  switch (args.stage) {
    case ChildStage::kChdir:
      return "cannot start " + display + ": cannot change directory to \"" + request.cwd + "\": " + reason;
    case ChildStage::kExec:
      if (request.argv.empty()) return "cannot start " + display + ": " + options.shell + ": " + reason;
      if (args.error == ENOENT && request.argv[0].find('/') == std::string::npos) {
        return "cannot start " + display + ": " + reason + " (searched PATH \"" + std::string(search_path) + "\")";
      }
      return "cannot start " + display + ": " + reason;
    case ChildStage::kSignals:
      return "cannot start " + display + ": resetting signals: " + reason;
    case ChildStage::kSession:
      return "cannot start " + display + ": setsid: " + reason;
    case ChildStage::kCredentials:
      return "cannot start " + display + ": switching to uid " + std::to_string(args.uid) + ": " + reason;
    case ChildStage::kParentDeath:
      return "cannot start " + display + ": prctl(PR_SET_PDEATHSIG): " + reason;
    case ChildStage::kStdio:
      return "cannot start " + display + ": redirecting stdio: " + reason;
    case ChildStage::kNone:
      break;
  }
  return "";
}

}  // namespace

Status ValidateRequest(const RunRequest& request, const RunnerOptions& options) {
  const std::string where = "step " + std::to_string(request.key) + ": ";
  if (request.argv.empty() && request.shell.empty()) {
    return Status::InvalidArgument(where + "neither argv nor shell is set");
  }
  if (!request.argv.empty() && !request.shell.empty()) {
    return Status::InvalidArgument(where + "both argv and shell are set; use one");
  }
  if (!request.argv.empty() && request.argv[0].empty()) {
    return Status::InvalidArgument(where + "argv[0] is empty");
  }
  for (size_t i = 0; i < request.argv.size(); ++i) {
    if (HasNul(request.argv[i])) {
      return Status::InvalidArgument(where + "argv[" + std::to_string(i) + "] contains a NUL byte");
    }
  }
  if (HasNul(request.shell)) return Status::InvalidArgument(where + "shell command contains a NUL byte");
  if (HasNul(request.cwd)) return Status::InvalidArgument(where + "cwd contains a NUL byte");
  if (Status s = CheckEnv(request.env, where + "env: "); !s.ok()) return s;
  if (Status s = CheckEnv(options.base_env, "runner base_env: "); !s.ok()) return s;
  if (!request.shell.empty() && (options.shell.empty() || HasNul(options.shell))) {
    return Status::InvalidArgument(where + "the runner has no usable shell configured");
  }
  return Status::Ok();
}

Spawner::~Spawner() {
  if (stack_base_ != nullptr) munmap(stack_base_, stack_size_);
}

Status Spawner::EnsureReady() {
  if (stack_base_ == nullptr) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = kChildStackSize + page;
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return Status::IoError("mmap of the spawn stack: " + ErrnoText(errno));
    // A guard page, so an overflow in the child faults instead of silently
    // writing into whatever the worker mapped below.
    mprotect(base, page, PROT_NONE);
    stack_base_ = base;
    stack_size_ = size;
  }
  if (!dev_null_.valid()) {
    UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::IoError("open /dev/null: " + ErrnoText(errno));
    if (Status s = MoveAboveStdio(&fd); !s.ok()) return s;
    dev_null_ = std::move(fd);
  }
  return Status::Ok();
}

Status Spawner::Spawn(const RunRequest& request, const RunnerOptions& options, SpawnedChild* child,
                      std::string* step_error) {
  const std::string display = Display(request);
  if (Status s = EnsureReady(); !s.ok()) return Status::IoError("cannot start " + display + ": " + s.message());

  // Everything the child reads is prepared here: it may not allocate.
  std::vector<std::string> env = MergeEnv(options.base_env, request.env);
  std::vector<std::string> argv =
      request.argv.empty() ? std::vector<std::string>{options.shell, "-c", request.shell} : request.argv;
  const std::string_view search_path = SearchPath(env);
  std::vector<std::string> candidates =
      request.argv.empty() ? std::vector<std::string>{options.shell} : ExecCandidates(argv[0], search_path);
  std::vector<char*> argv_ptrs = PointerArray(argv);
  std::vector<char*> env_ptrs = PointerArray(env);
  std::vector<const char*> candidate_ptrs;
  candidate_ptrs.reserve(candidates.size());
  for (const std::string& c : candidates) candidate_ptrs.push_back(c.c_str());

  UniqueFd out_read, out_write, err_read, err_write;
  if (Status s = MakeOutputPipe(&out_read, &out_write); !s.ok()) {
    return Status::IoError("cannot start " + display + ": " + s.message());
  }
  if (Status s = MakeOutputPipe(&err_read, &err_write); !s.ok()) {
    return Status::IoError("cannot start " + display + ": " + s.message());
  }

  ChildArgs args;
  args.argv = argv_ptrs.data();
  args.envp = env_ptrs.data();
  args.candidates = candidate_ptrs.data();
  args.candidate_count = candidate_ptrs.size();
  args.cwd = request.cwd.empty() ? nullptr : request.cwd.c_str();
  args.stdin_fd = dev_null_.get();
  args.stdout_fd = out_write.get();
  args.stderr_fd = err_write.get();
  args.parent = getpid();
  if (options.run_as) {
    args.change_user = true;
    args.uid = options.run_as->uid;
    args.gid = options.run_as->gid;
    args.groups = options.run_as->groups.data();
    args.group_count = options.run_as->groups.size();
  }

  // Block every signal across clone() so none is handled in the child before
  // it has reset the dispositions; the child unblocks its own copy.
  const uint64_t all_signals = ~uint64_t{0};
  uint64_t saved_mask = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all_signals, &saved_mask, kKernelSigsetBytes);
  int pidfd = -1;
  void* stack_top = static_cast<char*>(stack_base_) + stack_size_;
  pid_t pid = clone(ChildMain, stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
  const int clone_errno = errno;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_mask, nullptr, kKernelSigsetBytes);
  if (pid < 0) return Status::IoError("cannot start " + display + ": clone: " + ErrnoText(clone_errno));

  UniqueFd pidfd_owner(pidfd);
  // Only the child may hold the write ends, or EOF would never come.
  out_write.Reset();
  err_write.Reset();

  if (args.stage != ChildStage::kNone) {
    // The child has called exit_group already; this wait is for the last
    // few microseconds of its teardown.
    siginfo_t info{};
    while (waitid(kIdPidfd, static_cast<id_t>(pidfd_owner.get()), &info, WEXITED) != 0 && errno == EINTR) {
    }
    *step_error = ChildFailure(args, request, options, display, search_path);
    return Status::Ok();
  }

  child->pid = pid;
  child->pidfd = std::move(pidfd_owner);
  child->stdout_read = std::move(out_read);
  child->stderr_read = std::move(err_read);
  return Status::Ok();
}

}  // namespace cohort::worker
