// Ctrl-C while `cohort` waits for a group, typed on a real terminal: the
// first cancels the group and waits until its steps have stopped, the
// second leaves the group running and says how to follow it.
#include <signal.h>

#include <future>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"
#include "tests/integration/pty_process.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string StateOf(Cluster& c, const std::string& group) {
  Json s = c.Status(group);
  return s.is_object() && s.contains("state") ? s["state"].get<std::string>() : "";
}

bool StepRuns(Cluster& c, const std::string& group) {
  Json s = c.Status(group);
  return s.is_object() && s.contains("steps") && !s["steps"].empty() && s["steps"][0]["state"] == "running";
}

}  // namespace

TEST_CASE("Ctrl-C during submit --wait cancels the group and waits until its processes are gone",
          "[e2e][cli][interrupt]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  const std::string m = c.Marker();
  // The sleep's own argument marks it: the step's processes are found in /proc.
  const std::string nap = "3000." + m.substr(std::string("cohortmark").size());
  PtyProcess cli({COHORT_BIN_DIR "/cohort", "submit", "--coordinator", c.client_endpoint(), "--id", "stopme",
                  "--wait", "--", "sh", "-c", "sleep " + nap + "; : " + m});
  REQUIRE(WaitUntil([&] { return StepRuns(c, "stopme") && !ProcessesWith(nap).empty(); }, 30s));
  // The progress bar is drawn once the CLI waits, Ctrl-C in hand.
  REQUIRE(WaitUntil([&] { return cli.Screen().find("] 0/1 done, 1 running") != std::string::npos; }, 30s));

  cli.Type("\x03");
  REQUIRE(WaitUntil([&] { return cli.ExitCode().has_value(); }, 30s));
  INFO(cli.Screen());
  CHECK(*cli.ExitCode() == 130);
  CHECK(cli.Screen().find("cancelling group stopme") != std::string::npos);
  // The CLI left only once the group had ended, with its steps stopped.
  CHECK(StateOf(c, "stopme") == "cancelled");
  CHECK(ProcessesWith(nap).empty());
  CHECK(ProcessesWith(m).empty());
}

TEST_CASE("a second Ctrl-C leaves at once, the group running, and says how to follow it",
          "[e2e][cli][interrupt]") {
  Cluster c;
  c.StartCoordinator();
  // The step shrugs off SIGTERM: the group stays running, being cancelled,
  // until the kill grace ends, which this worker makes longer than the test.
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-worker", "--coordinator",
                                   "tcp://127.0.0.1:" + std::to_string(c.port(1)), "--name", "w1", "--slots", "2",
                                   "--kill-grace-ms", "600000", "--state-dir", c.dir() + "/w1-state"};
  for (const std::string& f : StepUserFlags()) argv.push_back(f);
  Daemon worker(argv, c.dir() + "/w1.log");
  REQUIRE(WaitUntil([&] { return c.HasWorker("w1"); }, 30s));
  const std::string m = c.Marker();
  REQUIRE(c.Cli({"submit", "--id", "stubborn", "--", "sh", "-c", "trap '' TERM; sleep 600; : " + m}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return StepRuns(c, "stubborn") && !ProcessesWith(m).empty(); }, 30s));
  PtyProcess cli({COHORT_BIN_DIR "/cohort", "wait", "--coordinator", c.client_endpoint(), "stubborn"});
  REQUIRE(WaitUntil([&] { return cli.Screen().find("] 0/1 done, 1 running") != std::string::npos; }, 30s));

  cli.Type("\x03");
  REQUIRE(WaitUntil([&] { return cli.Screen().find("cancelling group stubborn") != std::string::npos; }, 30s));
  cli.Type("\x03");
  REQUIRE(WaitUntil([&] { return cli.ExitCode().has_value(); }, 30s));
  INFO(cli.Screen());
  CHECK(*cli.ExitCode() == 130);
  CHECK(cli.Screen().find("`cohort wait stubborn` follows it, `cohort cancel stubborn` cancels it") !=
        std::string::npos);
  CHECK(StateOf(c, "stubborn") == "running");
  CHECK(!ProcessesWith(m).empty());
  // The worker's kill, past its grace, is not this test's to wait for.
  worker.Kill(SIGKILL);
  for (pid_t pid : ProcessesWith(m)) ::kill(pid, SIGKILL);
}

TEST_CASE("a terminal shows a live progress bar, and a pipe none of it", "[e2e][cli][progress]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  // Each group's first step runs until its file appears, so the bar is
  // seen mid-run without guessing how long a step takes.
  auto group = [&](const std::string& id) {
    const std::string gate = c.dir() + "/" + id + ".go";
    return Json{{"id", id},
                {"steps", {{{"id", "gated"}, {"shell", "while [ ! -e " + gate + " ]; do sleep 0.05; done"}},
                           {{"id", "quick"}, {"shell", "true"}}}}};
  };
  const std::string file = c.dir() + "/tty.json";
  WriteFile(file, group("tty").dump());
  PtyProcess cli({COHORT_BIN_DIR "/cohort", "submit", "--coordinator", c.client_endpoint(), file, "--wait"});
  REQUIRE(WaitUntil([&] { return cli.Screen().find("] 1/2 done, 1 running") != std::string::npos; }, 30s));
  CHECK(cli.Screen().find("\r\033[Ktty: [##########..........] 1/2 done, 1 running  ") != std::string::npos);
  WriteFile(c.dir() + "/tty.go", "");
  REQUIRE(WaitUntil([&] { return cli.ExitCode().has_value(); }, 30s));
  CHECK(*cli.ExitCode() == 0);

  const std::string piped = c.dir() + "/pipe.json";
  WriteFile(piped, group("pipe").dump());
  auto waiting = std::async(std::launch::async, [&] { return c.Cli({"submit", piped, "--wait"}); });
  REQUIRE(WaitUntil([&] { return StepRuns(c, "pipe"); }, 30s));
  WriteFile(c.dir() + "/pipe.go", "");
  RunOutput r = waiting.get();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "group pipe: completed in " + r.out.substr(25, r.out.find(':', 25) - 25) +
                     ": 2 completed (2 steps)\n");
  CHECK(r.err.empty());
}

}  // namespace cohort::testing
