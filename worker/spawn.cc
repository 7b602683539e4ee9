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

#include "worker/spawn_child.h"

namespace cohort::worker {
namespace {

using common::Status;
using spawn_internal::ChildArgs;
using spawn_internal::ChildStage;
using spawn_internal::InitReport;
using spawn_internal::kKernelSigsetBytes;

constexpr size_t kChildStackSize = 64 * 1024;
// P_PIDFD (Linux 5.4) is not in glibc 2.36's idtype_t yet.
constexpr idtype_t kIdPidfd = static_cast<idtype_t>(3);
constexpr std::string_view kDefaultSearchPath = "/bin:/usr/bin";  // execvp's, when PATH is unset
constexpr size_t kMaxDisplayChars = 80;

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
Status MakeOutputPipe(UniqueFd* read_end, UniqueFd* write_end, bool nonblocking = true) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::IoError("pipe2: " + ErrnoText(errno));
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  if (Status s = MoveAboveStdio(read_end); !s.ok()) return s;
  if (Status s = MoveAboveStdio(write_end); !s.ok()) return s;
  if (nonblocking && fcntl(read_end->get(), F_SETFL, O_NONBLOCK) != 0) {
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
    case ChildStage::kStartInit:
      return "cannot start " + display + ": starting it in its PID namespace: " + reason;
    case ChildStage::kNone:
      break;
  }
  return "";
}

// Clones with every signal blocked, so that none is handled in the child
// before it has reset the dispositions; the step child unblocks its own copy,
// the init keeps them blocked to take them with sigtimedwait.
pid_t CloneBlocked(int (*fn)(void*), void* stack_top, int flags, ChildArgs* args, int* pidfd, int* clone_errno) {
  const uint64_t all_signals = ~uint64_t{0};
  uint64_t saved_mask = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all_signals, &saved_mask, kKernelSigsetBytes);
  pid_t pid = clone(fn, stack_top, flags | CLONE_PIDFD | SIGCHLD, args, pidfd);
  *clone_errno = errno;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_mask, nullptr, kKernelSigsetBytes);
  return pid;
}

void WaitGone(const UniqueFd& pidfd) {
  siginfo_t info{};
  while (waitid(kIdPidfd, static_cast<id_t>(pidfd.get()), &info, WEXITED) != 0 && errno == EINTR) {
  }
}

// The init's first record: whether the step started. False if the init died
// without saying.
bool ReadFirstReport(const UniqueFd& status, InitReport* report) {
  while (true) {
    ssize_t n = read(status.get(), report, sizeof *report);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(sizeof *report);
  }
}

int ExitAtOnce(void*) { return static_cast<int>(syscall(SYS_exit_group, 0)); }

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
    // Two stacks, each above a guard page, so that an overflow in a child
    // faults instead of silently writing into what lies below: the step
    // child's, and the init's, which waits on its own while the step child
    // runs on the other.
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = 2 * (kChildStackSize + page);
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return Status::IoError("mmap of the spawn stack: " + ErrnoText(errno));
    mprotect(base, page, PROT_NONE);
    mprotect(static_cast<char*>(base) + size / 2, page, PROT_NONE);
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
  EnvVars base = options.base_env;
  if (request.run_as) {
    for (auto& [name, value] : base) {
      if (name == "HOME") value = request.home.empty() ? "/" : request.home;
    }
  }
  std::vector<std::string> env = MergeEnv(base, request.env);
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

  UniqueFd out_read, out_write, err_read, err_write, status_read, status_write;
  const bool isolated = options.isolation == StepIsolation::kPidNamespace;
  for (auto [read_end, write_end] : {std::pair{&out_read, &out_write}, std::pair{&err_read, &err_write}}) {
    if (Status s = MakeOutputPipe(read_end, write_end); !s.ok()) {
      return Status::IoError("cannot start " + display + ": " + s.message());
    }
  }
  if (isolated) {
    // Blocking at first: Spawn waits for the init's first report.
    if (Status s = MakeOutputPipe(&status_read, &status_write, /*nonblocking=*/false); !s.ok()) {
      return Status::IoError("cannot start " + display + ": " + s.message());
    }
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
  const std::optional<StepCredentials>& run_as = request.run_as ? request.run_as : options.run_as;
  if (run_as) {
    args.change_user = true;
    args.uid = run_as->uid;
    args.gid = run_as->gid;
    args.groups = run_as->groups.data();
    args.group_count = run_as->groups.size();
  }
  args.status_fd = status_write.get();
  const size_t half = stack_size_ / 2;
  args.step_stack_top = static_cast<char*>(stack_base_) + half;

  int pidfd = -1;
  int clone_errno = 0;
  void* stack_top = static_cast<char*>(stack_base_) + stack_size_;
  pid_t pid = isolated ? CloneBlocked(spawn_internal::InitMain, stack_top, CLONE_NEWPID, &args, &pidfd, &clone_errno)
                       : CloneBlocked(spawn_internal::ChildMain, stack_top, CLONE_VM | CLONE_VFORK, &args, &pidfd,
                                      &clone_errno);
  if (pid < 0) {
    return Status::IoError("cannot start " + display + ": clone" + (isolated ? "(CLONE_NEWPID)" : "") + ": " +
                           ErrnoText(clone_errno));
  }

  UniqueFd pidfd_owner(pidfd);
  // Only the child may hold the write ends, or EOF would never come.
  out_write.Reset();
  err_write.Reset();
  status_write.Reset();

  pid_t step_pid = pid;
  if (isolated) {
    InitReport report;
    if (!ReadFirstReport(status_read, &report) || report.kind == InitReport::kEnded) {
      kill(pid, SIGKILL);
      WaitGone(pidfd_owner);
      return Status::IoError("cannot start " + display + ": its PID namespace's init ended before starting it");
    }
    if (report.kind == InitReport::kFailed) {
      args.stage = static_cast<ChildStage>(report.a);
      args.error = report.b;
    } else if (report.a > 0) {
      step_pid = report.a;
    }
    if (fcntl(status_read.get(), F_SETFL, O_NONBLOCK) != 0) {
      kill(pid, SIGKILL);
      WaitGone(pidfd_owner);
      return Status::IoError("cannot start " + display + ": fcntl(O_NONBLOCK): " + ErrnoText(errno));
    }
  }
  if (args.stage != ChildStage::kNone) {
    // The child has called exit_group already; this wait is for the last
    // few microseconds of its teardown.
    WaitGone(pidfd_owner);
    *step_error = ChildFailure(args, request, options, display, search_path);
    return Status::Ok();
  }

  child->pid = pid;
  child->step_pid = step_pid;
  child->pidfd = std::move(pidfd_owner);
  child->stdout_read = std::move(out_read);
  child->stderr_read = std::move(err_read);
  child->status_read = std::move(status_read);
  return Status::Ok();
}

Status Spawner::ProbePidNamespace() {
  Spawner probe;
  if (Status s = probe.EnsureReady(); !s.ok()) return s;
  ChildArgs unused;
  int pidfd = -1;
  int clone_errno = 0;
  pid_t pid = CloneBlocked(ExitAtOnce, static_cast<char*>(probe.stack_base_) + probe.stack_size_,
                           CLONE_NEWPID | CLONE_VM | CLONE_VFORK, &unused, &pidfd, &clone_errno);
  if (pid < 0) return Status::FailedPrecondition("clone(CLONE_NEWPID): " + ErrnoText(clone_errno));
  UniqueFd owner(pidfd);
  WaitGone(owner);
  return Status::Ok();
}

}  // namespace cohort::worker
