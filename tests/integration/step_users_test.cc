// Integration tests of steps running as different Unix users: one step
// cannot read the environment of another user's running step through /proc,
// and steps of one user still can (which is why clients are mapped to users
// of their own). Needs root to switch users; real processes, bounded waits.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "tests/integration/runner_test_util.h"
#include "worker/step_policy.h"
#include "worker/step_runner.h"

namespace cohort::worker {
namespace {

using common::Clock;
using runner_test::Argv;
using runner_test::Shell;
using runner_test::UniqueSleepArg;
using runner_test::WaitFor;
using runner_test::WaitForAll;
using namespace std::chrono_literals;

constexpr char kSecret[] = "hunter2-the-db-password";

RunAsUser User(const std::string& name) {
  RunAsUser user;
  REQUIRE(LookUpUser(name, &user).ok());
  REQUIRE(user.credentials.uid != 0);
  return user;
}

RunRequest As(RunRequest request, const RunAsUser& user) {
  request.run_as = user.credentials;
  request.home = user.home;
  return request;
}

// Step A (as `a`) holds the secret in its environment while step B (as `b`)
// tries to read A's /proc/PID/environ. B's result.
RunResult ReadAcross(const RunAsUser& a, const RunAsUser& b, StepIsolation isolation) {
  RunnerOptions options;
  options.kill_grace = 1s;
  options.isolation = isolation;
  StepRunner runner(options);
  RunRequest holder = Argv(1, {"sleep", UniqueSleepArg()});
  holder.env.emplace_back("DB_PASSWORD", kSecret);
  REQUIRE(runner.Start(As(holder, a), Clock::now()).ok());
  const pid_t pid = *runner.PidOf(1);
  REQUIRE(runner.Start(As(Shell(2, "tr '\\0' '\\n' < /proc/" + std::to_string(pid) + "/environ"), b), Clock::now())
              .ok());
  std::optional<RunResult> read = WaitFor(runner, 2);
  REQUIRE(read);
  REQUIRE(runner.Cancel(1, Clock::now()));
  REQUIRE(WaitFor(runner, 1));
  return *read;
}

TEST_CASE("a step cannot read another user's step's environment", "[runner][users]") {
  if (geteuid() != 0) {
    WARN("not root: switching users cannot be tested here");
    return;
  }
  const RunAsUser nobody = User("nobody");
  const RunAsUser daemon = User("daemon");
  REQUIRE(nobody.credentials.uid != daemon.credentials.uid);
  for (StepIsolation isolation : {StepIsolation::kProcessGroup, StepIsolation::kPidNamespace}) {
    INFO("isolation " << static_cast<int>(isolation));
    RunResult across = ReadAcross(nobody, daemon, isolation);
    INFO(across.Summary() << "\nstdout: " << across.stdout_tail << "\nstderr: " << across.stderr_tail);
    CHECK_FALSE(across.ok());
    CHECK(across.stdout_tail.find(kSecret) == std::string::npos);
    CHECK(across.stderr_tail.find("Permission denied") != std::string::npos);

    RunResult same = ReadAcross(nobody, nobody, isolation);
    INFO(same.Summary() << "\nstdout: " << same.stdout_tail << "\nstderr: " << same.stderr_tail);
    CHECK(same.ok());
    CHECK(same.stdout_tail.find(std::string("DB_PASSWORD=") + kSecret) != std::string::npos);
  }
}

TEST_CASE("a step runs with its own user's ids - groups and HOME", "[runner][users]") {
  if (geteuid() != 0) {
    WARN("not root: switching users cannot be tested here");
    return;
  }
  const RunAsUser daemon = User("daemon");
  RunnerOptions options;
  options.run_as = User("nobody").credentials;
  StepRunner runner(options);
  REQUIRE(runner.Start(As(Shell(1, "id -u; id -g; echo $HOME"), daemon), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "id -u"), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  CHECK(results[1].stdout_tail == std::to_string(daemon.credentials.uid) + "\n" +
                                      std::to_string(daemon.credentials.gid) + "\n" + daemon.home + "\n");
  // Without a user of its own, a step still runs as the runner's.
  CHECK(results[2].stdout_tail == std::to_string(options.run_as->uid) + "\n");
}

}  // namespace
}  // namespace cohort::worker
