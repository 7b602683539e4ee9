// The command-line habits people bring from git, kubectl, docker and Slurm,
// tried on real daemons with the real CLI: connection options before the
// command, endpoints without a scheme, a wrong port named as such instead of
// a timeout, and exit codes that tell "no such group" from "it failed".
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;

const std::string kCli = COHORT_BIN_DIR "/cohort";

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A cluster with one worker and a completed group "done" and a failed
// group "broken".
struct Fixture {
  Cluster c;
  Fixture() {
    c.StartCoordinator();
    c.StartWorker("w1", 2);
    REQUIRE(c.Cli({"submit", "--wait", "--id", "done", "--", "true"}).exit_code == 0);
    REQUIRE(c.Cli({"submit", "--wait", "--id", "broken", "--", "false"}).exit_code == 1);
  }
  std::string port(int i) const { return std::to_string(c.port(i)); }
};

TEST_CASE("connection options work before the command as after it", "[cli]") {
  Fixture f;
  const std::string ep = f.c.client_endpoint();
  RunOutput before = RunProgram({kCli, "--coordinator", ep, "--json", "status", "done"}, 60s);
  INFO(before.err);
  CHECK(before.exit_code == 0);
  CHECK(nlohmann::json::parse(before.out, nullptr, false).value("state", "") == "completed");
  RunOutput equals = RunProgram({kCli, "--coordinator=" + ep, "status", "broken"}, 60s);
  CHECK(equals.exit_code == 1);
  CHECK(Has(equals.out, "broken"));
  RunOutput after = RunProgram({kCli, "status", "done", "--coordinator", ep}, 60s);
  CHECK(after.exit_code == 0);
  // The submit's command after "--" stays the step's, even with options
  // first: `test --json = --json` succeeds only with all three words.
  RunOutput submit =
      RunProgram({kCli, "--coordinator", ep, "submit", "--wait", "--", "test", "--json", "=", "--json"}, 60s);
  INFO(submit.err);
  CHECK(submit.exit_code == 0);
  CHECK_FALSE(nlohmann::json::parse(submit.out, nullptr, false).is_object());
}

TEST_CASE("an option before the command that is not a connection option is a usage error", "[cli]") {
  RunOutput r = RunProgram({kCli, "--wait", "status", "g"}, 30s);
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "--wait"));
  RunOutput missing = RunProgram({kCli, "status", "--coordinator"}, 30s);
  CHECK(missing.exit_code == 2);
  RunOutput dangling = RunProgram({kCli, "--coordinator"}, 30s);
  CHECK(dangling.exit_code == 2);
  CHECK(Has(dangling.err, "needs a value"));
  RunOutput none = RunProgram({kCli, "--coordinator", "tcp://127.0.0.1:1"}, 30s);
  CHECK(none.exit_code == 2);
  CHECK(Has(none.out, "Usage: cohort"));
}

TEST_CASE("--help shows the options a person types, not the positional names", "[cli]") {
  for (const char* command : {"status", "cancel", "logs", "submit", "cordon", "keygen"}) {
    RunOutput r = RunProgram({kCli, command, "--help"}, 30s);
    INFO(command << ": " << r.out);
    CHECK(r.exit_code == 0);
    CHECK(Has(r.out, "--help"));
    CHECK_FALSE(Has(r.out, "--group"));
    CHECK_FALSE(Has(r.out, "--step"));
    CHECK_FALSE(Has(r.out, "--file"));
    CHECK_FALSE(Has(r.out, "--worker"));
    CHECK_FALSE(Has(r.out, "--name "));
  }
  RunOutput status = RunProgram({kCli, "--coordinator", "tcp://h:1", "status", "--help"}, 30s);
  CHECK(status.exit_code == 0);
  CHECK(Has(status.out, "Connection:"));
  CHECK(Has(status.out, "--coordinator"));
  RunOutput top = RunProgram({kCli, "--coordinator", "tcp://h:1", "--help"}, 30s);
  CHECK(top.exit_code == 0);
  CHECK(Has(top.out, "Exit status:"));
}

TEST_CASE("an endpoint without a scheme is a TCP one", "[cli]") {
  Fixture f;
  RunOutput r = RunProgram({kCli, "status", "done", "--coordinator", "127.0.0.1:" + f.port(0)}, 60s);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(Has(r.out, "completed"));
  // A worker given one the same way joins.
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-worker", "--coordinator", "127.0.0.1:" + f.port(1),
                                   "--name", "w2", "--heartbeat-ms", "200", "--state-dir", f.c.dir() + "/w2-state"};
  for (const std::string& flag : StepUserFlags()) argv.push_back(flag);
  Daemon worker(argv, f.c.dir() + "/w2.log");
  CHECK(WaitUntil([&] { return f.c.HasWorker("w2"); }, 30s));
}

TEST_CASE("a CLI pointed at the worker port is told so at once", "[cli]") {
  Fixture f;
  // A timeout far longer than the answer takes: an exit by timeout is 3.
  RunOutput r = RunProgram(
      {kCli, "status", "done", "--coordinator", "127.0.0.1:" + f.port(1), "--connect-timeout", "60"}, 90s);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "worker port"));
  CHECK(Has(r.err, f.c.client_endpoint()));
}

TEST_CASE("a worker pointed at the client port logs why it is not admitted", "[cli]") {
  Fixture f;
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-worker", "--coordinator", f.c.client_endpoint(),
                                   "--name", "astray", "--heartbeat-ms", "200", "--state-dir",
                                   f.c.dir() + "/astray-state"};
  for (const std::string& flag : StepUserFlags()) argv.push_back(flag);
  Daemon worker(argv, f.c.dir() + "/astray.log");
  CHECK(WaitUntil([&] { return Has(worker.Log(), "client port; workers use its worker port"); }, 30s));
  INFO(worker.Log());
  CHECK(Has(worker.Log(), f.c.client_endpoint()));
  CHECK_FALSE(f.c.HasWorker("astray"));
}

TEST_CASE("no such group, step or worker exits 4 and a failed group 1", "[cli]") {
  Fixture f;
  RunOutput status = f.c.Cli({"status", "no-such-group"});
  CHECK(status.exit_code == 4);
  CHECK(Has(status.err, "no-such-group"));
  CHECK(f.c.Cli({"wait", "no-such-group"}).exit_code == 4);
  CHECK(f.c.Cli({"logs", "done", "no-such-step"}).exit_code == 4);
  CHECK(f.c.Cli({"cordon", "no-such-worker"}).exit_code == 4);
  CHECK(f.c.Cli({"status", "broken"}).exit_code == 1);
  CHECK(f.c.Cli({"wait", "broken"}).exit_code == 1);
  // Cancelling what has already finished is said in plain words, no error.
  RunOutput cancel = f.c.Cli({"cancel", "done"});
  INFO(cancel.err);
  CHECK(cancel.exit_code == 0);
  CHECK(Has(cancel.err, "already finished (completed); nothing to cancel"));
}

}  // namespace
}  // namespace cohort::testing

namespace cohort::testing {
namespace {

TEST_CASE("a group whose agent no live worker offers is accepted with a warning and says why it waits", "[cli]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  nlohmann::json g = {{"id", "needs-gpu"}, {"steps", {{{"id", "s"}, {"shell", "true"}, {"agent", "gpu"}}}}};
  RunOutput r = c.SubmitJson(g, {});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(Has(r.err, "warning: group needs-gpu: steps wait: no live worker offers agent \"gpu\""));
  RunOutput brief = c.Cli({"groups", "--json"});
  CHECK(Has(brief.out, "no live worker offers agent"));
  // Once a worker offering it joins, the group runs.
  c.StartWorker("g1", 1, {"--agents", "gpu"});
  CHECK(c.Cli({"wait", "needs-gpu"}).exit_code == 0);
  CHECK_FALSE(Has(c.Cli({"groups", "--json"}).out, "no live worker offers agent"));
}

}  // namespace
}  // namespace cohort::testing
