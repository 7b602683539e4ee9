// The values that cross the step runner's API: what to run (RunRequest) and
// what happened (RunResult); how the runner behaves is in runner_options.h.
// They are
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

// Variables every step's environment holds: the name of its worker, and the
// token of that worker's life, by which the worker's next life finds what
// this one left running (life_record.h, leftovers.h).
inline constexpr char kWorkerEnv[] = "COHORT_WORKER";
inline constexpr char kLifeEnv[] = "COHORT_WORKER_LIFE";
// Which attempt a step is, for the step itself.
inline constexpr char kGroupEnv[] = "COHORT_GROUP";
inline constexpr char kStepEnv[] = "COHORT_STEP";
inline constexpr char kAttemptEnv[] = "COHORT_ATTEMPT";

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// A Unix user's ids, as a step takes them before it execs: supplementary
// groups, then gid, then uid (real, effective and saved), so that it cannot
// regain the worker's privileges.
struct StepCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// How a step's processes are kept together, so that stopping the step stops
// all of them.
enum class StepIsolation {
  // Its own session and process group. A process that calls setsid() leaves
  // the group, and lives on after the step unless the leftover scan finds it.
  kProcessGroup,
  // Its own PID namespace too, whose init is the runner's: when the init
  // exits, the kernel kills whatever is left in the namespace, so nothing a
  // step starts outlives it. Needs CAP_SYS_ADMIN (a root worker).
  kPidNamespace,
};

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
  // Whom this step runs as, instead of RunnerOptions::run_as, and the HOME
  // its base environment then holds; nullopt keeps the runner's.
  std::optional<StepCredentials> run_as;
  std::string home;
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
  // step's main process's own (the direct child, or under kPidNamespace the
  // child of the runner's init). timed_out and cancelled are independent: both are set
  // when a cancel arrives while a timeout is already being enforced.
  bool timed_out = false;
  bool cancelled = false;
  bool escalated_to_kill = false;  // SIGKILL was sent to the process group
  // Of the step's main process as the worker's PID namespace numbers it; 0
  // if none started.
  pid_t pid = 0;
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
