// Integration tests of step isolation: a step in its own PID namespace
// cannot leave anything running behind, however its processes escape the
// process group (setsid, a double fork, a cleared environment), and the
// result the runner reports is still the step's own: exit codes, killing
// signals, timeouts and the SIGTERM -> SIGKILL escalation, output tails.
// Real child processes; every wait is bounded by a deadline.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/runner_test_util.h"
#include "worker/spawn.h"
#include "worker/step_runner.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Time;
using runner_test::Argv;
using runner_test::CountProcessesWithArg;
using runner_test::ProcessExists;
using runner_test::Shell;
using runner_test::TempDir;
using runner_test::UniqueSleepArg;
using runner_test::WaitFor;
using runner_test::WaitForAll;
using runner_test::WaitForLines;
using runner_test::WaitStopped;
using namespace std::chrono_literals;

RunnerOptions Isolated(common::Duration grace = 5s) {
  RunnerOptions options;
  options.kill_grace = grace;
  options.isolation = StepIsolation::kPidNamespace;
  return options;
}

// A shell line that makes a process write its pid as the host sees it (the
// shell opens /proc/self/stat itself, and /proc is the host's) to `file`,
// then become `sleep arg`. `dollar` is how the line spells $ where it is
// quoted.
std::string PidThenSleep(const std::string& file, const std::string& arg, const std::string& dollar = "$") {
  return "read -r s rest < /proc/self/stat; echo " + dollar + "s > " + file + ".tmp; mv " + file + ".tmp " + file +
         "; exec /bin/sleep " + arg;
}

// Three ways out of the process group, each leaving a `sleep arg` that
// writes its host pid to dir/{setsid,double,envi}; then "ready" once all
// three have.
std::string EscapeScript(const std::string& dir, const std::string& arg) {
  return "setsid /bin/sh -c '" + PidThenSleep(dir + "/setsid", arg) + "' & " +
         "/bin/sh -c '/bin/sh -c \"" + PidThenSleep(dir + "/double", arg, "\\$") + "\" & exit 0'; " +
         "env -i /usr/bin/setsid /bin/sh -c '" + PidThenSleep(dir + "/envi", arg) + "' & " +
         "until [ -s " + dir + "/setsid ] && [ -s " + dir + "/double ] && [ -s " + dir + "/envi ]; do :; done; " +
         "echo ready; ";
}

std::vector<pid_t> EscapeePids(const std::string& dir) {
  std::vector<pid_t> pids;
  for (const char* name : {"setsid", "double", "envi"}) {
    std::ifstream in(dir + "/" + name);
    pid_t pid = 0;
    in >> pid;
    pids.push_back(pid);
  }
  return pids;
}

// Kills what a failing run leaves behind, and removes the pid files.
struct Escapees {
  std::string dir;
  std::string arg;
  ~Escapees() {
    for (pid_t pid : EscapeePids(dir)) {
      std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
      std::string text((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
      if (pid > 0 && text.find(arg) != std::string::npos) kill(pid, SIGKILL);
    }
    for (const char* name : {"setsid", "double", "envi"}) unlink((dir + "/" + name).c_str());
  }
};

void CheckNoneLeft(const std::string& dir, const std::string& arg) {
  std::vector<pid_t> pids = EscapeePids(dir);
  for (size_t i = 0; i < pids.size(); ++i) {
    INFO("escapee " << i << " (setsid, double fork, env -i setsid): pid " << pids[i]);
    REQUIRE(pids[i] > 0);
    CHECK_FALSE(ProcessExists(pids[i]));
  }
  CHECK(CountProcessesWithArg(arg) == 0);
}

TEST_CASE("an isolated step's escaped processes die when it is cancelled", "[runner][isolation]") {
  TempDir dir;
  const std::string arg = UniqueSleepArg();
  Escapees guard{dir.path(), arg};
  StepRunner runner(Isolated());
  REQUIRE(runner.Start(Shell(1, EscapeScript(dir.path(), arg) + "sleep 30"), Clock::now()).ok());
  WaitForLines(runner, 1, 1);
  REQUIRE(runner.Cancel(1, Clock::now()));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  CheckNoneLeft(dir.path(), arg);
}

TEST_CASE("an isolated step's escaped processes die when it exits by itself", "[runner][isolation]") {
  TempDir dir;
  const std::string arg = UniqueSleepArg();
  Escapees guard{dir.path(), arg};
  StepRunner runner(Isolated());
  REQUIRE(runner.Start(Shell(1, EscapeScript(dir.path(), arg) + "exit 3"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 3);
  CHECK(r->stdout_tail == "ready\n");
  CheckNoneLeft(dir.path(), arg);
}

TEST_CASE("an isolated step reports its own exit code - signal and pid", "[runner][isolation]") {
  StepRunner runner(Isolated());
  REQUIRE(runner.Start(Shell(1, "exit 3"), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "kill -USR1 $$"), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(3, "read -r s rest < /proc/self/stat; echo $s; echo out; echo err >&2"), Clock::now())
              .ok());
  REQUIRE(runner.Start(Argv(4, {"sh", "-c", "kill -KILL $$"}), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 4);
  for (auto& [key, r] : results) INFO(key << ": " << r.Summary());
  CHECK(results[1].kind == RunResult::Kind::kExited);
  CHECK(results[1].exit_code == 3);
  CHECK(results[2].kind == RunResult::Kind::kSignaled);
  CHECK(results[2].signal == SIGUSR1);
  CHECK(results[3].ok());
  // The pid as the worker (and /proc) sees it, not the namespace's own 2.
  CHECK(results[3].stdout_tail == std::to_string(results[3].pid) + "\nout\n");
  CHECK(results[3].stderr_tail == "err\n");
  CHECK(results[4].kind == RunResult::Kind::kSignaled);
  CHECK(results[4].signal == SIGKILL);
  CHECK_FALSE(results[4].escalated_to_kill);
}

TEST_CASE("an isolated step's timeout sends TERM - then KILL after the grace", "[runner][isolation]") {
  StepRunner runner(Isolated(200ms));
  RunRequest polite = Argv(1, {"sleep", "30"});
  polite.timeout = 200ms;
  RunRequest stubborn = Shell(2, "trap '' TERM; sleep 30");
  stubborn.timeout = 200ms;
  REQUIRE(runner.Start(polite, Clock::now()).ok());
  REQUIRE(runner.Start(stubborn, Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  INFO(results[1].Summary() << " / " << results[2].Summary());
  CHECK(results[1].kind == RunResult::Kind::kSignaled);
  CHECK(results[1].signal == SIGTERM);
  CHECK(results[1].timed_out);
  CHECK_FALSE(results[1].escalated_to_kill);
  CHECK(results[2].kind == RunResult::Kind::kSignaled);
  CHECK(results[2].signal == SIGKILL);
  CHECK(results[2].timed_out);
  CHECK(results[2].escalated_to_kill);
  CHECK(results[2].Summary() == "killed by SIGKILL after timeout (escalated to SIGKILL)");
}

TEST_CASE("an isolated step that traps TERM cleans up - and a stopped one is continued", "[runner][isolation]") {
  TempDir dir;
  const std::string started = dir.path() + "/background";
  struct Unlink {
    std::string path;
    ~Unlink() { unlink(path.c_str()); }
  } cleanup{started};
  StepRunner runner(Isolated());
  // "ready" only once the background sleep runs as a program of its own, so
  // that the forwarded TERM always has a second process to reach: one that
  // lands between the shell's fork and the child's exec finds the parent's
  // trap still set in the child, which then exits 0 and never sleeps.
  REQUIRE(runner
              .Start(Shell(1, "trap 'echo cleaning; exit 7' TERM; /bin/sh -c '" + PidThenSleep(started, "30") +
                                  "' & until [ -s " + started + " ]; do :; done; echo ready; wait"),
                     Clock::now())
              .ok());
  REQUIRE(runner.Start(Shell(2, "kill -STOP $$; sleep 30"), Clock::now()).ok());
  WaitForLines(runner, 1, 1);
  WaitStopped(runner, 2);
  REQUIRE(runner.CancelAll(Clock::now()) == 2);
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  INFO(results[1].Summary() << " / " << results[2].Summary());
  CHECK(results[1].kind == RunResult::Kind::kExited);
  CHECK(results[1].exit_code == 7);
  CHECK(results[1].cancelled);
  CHECK_FALSE(results[1].escalated_to_kill);
  CHECK(results[1].stdout_tail == "ready\ncleaning\n");
  CHECK(results[2].kind == RunResult::Kind::kSignaled);
  CHECK(results[2].signal == SIGTERM);
  CHECK_FALSE(results[2].escalated_to_kill);
}

TEST_CASE("a leftover of an isolated step gets TERM - then KILL after the grace", "[runner][isolation]") {
  StepRunner runner(Isolated(200ms));
  REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep 30 & exit 4"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 4);
  CHECK(r->escalated_to_kill);
  CHECK(r->end - r->start >= 200ms);
}

TEST_CASE("an isolated step that cannot start fails as it would without isolation", "[runner][isolation]") {
  TempDir dir;
  dir.Write("not-executable", "#!/bin/sh\n", 0644);
  std::vector<RunRequest> requests = {Argv(1, {"no-such-command-here"}), Argv(2, {dir.path() + "/not-executable"}),
                                      Argv(3, {"true"})};
  requests[2].cwd = dir.path() + "/missing";
  for (const RunRequest& request : requests) {
    std::string errors[2];
    int i = 0;
    for (RunnerOptions options : {RunnerOptions{}, Isolated()}) {
      StepRunner runner(options);
      REQUIRE(runner.Start(request, Clock::now()).ok());
      std::optional<RunResult> r = WaitFor(runner, request.key);
      REQUIRE(r);
      CHECK(r->kind == RunResult::Kind::kSpawnFailed);
      errors[i++] = r->error;
    }
    CHECK_FALSE(errors[0].empty());
    CHECK(errors[1] == errors[0]);
  }
}

TEST_CASE("destroying the runner kills every isolated step's processes", "[runner][isolation]") {
  TempDir dir;
  const std::string arg = UniqueSleepArg();
  Escapees guard{dir.path(), arg};
  pid_t step = 0;
  {
    StepRunner runner(Isolated());
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; " + EscapeScript(dir.path(), arg) + "sleep 30"), Clock::now()).ok());
    WaitForLines(runner, 1, 1);
    step = *runner.PidOf(1);
    REQUIRE(ProcessExists(step));
  }
  CHECK_FALSE(ProcessExists(step));
  CheckNoneLeft(dir.path(), arg);
}

TEST_CASE("without CAP_SYS_ADMIN the probe says a PID namespace is not to be had", "[runner][isolation]") {
  if (geteuid() != 0) {
    CHECK_FALSE(Spawner::ProbePidNamespace().ok());
    return;
  }
  // A child that gives up root asks; the answer comes back on a pipe.
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::string answer = "setresuid failed";
    if (setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0) {
      common::Status s = Spawner::ProbePidNamespace();
      answer = s.ok() ? "ok" : s.message();
    }
    (void)!write(fds[1], answer.data(), answer.size());
    _exit(0);
  }
  close(fds[1]);
  std::string answer;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(answer == "clone(CLONE_NEWPID): Operation not permitted");
}

}  // namespace
}  // namespace cohort::worker
