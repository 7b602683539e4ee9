// StepRunner runs a worker's steps as child processes and stops them for
// sure. It owns every process it starts, their process groups, the pipes that
// carry their output and the bounded tails kept of it; and, because the
// worker is made a child subreaper, it also reaps every orphan that a step
// leaves behind. A step counts as stopped only when its direct child has been
// reaped and no process of its process group is left, so a result never
// outruns the processes it describes.
//
// With RunnerOptions::isolation kPidNamespace each step also gets a PID
// namespace whose init is the runner's (spawn.h): the runner signals the
// init, which passes the signal on to every process of the namespace, setsid
// or not; the init reports the step's own exit status; and a step counts as
// stopped when its init has exited, which the kernel makes sure leaves
// nothing of the namespace alive. The TERM, grace, KILL sequence and the
// results are the same in both modes.
//
// It never blocks and owns no thread: the caller's event loop polls the
// descriptors from PollFds() (POLLIN on pidfds and pipes) together with its
// own sockets, with a timeout no later than NextDeadline(), then calls
// Process() with the current time; Process() reads output, reaps, enforces
// timeouts and the SIGTERM -> SIGKILL escalation, and hands back finished
// attempts. PollOnce() and RunUntilIdle() wrap that loop for tests and simple
// callers.
//
// Thread contract: not thread-safe; create it and call it from one thread,
// which must live as long as the runner, because a child's parent-death
// signal fires when the thread that spawned it exits. Process-wide contract:
// one StepRunner per process, and no other code in the process may create or
// wait for child processes (no system(), popen(), waitpid(-1)) nor set
// SIGCHLD to SIG_IGN. The runner reaps every child of the process it does
// not know as an orphan, which is what a subreaper must do.
#ifndef COHORT_WORKER_STEP_RUNNER_H_
#define COHORT_WORKER_STEP_RUNNER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "worker/runner_options.h"

namespace cohort::worker {

class Spawner;

class StepRunner {
 public:
  // Also makes the process a child subreaper (see BecomeSubreaper).
  explicit StepRunner(RunnerOptions options = {});
  // SIGKILLs every remaining process group and reaps what it can within a
  // bounded wait; unreported results are dropped.
  ~StepRunner();
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;

  // prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants of steps are
  // reparented to this process instead of init, so the runner can see and
  // reap them. Idempotent; the constructor calls it and cannot report a
  // failure, so a daemon should call it first thing in main() and log.
  static common::Status BecomeSubreaper();

  // Starts one attempt. InvalidArgument for a bad request or a key that is
  // still unfinished; IoError when the worker is out of fds or processes
  // (nothing started, no result will follow). A step that cannot start for
  // reasons of its own (bad cwd, command not found, not executable) is OK
  // here and comes back from the next Process() as a kSpawnFailed result.
  common::Status Start(const RunRequest& request, common::Time now);

  // SIGTERM to the attempt's process group now, SIGKILL after kill_grace.
  // False if no attempt with that key is running.
  bool Cancel(uint64_t key, common::Time now);
  // Cancel() for every running attempt, for a graceful shutdown: then
  // RunUntilIdle(now + kill_grace + a margin) before destroying the runner.
  // Returns how many were running.
  size_t CancelAll(common::Time now);

  bool Running(uint64_t key) const;
  size_t running() const { return steps_.size(); }
  // Nothing running and no result waiting for Process().
  bool idle() const { return steps_.empty() && pending_.empty(); }
  // The step's main process, as this process's PID namespace numbers it.
  std::optional<pid_t> PidOf(uint64_t key) const;
  // The output kept so far of a running attempt, for live display.
  bool PeekOutput(uint64_t key, std::string* stdout_tail, std::string* stderr_tail) const;

  // The descriptors to poll until the next Process(); the set changes as
  // attempts start and finish, so fetch it every loop iteration.
  void PollFds(std::vector<PollFd>* fds) const;
  // When Process() must run even if no descriptor is ready; nullopt if only
  // a descriptor can make progress. May be in the past.
  std::optional<common::Time> NextDeadline() const;
  // All non-blocking work, then appends the attempts that finished.
  void Process(common::Time now, std::vector<RunResult>* finished);

  // One iteration of the loop above on the runner alone: poll its fds until
  // min(NextDeadline(), limit), then Process() with steady_clock's now.
  void PollOnce(common::Time limit, std::vector<RunResult>* finished);
  // PollOnce() until idle() or limit; returns idle().
  bool RunUntilIdle(common::Time limit, std::vector<RunResult>* finished);

  const RunnerOptions& options() const { return options_; }

 private:
  struct Step;

  void ReapStep(Step& step);
  void ReapAll();
  // The direct child was reaped with this si_code and status.
  void RecordExit(Step& step, int code, int status);
  void RecordStepEnd(Step& step, int code, int status);
  // Takes what the init of an isolated step has reported.
  void ReadStatus(Step& step);
  // To the step's process group, or to its namespace's init, which forwards.
  void Signal(const Step& step, int sig);
  // Nothing of the step is left: its direct child is reaped, and its process
  // group empty, or its namespace gone with its init.
  bool Gone(const Step& step) const;
  void Terminate(Step& step, common::Time now);
  // Advances one attempt's state; true when it has finished into *finished.
  bool Advance(Step& step, common::Time now, std::vector<RunResult>* finished);
  RunResult Finish(Step& step, common::Time now);

  RunnerOptions options_;
  std::unique_ptr<Spawner> spawner_;
  std::unordered_map<uint64_t, std::unique_ptr<Step>> steps_;
  std::unordered_map<pid_t, Step*> by_pid_;  // unreaped direct children
  std::vector<RunResult> pending_;           // spawn failures not yet handed out
  std::vector<char> read_buffer_;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_STEP_RUNNER_H_
