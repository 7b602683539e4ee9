// Integration tests of the step runner stopping steps: timeouts, cancel,
// steps that trap or ignore TERM and the escalation to KILL, background
// children and grandchildren, the subreaper and orphans, setsid escapes, and
// the destructor. Real child processes, and every wait is a poll of the
// runner's own descriptors bounded by a deadline, never a fixed sleep.
#include "worker/step_runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/runner_test_util.h"
#include "worker/unique_fd.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Duration;
using common::Time;
using runner_test::Argv;
using runner_test::CountProcessesWithArg;
using runner_test::GroupExists;
using runner_test::kBudget;
using runner_test::ProcessExists;
using runner_test::Seconds;
using runner_test::Shell;
using runner_test::UniqueSleepArg;
using runner_test::WaitFor;
using runner_test::WaitForAll;
using runner_test::WaitForLines;
using runner_test::WaitStopped;
using runner_test::WithGrace;
using namespace std::chrono_literals;

TEST_CASE("a timeout stops a sleeping step promptly", "[runner]") {
  StepRunner runner;
  RunRequest req = Argv(1, {"sleep", "30"});
  req.timeout = 300ms;
  const Time before = Clock::now();
  REQUIRE(runner.Start(req, before).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  const Time after = Clock::now();
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK(r->timed_out);
  CHECK_FALSE(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  const Duration lateness = (r->end - r->start) - 300ms;
  INFO("lateness past the 0.3 s timeout: " << Seconds(lateness) * 1000 << " ms (reported), "
                                           << Seconds(after - before - 300ms) * 1000 << " ms (observed)");
  CHECK(lateness >= Duration::zero());
  CHECK(after - before < 300ms + 1s);
}

TEST_CASE("stopping a shell step kills its background children too", "[runner]") {
  const std::string arg = UniqueSleepArg();
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "sleep " + arg + " & echo $!; sleep " + arg + " & echo $!; wait"), Clock::now())
              .ok());
  std::vector<std::string> pids = WaitForLines(runner, 1, 2);
  const pid_t pgid = *runner.PidOf(1);
  REQUIRE(runner.Cancel(1, Clock::now()));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK_FALSE(GroupExists(pgid));
  for (const std::string& pid : pids) CHECK_FALSE(ProcessExists(std::stoi(pid)));
  CHECK(CountProcessesWithArg(arg) == 0);
}

TEST_CASE("a step is reported only once its lingering background child is gone", "[runner]") {
  SECTION("the lingerer ignores TERM and exits by itself within the grace") {
    StepRunner runner(WithGrace(5s));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep 0.5 & echo $!; exit 4"), Clock::now()).ok());
    std::optional<RunResult> r = WaitFor(runner, 1);
    REQUIRE(r);
    INFO(r->Summary());
    CHECK(r->kind == RunResult::Kind::kExited);
    CHECK(r->exit_code == 4);
    CHECK(r->end - r->start >= 500ms);
    CHECK_FALSE(r->escalated_to_kill);
    CHECK_FALSE(r->timed_out);
    CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
  }
  SECTION("the lingerer ignores TERM and is killed after the grace") {
    StepRunner runner(WithGrace(200ms));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep 30 & echo $!; exit 4"), Clock::now()).ok());
    std::optional<RunResult> r = WaitFor(runner, 1);
    REQUIRE(r);
    INFO(r->Summary());
    CHECK(r->kind == RunResult::Kind::kExited);
    CHECK(r->exit_code == 4);
    CHECK(r->escalated_to_kill);
    CHECK(r->end - r->start >= 200ms);
    CHECK(r->end - r->start < 200ms + 1s);
    CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
  }
}

TEST_CASE("the subreaper reaps an orphaned grandchild before the step finishes", "[runner]") {
  StepRunner runner(WithGrace(5s));
  CHECK(StepRunner::BecomeSubreaper().ok());
  int subreaper = 0;
  REQUIRE(prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0);
  CHECK(subreaper == 1);
  // The subshell exits at once, orphaning the sleep, which the worker adopts.
  REQUIRE(runner.Start(Shell(1, "trap '' TERM; ( sleep 0.3 & echo $! ); exit 0"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->ok());
  CHECK(r->end - r->start >= 300ms);
  CHECK_FALSE(r->escalated_to_kill);
  // Gone, not a zombie: a zombie keeps its /proc entry.
  CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
}

TEST_CASE("a stopped step is continued so that it can act on TERM", "[runner]") {
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "kill -STOP $$; sleep 30"), Clock::now()).ok());
  WaitStopped(runner, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->end - cancelled_at < 1s);
}

TEST_CASE("a process that escapes with setsid does not hold the step up", "[runner]") {
  // The documented limit: setsid leaves the process group, so stopping the
  // group misses it (systemd's cgroup would not). The step must still finish
  // although the escapee holds its stdout open, and the escapee, orphaned
  // to the worker, must be reaped when it dies.
  const std::string arg = UniqueSleepArg();
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "setsid sleep " + arg +
                                    " & p=$!; until readlink /proc/$p/exe | grep -q /sleep$; do :; done; echo $p"),
                       Clock::now())
              .ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  const pid_t escaped = std::stoi(r->stdout_tail);
  struct KillOnExit {
    pid_t pid;
    ~KillOnExit() { kill(pid, SIGKILL); }
  } guard{escaped};
  CHECK(r->ok());
  CHECK(r->end - r->start < 2s);
  CHECK(CountProcessesWithArg(arg) == 1);

  std::ifstream stat("/proc/" + std::to_string(escaped) + "/stat");
  std::string pid, comm, state, ppid;
  stat >> pid >> comm >> state >> ppid;
  CHECK(ppid == std::to_string(getpid()));  // adopted by the subreaper

  // glibc 2.36 declares pidfd_open without extern "C"; the raw syscall links.
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, escaped, 0)));
  REQUIRE(pidfd.valid());
  REQUIRE(kill(escaped, SIGKILL) == 0);
  pollfd exited{pidfd.get(), POLLIN, 0};
  REQUIRE(poll(&exited, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kBudget).count())) == 1);
  CHECK(ProcessExists(escaped));  // a zombie until someone reaps it
  std::vector<RunResult> done;
  runner.Process(Clock::now(), &done);
  CHECK(done.empty());
  CHECK_FALSE(ProcessExists(escaped));
}

TEST_CASE("a step that traps TERM is waited for while it cleans up", "[runner]") {
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "trap 'echo cleaning; sleep 0.2; exit 7' TERM; sleep 30 & echo ready; wait"),
                       Clock::now())
              .ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 7);
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->stdout_tail == "ready\ncleaning\n");
  CHECK(r->end - cancelled_at >= 200ms);
  CHECK(r->end - cancelled_at < 5s);
}

TEST_CASE("what a cleanup trap leaves behind gets its own TERM when the step exits", "[runner]") {
  StepRunner runner(WithGrace(5s));
  // The trap waits until its sleep has exec'd: before that, the forked shell
  // still has the trap's handler and would swallow a TERM (a race in the
  // shell, not one the runner could close).
  REQUIRE(runner.Start(Shell(1,
                             "trap 'sleep 30 & p=$!; until readlink /proc/$p/exe | grep -q /sleep$; do :; done; "
                             "echo $p; exit 7' TERM; "
                             "sleep 30 & echo ready; wait"),
                       Clock::now())
              .ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 7);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->end - cancelled_at < 1s);
  REQUIRE(r->stdout_tail.starts_with("ready\n"));
  CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail.substr(6))));
}

TEST_CASE("a step that ignores TERM is killed after the grace", "[runner]") {
  StepRunner runner(WithGrace(200ms));
  REQUIRE(runner.Start(Shell(1, "trap '' TERM; echo ready; sleep 30"), Clock::now()).ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  CHECK(runner.NextDeadline() == cancelled_at + 200ms);
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGKILL);
  CHECK(r->cancelled);
  CHECK(r->escalated_to_kill);
  CHECK(r->Summary() == "killed by SIGKILL after cancel (escalated to SIGKILL)");
  CHECK(r->end - cancelled_at >= 200ms);
  CHECK(r->end - cancelled_at < 200ms + 1s);
}

TEST_CASE("CancelAll stops every running step gracefully", "[runner]") {
  StepRunner runner(WithGrace(3s));
  REQUIRE(runner.Start(Argv(1, {"sleep", "30"}), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "sleep 30 & wait"), Clock::now()).ok());
  CHECK(runner.CancelAll(Clock::now()) == 2);
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  for (auto& [key, r] : results) {
    INFO(key << ": " << r.Summary());
    CHECK(r.cancelled);
    CHECK(r.signal == SIGTERM);
    CHECK_FALSE(r.escalated_to_kill);
  }
}

TEST_CASE("the destructor kills and reaps every leftover step", "[runner]") {
  const std::string arg = UniqueSleepArg();
  std::vector<pid_t> pids;
  {
    StepRunner runner(WithGrace(5s));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep " + arg + " & echo $!; sleep " + arg + " & echo $!; wait"),
                         Clock::now())
                .ok());
    REQUIRE(runner.Start(Argv(2, {"sleep", arg}), Clock::now()).ok());
    for (const std::string& pid : WaitForLines(runner, 1, 2)) pids.push_back(std::stoi(pid));
    pids.push_back(*runner.PidOf(1));
    pids.push_back(*runner.PidOf(2));
    for (pid_t pid : pids) REQUIRE(ProcessExists(pid));
  }
  for (pid_t pid : pids) CHECK_FALSE(ProcessExists(pid));
  CHECK_FALSE(GroupExists(pids[2]));
  CHECK_FALSE(GroupExists(pids[3]));
  CHECK(CountProcessesWithArg(arg) == 0);
}

}  // namespace
}  // namespace cohort::worker
