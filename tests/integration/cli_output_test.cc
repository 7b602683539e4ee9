// What a person sees of `cohort` day to day, through the real CLI against
// real daemons: a one-step submit that reads like running the command, a
// group's end summary that fits a screen, one step in detail.
#include <unistd.h>

#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string HostName() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

TEST_CASE("submit --wait -- CMD prints the step's output and exits with its code", "[e2e][cli]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);

  // The worker runs on this host: its name, and nothing else, on stdout.
  RunOutput host = c.Cli({"submit", "--wait", "--", "hostname"});
  INFO(host.err);
  CHECK(host.exit_code == 0);
  CHECK(host.out == HostName() + "\n");

  RunOutput both = c.Cli({"submit", "--wait", "--", "sh", "-c", "echo out; echo err >&2; exit 7"});
  CHECK(both.exit_code == 7);
  CHECK(both.out == "out\n");
  CHECK(both.err.starts_with("err\n"));
  CHECK(both.err.find("exited with code 7") != std::string::npos);

  // Bytes that are not UTF-8 come through as the step wrote them.
  RunOutput raw = c.Cli({"submit", "--wait", "--", "printf", "a\\377\\376b"});
  CHECK(raw.exit_code == 0);
  CHECK(raw.out == "a\xff\xfe" "b");

  // 2 and 3 are cohort's own (bad usage, coordinator unreachable).
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "exit 2"}).exit_code == 1);
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "exit 3"}).exit_code == 1);
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "kill -TERM $$"}).exit_code == 128 + 15);
  RunOutput late = c.Cli({"submit", "--wait", "--timeout", "0.2", "--", "sleep", "60"});
  INFO(late.err);
  CHECK(late.exit_code == 124);

  // --json keeps the result document.
  RunOutput json = c.Cli({"submit", "--wait", "--json", "--", "echo", "hi"});
  CHECK(json.exit_code == 0);
  CHECK(Json::parse(json.out)["steps"][0]["stdout"] == "hi\n");
}

TEST_CASE("a group's end fits a screen and names its failed steps with their stderr", "[e2e][cli]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 4);
  c.StartWorker("w2", 4);
  Json steps = Json::array();
  for (int i = 1; i <= 1000; ++i) steps.push_back({{"id", "s" + std::to_string(i)}, {"shell", "true"}});
  steps[16]["shell"] = "echo noise; echo first-line >&2; echo boom-17 >&2; exit 3";
  steps[502]["shell"] = "echo only-stdout-503; exit 4";
  RunOutput r = c.SubmitJson({{"id", "big"}, {"on_failure", "continue"}, {"steps", steps}}, {"--wait"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') <= 40);
  CHECK(r.out.starts_with("group big: failed in "));
  CHECK(r.out.find("998 completed, 2 failed (1000 steps)") != std::string::npos);
  CHECK(r.out.find("s17: exited with code 3") != std::string::npos);
  CHECK(r.out.find("| first-line\n      | boom-17\n") != std::string::npos);
  CHECK(r.out.find("noise") == std::string::npos);  // its stderr was not empty
  CHECK(r.out.find("s503: exited with code 4") != std::string::npos);
  CHECK(r.out.find("| only-stdout-503\n") != std::string::npos);

  // `wait --all` is the table of every step.
  RunOutput all = c.Cli({"wait", "big", "--all"});
  CHECK(std::count(all.out.begin(), all.out.end(), '\n') > 1000);
}

TEST_CASE("a group's end counts its cancelled steps by the step that failed, and status shows one step",
          "[e2e][cli]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 4);
  Json steps = Json::array();
  for (int i = 1; i <= 3; ++i) steps.push_back({{"id", "sleeper" + std::to_string(i)}, {"shell", "sleep 60"}});
  steps.push_back({{"id", "bad"}, {"shell", "echo broken >&2; exit 5"}});
  for (int i = 1; i <= 8; ++i) steps.push_back({{"id", "later" + std::to_string(i)}, {"shell", "true"}});
  RunOutput r = c.SubmitJson({{"id", "stop"}, {"steps", steps}}, {"--wait"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("1 failed step:\n  bad: exited with code 5") != std::string::npos);
  CHECK(r.out.find("| broken\n") != std::string::npos);
  // The three running sleepers, and the eight never started.
  CHECK(r.out.find("11 cancelled: cancelled because step \"bad\" failed\n") != std::string::npos);

  RunOutput bad = c.Cli({"status", "stop", "bad"});
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.starts_with("step bad of group stop: failed: exited with code 5\n"
                            "ATTEMPT  WORKER  STATUS  EXIT  STARTED"));
  CHECK(bad.out.find("\n1        w1      failed  5     ") != std::string::npos);
  CHECK(bad.out.find("stderr, last 1 line (all of it: cohort logs stop bad --stderr):\n  | broken\n") !=
        std::string::npos);
  CHECK(Json::parse(c.Cli({"status", "stop", "later3", "--json"}).out)["error"] ==
        "cancelled because step \"bad\" failed");
  RunOutput none = c.Cli({"status", "stop", "nosuch"});
  CHECK(none.exit_code == 4);
  CHECK(none.err.find("group stop has no step nosuch") != std::string::npos);
  // A step is never taken for the whole group.
  RunOutput wait_step = c.Cli({"wait", "stop", "--step", "bad"});
  CHECK(wait_step.exit_code == 2);
  CHECK(wait_step.err.find("cohort status stop bad") != std::string::npos);
  CHECK(c.Cli({"wait", "stop", "bad"}).exit_code == 2);
}

}  // namespace cohort::testing
