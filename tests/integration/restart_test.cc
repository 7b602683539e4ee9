// Coordinator restarts with --store memory, and worker restarts. A
// coordinator that keeps nothing has forgotten every group when it comes
// back; nobody may be left hanging: workers re-register and stop the steps
// of groups it no longer knows, a client waiting on a group gets an error
// naming it, and new groups run. (durable_test.cc has the default store,
// where a restart loses nothing.)
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <future>
#include <iostream>
#include <memory>
#include <set>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Json Marked(Json step, const std::string& marker) {
  step["env"] = {{"COHORT_TEST_MARK", marker}};
  return step;
}

// A step that writes a file when it gets SIGTERM and keeps a child, so that
// stopping it whole is visible.
std::string Trapping(const std::string& dir, const std::string& name) {
  return "trap 'echo term > " + dir + "/" + name + ".term; exit 143' TERM; sleep 60 & wait";
}

TEST_CASE("after a restart of a coordinator that keeps nothing, waiters get an error naming the group and "
          "workers stop orphaned steps",
          "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator({"--store", "memory"});
  c.StartWorker("w1", 2);
  c.StartWorker("w2", 2);
  const std::string m = c.Marker();
  Json g = {{"id", "before-restart"},
            {"steps",
             {Marked({{"id", "a"}, {"shell", Trapping(c.dir(), "a")}}, m),
              Marked({{"id", "b"}, {"shell", Trapping(c.dir(), "b")}}, m),
              Marked({{"id", "c"}, {"shell", Trapping(c.dir(), "c")}}, m)}}};
  REQUIRE(c.SubmitJson(g, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() >= 6; }, 20s));  // a shell and a sleep per step

  // Two clients wait on it: the CLI and one that only sent WAIT.
  auto waiting = std::async(std::launch::async, [&] { return c.Cli({"wait", "before-restart"}, 60s); });

  c.coordinator().Kill(SIGKILL);
  c.coordinator().Wait(5s);
  const auto down = Clock::now();
  c.StartCoordinator({"--store", "memory"});  // the same ports, an empty memory

  // The waiting client learns the group is gone, by name, instead of hanging.
  REQUIRE(waiting.wait_for(30s) == std::future_status::ready);
  RunOutput w = waiting.get();
  INFO(w.err);
  CHECK(w.exit_code == 4);
  CHECK(w.err.find("before-restart") != std::string::npos);
  CHECK(w.err.find("no group") != std::string::npos);

  // Both workers come back and are told to stop the steps nobody knows any more.
  REQUIRE(WaitUntil([&] { return c.HasWorker("w1") && c.HasWorker("w2"); }, 30s));
  CHECK(WaitUntil([&] { return ProcessesWith(m).empty(); }, 30s));
  for (const char* s : {"a", "b", "c"}) CHECK(ReadFile(c.dir() + "/" + s + ".term") == "term\n");
  std::cout << "coordinator restart: orphaned steps stopped "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - down).count()
            << " ms after the kill\n";
  CHECK(c.worker("w1").Log().find("register") != std::string::npos);

  // The old group is unknown (status says so by name); new groups run, on
  // both workers, their slots not held by the stopped attempts.
  RunOutput st = c.Cli({"status", "before-restart"});
  CHECK(st.exit_code == 4);
  CHECK(st.err.find("before-restart") != std::string::npos);
  Json steps = Json::array();
  for (int i = 0; i < 4; ++i) steps.push_back({{"id", "n" + std::to_string(i)}, {"shell", "sleep 0.3; echo ok"}});
  RunOutput r = c.SubmitJson({{"id", "after-restart"}, {"steps", steps}}, {"--wait", "--json"});
  REQUIRE(r.exit_code == 0);
  Json res = Json::parse(r.out);
  std::set<std::string> used;
  for (const Json& s : res["steps"]) used.insert(s["worker"].get<std::string>());
  CHECK(used.size() == 2);
  // The new coordinator knows only the new group.
  RunOutput groups = c.Cli({"groups", "--json"});
  Json list = Json::parse(groups.out);
  REQUIRE(list.size() == 1);
  CHECK(list[0]["group"] == "after-restart");
}

TEST_CASE("a coordinator that stays down - waiting clients exit 3 naming the group and workers keep trying",
          "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  REQUIRE(c.SubmitJson({{"id", "stranded"}, {"steps", {{{"id", "s"}, {"shell", "sleep 60"}}}}}, {}).exit_code == 0);
  auto waiting = std::async(std::launch::async, [&] {
    return c.Cli({"wait", "stranded", "--connect-timeout", "2"}, 60s);
  });
  REQUIRE(WaitUntil([&] { return c.Status("stranded")["steps"][0]["state"] == "running"; }, 20s));
  c.coordinator().Kill(SIGKILL);
  c.coordinator().Wait(5s);
  const auto down = Clock::now();
  REQUIRE(waiting.wait_for(30s) == std::future_status::ready);
  RunOutput w = waiting.get();
  INFO(w.err);
  CHECK(w.exit_code == 3);
  CHECK(w.err.find("stranded") != std::string::npos);
  CHECK(w.err.find("cannot reach the coordinator") != std::string::npos);
  CHECK(Clock::now() - down < 10s);
  // The worker notices the silence and keeps trying, with its step running.
  CHECK(WaitUntil([&] { return c.worker("w1").Log().find("coordinator_silent") != std::string::npos; }, 10s));
  CHECK(waitpid(c.worker("w1").pid(), nullptr, WNOHANG) == 0);
}

// A worker started by hand (StartWorker waits for it to join, which a worker
// under a name in use never does).
std::unique_ptr<Daemon> StartTwin(Cluster& c, const std::string& name) {
  return std::make_unique<Daemon>(
      std::vector<std::string>{COHORT_BIN_DIR "/cohort-worker", "--coordinator",
                               "tcp://127.0.0.1:" + std::to_string(c.port(1)), "--name", name, "--slots", "1",
                               "--heartbeat-ms", "200", "--state-dir", c.dir() + "/twin-" + name + "-state",
                               "--run-as", StepUserFlags()[1]},
      c.dir() + "/twin-" + name + ".log");
}

// A second install of cohort-worker (another binary path) started under a
// name in use, serving another coordinator: it must not touch the steps of
// the live worker of that name.
TEST_CASE("a worker never kills the steps of another worker with its name, from another install",
          "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  const std::string m = c.Marker();
  REQUIRE(c.SubmitJson({{"id", "live"}, {"steps", {Marked({{"id", "s"}, {"shell", "sleep 300 & sleep 300 & wait"}}, m)}}},
                       {})
              .exit_code == 0);
  // /proc/PID/environ reads empty while a process is in execve, so one read
  // can miss a process: a list counts once two reads in a row agree.
  std::vector<pid_t> before;
  REQUIRE(WaitUntil(
      [&] {
        before = ProcessesWith(m);
        return before.size() == 3 && ProcessesWith(m) == before;
      },
      20s));

  const std::string other_install = c.dir() + "/other-install";
  REQUIRE(RunProgram({"/bin/mkdir", "-p", other_install}, 10s).exit_code == 0);
  REQUIRE(RunProgram({"/bin/cp", COHORT_BIN_DIR "/cohort-worker", other_install + "/cohort-worker"}, 10s).exit_code ==
          0);
  Cluster elsewhere;  // another coordinator, on other ports
  elsewhere.StartCoordinator();
  Daemon second({other_install + "/cohort-worker", "--coordinator",
                 "tcp://127.0.0.1:" + std::to_string(elsewhere.port(1)), "--name", "w1", "--slots", "1",
                 "--heartbeat-ms", "200", "--state-dir", c.dir() + "/other-install/state", "--run-as",
                 StepUserFlags()[1]},
                c.dir() + "/second-w1.log");
  REQUIRE(WaitUntil([&] { return elsewhere.HasWorker("w1"); }, 20s));
  CHECK(second.Log().find("leftovers_killed") == std::string::npos);
  // A killed process never comes back; a read that missed one does.
  CHECK(WaitUntil([&] { return ProcessesWith(m) == before; }, 5s));
  CHECK(c.Status("live")["state"] == "running");
  CHECK(c.Cli({"cancel", "live"}).exit_code == 0);
}

// One state directory is one worker's: a second worker given it refuses to
// start, and says which process holds it.
TEST_CASE("a second worker on a state directory in use refuses to start and names the holder", "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  Daemon& first = c.StartWorker("w1", 1, {"--state-dir", c.dir() + "/w1-state"});
  Daemon second({COHORT_BIN_DIR "/cohort-worker", "--coordinator", "tcp://127.0.0.1:" + std::to_string(c.port(1)),
                 "--name", "w2", "--state-dir", c.dir() + "/w1-state", "--run-as", StepUserFlags()[1]},
                c.dir() + "/second.log");
  CHECK(second.Wait(20s) == 6);  // cannot start as configured: no restart
  const std::string log = second.Log();
  CHECK(log.find(c.dir() + "/w1-state") != std::string::npos);
  CHECK(log.find("pid " + std::to_string(first.pid())) != std::string::npos);
  CHECK(c.HasWorker("w1"));
  CHECK_FALSE(c.HasWorker("w2"));
}

TEST_CASE("a SIGKILLed worker's steps and everything they started die with it", "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  const std::string m = c.Marker();
  REQUIRE(c.SubmitJson({{"id", "deep"},
                        {"steps", {Marked({{"id", "s"}, {"shell", "setsid sleep 300 & sleep 300 & wait"}}, m)}}},
                       {})
              .exit_code == 0);
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() == 3; }, 20s));
  c.worker("w1").Kill(SIGKILL);
  c.worker("w1").Wait(5s);
  // The step's PID namespace dies with its init, which dies with the worker.
  CHECK(WaitUntil([&] { return ProcessesWith(m).empty(); }, 10s));
}

// Where steps run in process groups (no PID namespaces), the leftover scan
// is what stops them.
TEST_CASE("a worker restarted after SIGKILL kills what its previous life left running", "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  // Only w1 offers the step's label: were it to run again on "other" once
  // w1 is declared lost, the counts below would race with it.
  const std::vector<std::string> w1_flags = {"--agents", "deep", "--step-isolation", "process-group"};
  c.StartWorker("w1", 2, w1_flags);
  const std::string m = c.Marker();
  // Two background children per step: they outlive a SIGKILLed worker (only
  // the step's shell gets the parent-death signal).
  REQUIRE(c.SubmitJson({{"id", "deep"},
                        {"steps", {Marked({{"id", "s"}, {"shell", "sleep 300 & sleep 300 & wait"}, {"agent", "deep"}}, m)}}},
                       {})
              .exit_code == 0);
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() == 3; }, 20s));
  c.worker("w1").Kill(SIGKILL);
  c.worker("w1").Wait(5s);
  // The shell died with the worker; its children run on, orphaned.
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() == 2; }, 10s));
  const std::vector<pid_t> orphans = ProcessesWith(m);
  // The orphans themselves, not every marked process: the step's retry on the
  // restarted w1 carries the same marker and may start at once.
  auto orphans_gone = [&] {
    for (pid_t p : ProcessesWith(m)) {
      if (std::find(orphans.begin(), orphans.end(), p) != orphans.end()) return false;
    }
    return true;
  };

  // A second worker under another name leaves them alone ...
  c.StartWorker("other", 1);
  CHECK(ProcessesWith(m).size() == 2);
  // ... and so does one under the same name while a live worker holds it.
  auto twin = StartTwin(c, "other");
  REQUIRE(WaitUntil([&] { return twin->Log().find("registering") != std::string::npos; }, 20s));

  // The worker named w1, started again, kills them before it registers.
  c.StartWorker("w1", 2, w1_flags);
  CHECK(WaitUntil(orphans_gone, 10s));
  CHECK(c.worker("w1").Log().find("event=leftovers_killed worker=w1 processes=2") != std::string::npos);
  CHECK(twin->Log().find("leftovers_killed") == std::string::npos);
  // The group was not lost: its step ran again, and is cancelled cleanly.
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() == 3; }, 20s));
  CHECK(c.Cli({"cancel", "deep"}).exit_code == 0);
  RunOutput w = c.Cli({"wait", "deep", "--json"});
  CHECK(Json::parse(w.out)["state"] == "cancelled");
  CHECK(WaitUntil([&] { return ProcessesWith(m).empty(); }, 10s));
}

TEST_CASE("a worker never kills the steps of a live worker that holds its name", "[e2e][restart]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("held", 1);
  const std::string m = c.Marker();
  REQUIRE(c.SubmitJson({{"id", "alive"},
                        {"steps", {Marked({{"id", "s"}, {"shell", "sleep 300 & wait"}}, m)}}},
                       {})
              .exit_code == 0);
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() == 2; }, 20s));
  auto twin = StartTwin(c, "held");
  REQUIRE(WaitUntil([&] { return twin->Log().find("is in use by another live worker") != std::string::npos; }, 20s));
  CHECK(ProcessesWith(m).size() == 2);
  CHECK(twin->Log().find("leftovers_killed") == std::string::npos);
  CHECK(c.Status("alive")["steps"][0]["attempts"] == 1);
}

}  // namespace
}  // namespace cohort::testing
