// A step's environment under a command policy (--allowed-commands): real
// allowed scripts (bash, one calling git) run by the real step runner as an
// unprivileged user (as a worker's --run-as user runs them; bash ignores PS4
// from the environment of a root shell), after the policy check the worker
// makes first, and a marker file that only an injected command would write.
// Each bypass is a step that sets variables; refused means nothing ran and
// no marker exists.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "tests/integration/runner_test_util.h"
#include "worker/step_policy.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Status;
using runner_test::TempDir;
using runner_test::WaitFor;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// What the worker does with a step it is sent: the policy check, and only
// if that passes, the runner.
struct Outcome {
  Status refused;
  std::optional<RunResult> result;
};

Outcome CheckThenRun(const StepPolicy& policy, const RunnerOptions& options, RunRequest request) {
  Outcome o;
  o.refused = policy.Check(&request);
  if (!o.refused.ok()) return o;
  StepRunner runner(options);
  REQUIRE(runner.Start(request, Clock::now()).ok());
  o.result = WaitFor(runner, request.key);
  REQUIRE(o.result);
  return o;
}

// A directory with an allowed bash script, `job.sh`, that calls `ls` by
// name and prints the PATH and HOME it was given, the policy that lists
// only that script, and a directory the step's user may write the marker to.
struct Setup {
  TempDir dir;
  std::string script, out, marker;
  StepPolicy policy;
  RunnerOptions options;

  explicit Setup(const std::string& allowed_env = "") {
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    out = dir.path() + "/out";
    REQUIRE(::mkdir(out.c_str(), 0700) == 0);
    REQUIRE(::chmod(out.c_str(), 01777) == 0);
    script = dir.path() + "/job.sh";
    marker = out + "/pwned";
    dir.Write("job.sh", "#!/bin/bash\nls / >/dev/null\necho \"PATH=$PATH HOME=$HOME MYAPP_MODE=$MYAPP_MODE\"\n", 0755);
    dir.Write("allowed", script + "\n", 0644);
    REQUIRE(StepPolicy::Load({.allowed_commands_file = dir.path() + "/allowed", .allowed_env = allowed_env}, &policy)
                .ok());
    if (::geteuid() == 0) {
      RunAsUser nobody;
      REQUIRE(LookUpUser("nobody", &nobody).ok());
      options.run_as = nobody.credentials;
    }
  }
  ~Setup() {
    ::unlink(marker.c_str());
    ::rmdir(out.c_str());
  }

  RunRequest Job(EnvVars env) const {
    RunRequest r;
    r.key = 1;
    r.argv = {script};
    r.env = std::move(env);
    return r;
  }
};

std::string Describe(const Outcome& o) {
  if (!o.refused.ok()) return "refused: " + o.refused.message();
  return "ran: " + o.result->Summary() + ", stdout: " + o.result->stdout_tail + ", stderr: " + o.result->stderr_tail;
}

// The step with `env` is refused with the rule `why` for `name`, and no
// marker was written.
void ExpectRefused(const Setup& s, EnvVars env, const std::string& name, const std::string& why) {
  Outcome o = CheckThenRun(s.policy, s.options, s.Job(std::move(env)));
  INFO(Describe(o));
  CHECK(o.refused.message() == "refused by the worker's policy: step environment variable \"" + name + "\" " + why);
  CHECK_FALSE(Exists(s.marker));
}

const std::string kRunsCode =
    "could make a program on the worker's --allowed-commands list run other code; no --allowed-env entry allows it";

TEST_CASE("SHELLOPTS=xtrace with a PS4 command substitution does not run code in an allowed bash script",
          "[runner][policy]") {
  Setup s;
  ExpectRefused(s, {{"SHELLOPTS", "xtrace"}, {"PS4", "$(touch " + s.marker + ")"}}, "SHELLOPTS", kRunsCode);
}

TEST_CASE("an exported bash function does not replace a command an allowed bash script calls", "[runner][policy]") {
  Setup s;
  ExpectRefused(s, {{"BASH_FUNC_ls%%", "() { touch " + s.marker + "; }"}}, "BASH_FUNC_ls%%", kRunsCode);
}

TEST_CASE("a step's PATH does not choose the programs an allowed bash script runs", "[runner][policy]") {
  Setup s;
  s.dir.Write("ls", "#!/bin/sh\ntouch " + s.marker + "\n", 0755);
  ExpectRefused(s, {{"PATH", s.dir.path() + ":/usr/bin:/bin"}}, "PATH",
                "is the worker's under a command policy; no --allowed-env entry lets a step set PATH or HOME");
}

TEST_CASE("git configuration from GIT_CONFIG_* does not run a command in an allowed script that calls git",
          "[runner][policy]") {
  Setup s;
  const std::string repo = s.dir.path() + "/repo";
  struct RemoveRepo {
    std::string path;
    ~RemoveRepo() { std::filesystem::remove_all(path); }
  } remove{repo};
  RunRequest init = s.Job({});
  init.argv = {"/usr/bin/git", "init", "-q", repo};
  Outcome made = CheckThenRun(StepPolicy(), RunnerOptions(), init);
  REQUIRE(made.result->ok());
  s.dir.Write("git-status.sh", "#!/bin/bash\ngit -C " + repo + " status >/dev/null 2>&1\necho ok\n", 0755);
  RunRequest status = s.Job({{"GIT_CONFIG_COUNT", "2"},
                             {"GIT_CONFIG_KEY_0", "safe.directory"},
                             {"GIT_CONFIG_VALUE_0", "*"},
                             {"GIT_CONFIG_KEY_1", "core.fsmonitor"},
                             {"GIT_CONFIG_VALUE_1", "touch " + s.marker + "; false"}});
  status.argv = {s.dir.path() + "/git-status.sh"};
  s.dir.Write("allowed", status.argv[0] + "\n", 0644);
  REQUIRE(StepPolicy::Load({.allowed_commands_file = s.dir.path() + "/allowed"}, &s.policy).ok());
  Outcome o = CheckThenRun(s.policy, s.options, status);
  INFO(Describe(o));
  CHECK(o.refused.message() ==
        "refused by the worker's policy: step environment variable \"GIT_CONFIG_COUNT\" " + kRunsCode);
  CHECK_FALSE(Exists(s.marker));
}

TEST_CASE("a variable --allowed-env names reaches the allowed script, beside the worker's PATH", "[runner][policy]") {
  Setup s("LANG,MYAPP_*");
  Outcome o = CheckThenRun(s.policy, s.options, s.Job({{"MYAPP_MODE", "fast"}}));
  INFO(Describe(o));
  REQUIRE(o.refused.ok());
  CHECK(o.result->ok());
  CHECK(o.result->stdout_tail == "PATH=/usr/local/bin:/usr/bin:/bin HOME=" + DefaultBaseEnv()[1].second +
                                     " MYAPP_MODE=fast\n");
  CHECK_FALSE(Exists(s.marker));
}

}  // namespace
}  // namespace cohort::worker
