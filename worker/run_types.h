// The values that cross the step runner's API: what to run (RunRequest), how
// the runner behaves (RunnerOptions) and what happened (RunResult). They are
// plain copyable data with no behaviour beyond formatting, shared by the
// runner and its spawn path, and safe to hand between threads.
#ifndef COHORT_WORKER_RUN_TYPES_H_
#define COHORT_WORKER_RUN_TYPES_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"

namespace cohort::worker {

// The variable every step's environment holds: the name of its worker, by
// which a restarted worker finds what its previous life left (leftovers.h).
inline constexpr char kWorkerEnv[] = "COHORT_WORKER";

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// One attempt of one step. Exactly one of argv and shell is set.
struct RunRequest {
  // Caller's identifier, unique among the runner's unfinished attempts.
  uint64_t key = 0;
  // Run argv[0] directly. Without a '/', it is looked up in the PATH of the
  // step's final environment (base_env plus env), not the worker's.
  std::vector<std::string> argv;
  // Or run this string with `<RunnerOptions::shell> -c`.
  std::string shell;
  // Added to RunnerOptions::base_env; a name given here replaces the base
  // value, and a later duplicate replaces an earlier one.
  EnvVars env;
  // Working directory; empty keeps the worker's.
  std::string cwd;
  // Wall-clock budget from Start(); nullopt means none.
  std::optional<common::Duration> timeout;
};

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
  common::Duration give_up_after_kill = std::chrono::seconds(10);
  EnvVars base_env = DefaultBaseEnv();
  // The interpreter for RunRequest::shell.
  std::string shell = "/bin/sh";
  // When set, each step drops to this user before it execs: supplementary
  // groups, then gid, then uid (real, effective and saved), so it cannot
  // regain the worker's privileges. Needs a worker that may setuid (root).
  struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
  };
  std::optional<Credentials> run_as;
};

struct RunResult {
  enum class Kind {
    kExited,       // exit_code is set
    kSignaled,     // signal is set
    kSpawnFailed,  // nothing ran; error says why
    kLost,         // the child was reaped outside the runner; status unknown
  };

  uint64_t key = 0;
  Kind kind = Kind::kSpawnFailed;
  int exit_code = -1;
  int signal = 0;
  bool core_dumped = false;
  // These flags describe how the attempt ended, the status above is still the
  // direct child's own. timed_out and cancelled are independent: both are set
  // when a cancel arrives while a timeout is already being enforced.
  bool timed_out = false;
  bool cancelled = false;
  bool escalated_to_kill = false;  // SIGKILL was sent to the process group
  pid_t pid = 0;                   // of the direct child; 0 if none started
  common::Time start{};
  common::Time end{};
  std::string stdout_tail;
  std::string stderr_tail;
  uint64_t stdout_bytes = 0;  // total written, including dropped bytes
  uint64_t stderr_bytes = 0;
  bool stdout_truncated = false;  // the tail misses earlier bytes
  bool stderr_truncated = false;
  // Why a spawn failed; otherwise empty unless stopping the attempt went
  // wrong (processes that survived SIGKILL, a lost exit status).
  std::string error;

  bool ok() const { return kind == Kind::kExited && exit_code == 0; }
  // "exited 0", "killed by SIGKILL after timeout (escalated)", ... for logs.
  std::string Summary() const;
};

// A descriptor the caller's poll loop must watch for the runner.
struct PollFd {
  int fd = -1;
  short events = 0;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_RUN_TYPES_H_
