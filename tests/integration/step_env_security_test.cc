// The command policy's environment rule and list file, end to end: a real
// worker started with --allowed-commands and --allowed-env, steps submitted
// with the real CLI, and a refusal read back from the step's result as a
// user sees it. The list file's owner and mode are checked by starting the
// real worker on a bad one and reading its exit status and message.
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kBin = COHORT_BIN_DIR;

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// A step result's error, or what it did instead.
std::string ErrorOf(const Json& step) {
  return step["error"].is_string() ? step["error"].get<std::string>() : "no error: " + step.dump();
}

// A worker that cannot start: its exit status and stderr.
RunOutput StartWorkerExpectingExit(const Cluster& c, std::vector<std::string> extra) {
  std::vector<std::string> argv = {kBin + "/cohort-worker", "--coordinator", "ipc://" + c.dir() + "/nobody-here",
                                   "--name", "refused", "--state-dir", c.dir() + "/refused-state"};
  for (const std::string& flag : StepUserFlags()) argv.push_back(flag);
  for (std::string& flag : extra) argv.push_back(std::move(flag));
  return RunProgram(argv, 30s);
}

TEST_CASE("a worker does not start on an --allowed-commands file others may write or another user owns",
          "[security]") {
  Cluster c;
  const std::string list = c.dir() + "/allowed";
  WriteFile(list, "/bin/echo\n");
  REQUIRE(::chmod(list.c_str(), 0664) == 0);
  RunOutput writable = StartWorkerExpectingExit(c, {"--allowed-commands", list});
  CHECK(writable.exit_code == 2);
  CHECK(writable.err.find("--allowed-commands file " + list + " has mode 0664: group or others may write it") !=
        std::string::npos);
  REQUIRE(::chmod(list.c_str(), 0644) == 0);
  if (::geteuid() == 0) {
    REQUIRE(::chown(list.c_str(), 65534, 65534) == 0);
    RunOutput foreign = StartWorkerExpectingExit(c, {"--allowed-commands", list});
    CHECK(foreign.exit_code == 2);
    CHECK(foreign.err.find("--allowed-commands file " + list + " is owned by uid 65534") != std::string::npos);
    REQUIRE(::chown(list.c_str(), 0, 0) == 0);
  }
  RunOutput without_list = StartWorkerExpectingExit(c, {"--allowed-env", "LANG"});
  CHECK(without_list.exit_code == 2);
  CHECK(without_list.err.find("--allowed-env needs --allowed-commands") != std::string::npos);
  // Control: the same file, protected, and the worker joins.
  c.StartCoordinator();
  c.StartWorker("w1", 1, {"--allowed-commands", list});
  CHECK(c.Cli({"submit", "--wait", "--", "/bin/echo", "hi"}).exit_code == 0);
}

TEST_CASE("a step's environment under a command policy: only --allowed-env, never PATH or HOME", "[security]") {
  Cluster c;
  const std::string script = c.dir() + "/job.sh";
  const std::string marker = c.dir() + "/pwned";
  WriteFile(script, "#!/bin/bash\nls / >/dev/null\necho \"PATH=$PATH MYAPP_MODE=$MYAPP_MODE\"\n");
  REQUIRE(::chmod(script.c_str(), 0755) == 0);
  const std::string list = c.dir() + "/allowed";
  WriteFile(list, script + "\n");
  c.StartCoordinator();
  c.StartWorker("w1", 1, {"--allowed-commands", list, "--allowed-env", "MYAPP_*"});
  auto submit = [&](const std::string& id, const Json& env) {
    Json g = {{"id", id}, {"steps", {{{"id", "1"}, {"command", {script}}, {"env", env}}}}};
    RunOutput r = c.SubmitJson(g, {"--wait", "--json"});
    INFO(r.err);
    Json res = Json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(res.is_discarded());
    return res["steps"][0];
  };
  // Either variable is refused first, and names itself.
  const std::string xtrace = ErrorOf(submit("xtrace", {{"SHELLOPTS", "xtrace"}, {"PS4", "$(touch " + marker + ")"}}));
  const std::string runs_code = "could make a program on the worker's --allowed-commands list run other code";
  CHECK((xtrace.find("step environment variable \"SHELLOPTS\" " + runs_code) != std::string::npos ||
         xtrace.find("step environment variable \"PS4\" " + runs_code) != std::string::npos));
  const std::string path = ErrorOf(submit("path", {{"PATH", c.dir() + ":/usr/bin:/bin"}}));
  CHECK(path.find("step environment variable \"PATH\" is the worker's") != std::string::npos);
  const std::string unlisted = ErrorOf(submit("unlisted", {{"OTHER", "x"}}));
  CHECK(unlisted.find("step environment variable \"OTHER\" is not in --allowed-env (a command policy is set)") !=
        std::string::npos);
  // The other variables that steer an allowed program, and HOME.
  for (const char* name : {"BASH_FUNC_ls%%", "MAKEFLAGS", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "JAVA_TOOL_OPTIONS",
                           "PERLLIB", "PYTHONUSERBASE", "HOME"}) {
    const std::string error = ErrorOf(submit(std::string("var-") + (name[0] == 'B' ? "bash-func" : name),
                                             {{name, c.dir()}}));
    INFO(name);
    CHECK(error.find(std::string("step environment variable \"") + name + "\"") != std::string::npos);
  }
  CHECK_FALSE(Exists(marker));
  // Control: a listed variable reaches the script, which sees the worker's PATH.
  Json listed = submit("listed", {{"MYAPP_MODE", "fast"}});
  INFO(listed.dump());
  CHECK(listed["stdout"] == "PATH=/usr/local/bin:/usr/bin:/bin MYAPP_MODE=fast\n");
}

}  // namespace
}  // namespace cohort::testing
