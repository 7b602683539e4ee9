// Integration tests of the step runner starting steps: exit status, argv and
// PATH lookup, environment, session and signal state, output tails, spawn
// errors, request checks and descriptors. Stopping steps is tested in
// step_runner_stop_test.cc. Real child processes, and every wait is a poll of
// the runner's own descriptors bounded by a deadline, never a fixed sleep.
#include "worker/step_runner.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/runner_test_util.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Duration;
using common::Time;
using runner_test::Argv;
using runner_test::CountOpenFds;
using runner_test::Seconds;
using runner_test::Shell;
using runner_test::TempDir;
using runner_test::WaitFor;
using runner_test::WaitForAll;
using runner_test::WithGrace;
using namespace std::chrono_literals;

TEST_CASE("exit codes are reported", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Shell(1, "exit 3"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 3);
  CHECK_FALSE(r->timed_out);
  CHECK_FALSE(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->pid > 0);
  CHECK(r->end >= r->start);
  CHECK(runner.idle());
}

TEST_CASE("terminating signals are reported", "[runner]") {
  StepRunner runner;
  // ulimit -c 0: no core file in the test's working directory.
  REQUIRE(runner.Start(Shell(1, "ulimit -c 0; kill -SEGV $$"), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "kill -KILL $$"), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  CHECK(results[1].kind == RunResult::Kind::kSignaled);
  CHECK(results[1].signal == SIGSEGV);
  CHECK_FALSE(results[1].core_dumped);
  CHECK(results[2].kind == RunResult::Kind::kSignaled);
  CHECK(results[2].signal == SIGKILL);
  CHECK(results[2].Summary() == "killed by SIGKILL");
  CHECK_FALSE(results[2].escalated_to_kill);
}

TEST_CASE("argv runs directly - without a shell", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Argv(1, {"printf", "%s|%s\n", "a b", "$HOME *"}), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "a b|$HOME *\n");
  CHECK(r->stdout_bytes == r->stdout_tail.size());
  CHECK_FALSE(r->stdout_truncated);
  CHECK(r->stderr_tail.empty());
}

TEST_CASE("argv[0] is looked up in the step's own PATH", "[runner]") {
  TempDir dir;
  dir.Write("cohort-test-tool", "#!/bin/sh\necho \"tool:$1\"\n", 0755);
  dir.Write("cohort-test-noexec", "#!/bin/sh\necho never\n", 0644);
  StepRunner runner;

  RunRequest found = Argv(1, {"cohort-test-tool", "x"});
  found.env = {{"PATH", "/nonexistent:" + dir.path()}};
  REQUIRE(runner.Start(found, Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "tool:x\n");

  // The worker's own PATH plays no part: the base PATH lacks the directory.
  REQUIRE(runner.Start(Argv(2, {"cohort-test-tool"}), Clock::now()).ok());
  r = WaitFor(runner, 2);
  REQUIRE(r);
  CHECK(r->kind == RunResult::Kind::kSpawnFailed);
  CHECK_THAT(r->error, Catch::Contains("No such file or directory"));

  RunRequest noexec = Argv(3, {"cohort-test-noexec"});
  noexec.env = {{"PATH", dir.path()}};
  REQUIRE(runner.Start(noexec, Clock::now()).ok());
  r = WaitFor(runner, 3);
  REQUIRE(r);
  CHECK(r->kind == RunResult::Kind::kSpawnFailed);
  CHECK_THAT(r->error, Catch::Contains("Permission denied"));
}

TEST_CASE("a step gets the base environment plus its env - its cwd and /dev/null as stdin", "[runner]") {
  REQUIRE(setenv("COHORT_RUNNER_TEST_LEAK", "leaked", 1) == 0);
  TempDir dir;
  StepRunner runner;
  RunRequest req = Shell(1,
                         "echo \"FOO=$FOO\"; echo \"LANG=$LANG\"; echo \"PATH=$PATH\"; "
                         "echo \"LEAK=${COHORT_RUNNER_TEST_LEAK:-unset}\"; pwd; cat; echo stdin-was-empty");
  req.env = {{"FOO", "one"}, {"LANG", "C"}, {"FOO", "bar"}};
  req.cwd = dir.path();
  REQUIRE(runner.Start(req, Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  unsetenv("COHORT_RUNNER_TEST_LEAK");
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "FOO=bar\nLANG=C\nPATH=/usr/local/bin:/usr/bin:/bin\nLEAK=unset\n" + dir.path() +
                              "\nstdin-was-empty\n");
}

TEST_CASE("the base environment is configurable and is all a step sees", "[runner]") {
  RunnerOptions options;
  options.base_env = {{"ONLY", "this"}};
  StepRunner runner(options);
  // No PATH at all: the lookup falls back to execvp's /bin:/usr/bin.
  REQUIRE(runner.Start(Argv(1, {"env"}), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "ONLY=this\n");

  const EnvVars defaults = DefaultBaseEnv();
  REQUIRE(defaults.size() == 3);
  CHECK(defaults[0] == std::pair<std::string, std::string>("PATH", "/usr/local/bin:/usr/bin:/bin"));
  CHECK(defaults[1].first == "HOME");
  CHECK(defaults[2] == std::pair<std::string, std::string>("LANG", "C.UTF-8"));
}

TEST_CASE("a step leads its own session and process group and starts with default signal state", "[runner]") {
  // A worker that ignores SIGPIPE and blocks SIGUSR1 must not pass either on.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  REQUIRE(sigaction(SIGPIPE, &ignore, &old_pipe) == 0);
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &usr1, &old_mask) == 0);

  StepRunner runner;
  REQUIRE(runner.Start(Shell(1,
                             "read -r pid comm state ppid pgrp session rest < /proc/$$/stat; "
                             "echo \"$pid $ppid $pgrp $session\""),
                       Clock::now())
              .ok());
  // The direct child's own view, with no shell in between to change it.
  REQUIRE(runner.Start(Argv(2, {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"}), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(3, "(yes; echo \"yes exited $?\" >&2) | head -c 10 >/dev/null"), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  REQUIRE(results.size() == 3);
  for (auto& [key, r] : results) CHECK(r.ok());
  const std::string pid = std::to_string(results[1].pid);
  CHECK(results[1].stdout_tail == pid + " " + std::to_string(getpid()) + " " + pid + " " + pid + "\n");
  CHECK(results[2].stdout_tail == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  // Killed by SIGPIPE (128 + 13), not "yes: standard output: Broken pipe".
  CHECK(results[3].stderr_tail == "yes exited 141\n");
}

TEST_CASE("100 MB of output keeps only the tail - counts every byte and finishes", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Shell(1, "yes | head -c 100000000; echo done >&2"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary() << " in " << Seconds(r->end - r->start) << " s");
  CHECK(r->ok());
  CHECK(r->stdout_bytes == 100000000);
  CHECK(r->stdout_truncated);
  REQUIRE(r->stdout_tail.size() == 64 * 1024);
  std::string expected;
  for (size_t i = 0; i < 32 * 1024; ++i) expected += "y\n";
  CHECK(r->stdout_tail == expected);
  CHECK(r->stderr_tail == "done\n");
  CHECK_FALSE(r->stderr_truncated);
}

TEST_CASE("a small tail keeps the last bytes in order", "[runner]") {
  RunnerOptions options;
  options.tail_bytes = 10;
  StepRunner runner(options);
  REQUIRE(runner.Start(Shell(1, "seq 1 1000"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->stdout_tail == "\n999\n1000\n");
  CHECK(r->stdout_bytes == 3893);
  CHECK(r->stdout_truncated);
}

TEST_CASE("steps that cannot start are failed attempts with a clear message", "[runner]") {
  StepRunner runner;
  const Time now = Clock::now();
  REQUIRE(runner.Start(Argv(1, {"cohort-no-such-command"}), now).ok());
  RunRequest bad_cwd = Argv(2, {"true"});
  bad_cwd.cwd = "/nonexistent/cohort-dir";
  REQUIRE(runner.Start(bad_cwd, now).ok());
  REQUIRE(runner.Start(Argv(3, {"/etc/passwd"}), now).ok());
  REQUIRE(runner.Start(Argv(4, {"/"}), now).ok());
  CHECK(runner.running() == 0);
  CHECK(runner.NextDeadline() == now);

  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 4);
  for (auto& [key, r] : results) {
    INFO(key << ": " << r.error);
    CHECK(r.kind == RunResult::Kind::kSpawnFailed);
    CHECK(r.pid == 0);
    CHECK(r.start == now);
  }
  CHECK_THAT(results[1].error,
             Catch::StartsWith("cannot start \"cohort-no-such-command\": No such file or directory"));
  CHECK(results[2].error ==
        "cannot start \"true\": cannot change directory to \"/nonexistent/cohort-dir\": No such file or directory");
  CHECK(results[3].error == "cannot start \"/etc/passwd\": Permission denied");
  CHECK(results[4].error == "cannot start \"/\": Permission denied");
  CHECK(results[1].Summary() == "failed to start: " + results[1].error);
}

TEST_CASE("invalid requests are refused by Start", "[runner]") {
  StepRunner runner(WithGrace(100ms));
  const Time now = Clock::now();
  using Code = common::Status::Code;
  CHECK(runner.Start(RunRequest{}, now).code() == Code::kInvalidArgument);
  RunRequest both = Shell(1, "true");
  both.argv = {"true"};
  CHECK(runner.Start(both, now).code() == Code::kInvalidArgument);
  CHECK(runner.Start(Argv(1, {""}), now).code() == Code::kInvalidArgument);
  CHECK(runner.Start(Argv(1, {"echo", std::string("a\0b", 3)}), now).code() == Code::kInvalidArgument);
  RunRequest bad_env = Argv(1, {"true"});
  bad_env.env = {{"A=B", "c"}};
  common::Status s = runner.Start(bad_env, now);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("A=B"));
  CHECK(runner.idle());

  RunRequest forever = Argv(7, {"sleep", "30"});
  forever.timeout = Duration::max();  // clamped, not an overflow
  REQUIRE(runner.Start(forever, now).ok());
  CHECK(runner.NextDeadline() > now + std::chrono::hours(24 * 365));
  s = runner.Start(Argv(7, {"true"}), now);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("step 7"));
  CHECK(runner.Running(7));
  CHECK_FALSE(runner.Cancel(8, now));
  REQUIRE(runner.Cancel(7, Clock::now()));
  REQUIRE(WaitFor(runner, 7));
  CHECK_FALSE(runner.Running(7));
}

TEST_CASE("the event-loop contract: descriptors and deadlines", "[runner]") {
  StepRunner runner(WithGrace(3s));
  std::vector<PollFd> fds;
  runner.PollFds(&fds);
  CHECK(fds.empty());
  CHECK_FALSE(runner.NextDeadline());

  const Time now = Clock::now();
  RunRequest req = Argv(1, {"sleep", "30"});
  req.timeout = 10s;
  REQUIRE(runner.Start(req, now).ok());
  CHECK(runner.NextDeadline() == now + 10s);
  runner.PollFds(&fds);
  REQUIRE(fds.size() == 3);  // pidfd, stdout, stderr
  for (const PollFd& p : fds) CHECK(p.events == POLLIN);

  const Time cancel_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancel_at));
  CHECK(runner.NextDeadline() == cancel_at + 3s);
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  runner.PollFds(&fds);
  CHECK(fds.empty());
  CHECK_FALSE(runner.NextDeadline());
}

TEST_CASE("64 concurrent steps with output leak no descriptors", "[runner]") {
  constexpr int kSteps = 64;
  uint64_t expected_bytes = 0;
  for (int i = 1; i <= 20000; ++i) expected_bytes += std::to_string(i).size() + 1;

  const int before = CountOpenFds();
  {
    StepRunner runner;
    const int with_runner = CountOpenFds();
    for (int i = 0; i < kSteps; ++i) {
      REQUIRE(runner.Start(Shell(static_cast<uint64_t>(i), "seq 1 20000; echo \"err $$\" >&2"), Clock::now()).ok());
    }
    CHECK(runner.running() == kSteps);
    std::map<uint64_t, RunResult> results = WaitForAll(runner);
    REQUIRE(results.size() == kSteps);
    for (auto& [key, r] : results) {
      INFO("step " << key << ": " << r.Summary());
      CHECK(r.ok());
      CHECK(r.stdout_bytes == expected_bytes);
      CHECK(r.stdout_tail.size() == 64 * 1024);
      CHECK(r.stderr_tail == "err " + std::to_string(r.pid) + "\n");
    }
    // The runner keeps /dev/null open between steps and nothing else.
    CHECK(CountOpenFds() <= with_runner + 1);
  }
  CHECK(CountOpenFds() == before);
}

}  // namespace
}  // namespace cohort::worker
