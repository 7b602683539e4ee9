// What an operator relies on, tried on real daemons: systemd's notify
// protocol on a NOTIFY_SOCKET of the test's own, a worker drained by SIGTERM
// or by `cohort drain`, cordons, `cohort workers` states and `cohort ping`.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() { ::close(fd_); }
  const std::string& path() const { return path_; }

  // The next datagram within `timeout`, or "" when none came.
  std::string Next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  // Reads datagrams until one contains `text`; every one read is kept.
  bool WaitFor(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string m = Next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                                   std::chrono::steady_clock::now()));
      if (m.empty()) continue;
      seen.push_back(m);
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> seen;

 private:
  std::string path_;
  int fd_ = -1;
};

// Sets the notify variables for the daemon started in `start`, and only it.
template <typename F>
void WithNotify(const NotifySocket& s, F start) {
  ::setenv("NOTIFY_SOCKET", s.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "1000000", 1);  // a ping every 500 ms
  start();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
}

Json WorkerNamed(Cluster& c, const std::string& name) {
  for (const Json& w : c.Workers()) {
    if (w.value("name", "") == name) return w;
  }
  return nullptr;
}

TEST_CASE("both daemons speak systemd's notify protocol: ready once bound, status, watchdog, stopping",
          "[ops][systemd]") {
  Cluster c;
  NotifySocket coord(c.dir() + "/coordinator.notify");
  WithNotify(coord, [&] { c.StartCoordinator(); });
  // Before READY=1 only what it was doing (loading its state, with the
  // watchdog stretched for it); READY=1 with the status line.
  REQUIRE(coord.WaitFor("READY=1", 10s));
  CHECK(coord.seen.front().find("STATUS=loading the state from sqlite ") != std::string::npos);
  CHECK(coord.seen.back().find("STATUS=0 groups running, 0 steps running, 0 workers") != std::string::npos);
  for (size_t i = 0; i + 1 < coord.seen.size(); ++i) CHECK(coord.seen[i].find("READY=1") == std::string::npos);
  int watchdogs = 0;
  for (int i = 0; i < 3; ++i) watchdogs += coord.WaitFor("WATCHDOG=1", 3s) ? 1 : 0;
  CHECK(watchdogs == 3);

  NotifySocket worker(c.dir() + "/worker.notify");
  WithNotify(worker, [&] { c.StartWorker("w1", 2); });
  REQUIRE(worker.WaitFor("READY=1", 10s));
  CHECK(worker.WaitFor("STATUS=0/2 slots busy, registered with", 10s));
  CHECK(worker.WaitFor("WATCHDOG=1", 2s));
  // The coordinator's status counts the worker.
  CHECK(coord.WaitFor("STATUS=0 groups running, 0 steps running, 1 workers, 0/2 slots busy", 10s));
  // A step's environment carries no channel to systemd.
  auto out = c.Cli({"submit", "--wait", "--", "sh", "-c", "echo notify=${NOTIFY_SOCKET:-none}"});
  REQUIRE(out.exit_code == 0);
  CHECK(c.Cli({"logs", Json::parse(c.Cli({"groups", "--json"}).out)[0]["group"], "1"}).out == "notify=none\n");

  c.worker("w1").Kill(SIGTERM);
  CHECK(worker.WaitFor("STOPPING=1", 10s));
  CHECK(c.worker("w1").Wait(20s) == 0);
  c.coordinator().Kill(SIGTERM);
  CHECK(coord.WaitFor("STOPPING=1", 10s));
  CHECK(c.coordinator().Wait(20s) == 0);
}

TEST_CASE("SIGTERM drains a worker: its running step finishes there, new steps go elsewhere", "[ops][drain]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("leaving", 1, {"--drain-timeout", "60"});
  auto& leaving = c.worker("leaving");
  const std::string marker = c.dir() + "/started", release = c.dir() + "/release";
  // The step runs until the test releases it, so the drain is seen waiting.
  auto first = c.Cli({"submit", "--", "sh", "-c",
                      "touch " + marker + "; while [ ! -e " + release + " ]; do sleep 0.05; done"});
  REQUIRE(first.exit_code == 0);
  REQUIRE(WaitUntil([&] { return ::access(marker.c_str(), F_OK) == 0; }, 20s));
  leaving.Kill(SIGTERM);
  REQUIRE(WaitUntil([&] { return WorkerNamed(c, "leaving").value("state", "") == "draining"; }, 10s));
  // A worker that joins now gets the next step; the draining one does not.
  c.StartWorker("staying", 1);
  auto second = c.Cli({"submit", "--wait", "--", "true"});
  CHECK(second.exit_code == 0);
  CHECK(WorkerNamed(c, "leaving").value("state", "") == "draining");
  // Released, the first step ends where it ran, once, and the worker leaves.
  WriteFile(release, "");
  CHECK(leaving.Wait(30s) == 0);
  const Json groups = Json::parse(c.Cli({"groups", "--json"}).out);
  REQUIRE(groups.size() == 2);
  // Newest first: the second group, then the first.
  for (const Json& g : groups) {
    const Json r = c.Status(g["group"]);
    CHECK(r["state"] == "completed");
    CHECK(r["steps"][0]["attempts"] == 1);
    CHECK(r["steps"][0]["worker"] == (g["group"] == groups[1]["group"] ? "leaving" : "staying"));
  }
  const std::string log = leaving.Log();
  CHECK(log.find("event=draining") != std::string::npos);
  CHECK(log.find("event=drained") != std::string::npos);
  // It said goodbye: listed as left, not lost.
  CHECK(WaitUntil([&] { return WorkerNamed(c, "leaving").value("state", "") == "left"; }, 10s));
}

TEST_CASE("a drain that runs out of time stops what is left, and a second SIGTERM cuts it short", "[ops][drain]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1, {"--drain-timeout", "1"});
  const std::string marker = c.dir() + "/started";
  REQUIRE(c.Cli({"submit", "--", "sh", "-c", "touch " + marker + "; exec sleep 60"}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return ::access(marker.c_str(), F_OK) == 0; }, 20s));
  c.worker("w1").Kill(SIGTERM);
  CHECK(c.worker("w1").Wait(20s) == 0);
  CHECK(c.worker("w1").Log().find("event=drain_timeout") != std::string::npos);

  // Two slots: the first step may be retried there too.
  c.StartWorker("w2", 2, {"--drain-timeout", "3600"});
  const std::string second = c.dir() + "/second";
  REQUIRE(c.Cli({"submit", "--", "sh", "-c", "touch " + second + "; exec sleep 60"}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return ::access(second.c_str(), F_OK) == 0; }, 30s));
  c.worker("w2").Kill(SIGTERM);
  REQUIRE(WaitUntil([&] { return c.worker("w2").Log().find("event=draining") != std::string::npos; }, 10s));
  c.worker("w2").Kill(SIGTERM);
  CHECK(c.worker("w2").Wait(20s) == 0);
}

TEST_CASE("cohort cordon, drain and uncordon, workers shows states and versions, ping answers", "[ops][cordon]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  Json w = WorkerNamed(c, "w1");
  CHECK(w["state"] == "ready");
  CHECK(w["version"] == COHORT_VERSION);

  REQUIRE(c.Cli({"cordon", "w1"}).exit_code == 0);
  CHECK(WorkerNamed(c, "w1")["state"] == "cordoned");
  // The cordon is in the coordinator's store: a restart keeps it.
  c.coordinator().Kill(SIGTERM);
  REQUIRE(c.coordinator().Wait(20s) == 0);
  c.StartCoordinator();
  REQUIRE(WaitUntil([&] { return c.HasWorker("w1"); }, 20s));
  CHECK(WorkerNamed(c, "w1")["state"] == "cordoned");
  auto submitted = c.Cli({"submit", "--json", "--", "true"});
  REQUIRE(submitted.exit_code == 0);
  const std::string group = Json::parse(submitted.out)["group"];
  const Json waiting = c.Status(group);
  CHECK(waiting["steps"][0]["state"] == "pending");
  CHECK(waiting["steps"][0].value("waiting", "").find("cordoned or draining") != std::string::npos);
  REQUIRE(c.Cli({"uncordon", "w1"}).exit_code == 0);
  CHECK(c.Cli({"wait", group}).exit_code == 0);

  const std::string marker = c.dir() + "/started", release = c.dir() + "/release";
  REQUIRE(c.Cli({"submit", "--", "sh", "-c",
                 "touch " + marker + "; while [ ! -e " + release + " ]; do sleep 0.05; done"})
              .exit_code == 0);
  REQUIRE(WaitUntil([&] { return ::access(marker.c_str(), F_OK) == 0; }, 20s));
  // drain waits while the step runs: with a timeout it gives up, draining.
  auto waited = c.Cli({"drain", "w1", "--timeout", "1"});
  CHECK(waited.exit_code == 1);
  CHECK(waited.err.find("still runs 1 steps") != std::string::npos);
  CHECK(WorkerNamed(c, "w1")["state"] == "draining");
  WriteFile(release, "");
  auto drained = c.Cli({"drain", "w1"});
  CHECK(drained.exit_code == 0);
  CHECK(drained.err.find("drained") != std::string::npos);
  CHECK(WorkerNamed(c, "w1")["state"] == "drained");
  CHECK(WorkerNamed(c, "w1")["running"] == 0);
  auto human = c.Cli({"workers"});
  CHECK(human.out.find("drained") != std::string::npos);
  CHECK(human.out.find(COHORT_VERSION) != std::string::npos);

  auto unknown = c.Cli({"cordon", "nobody"});
  CHECK(unknown.exit_code == 4);
  CHECK(unknown.err.find("no worker named \"nobody\"") != std::string::npos);

  // A lost worker stays listed, with when and why.
  c.worker("w1").Kill(SIGKILL);
  REQUIRE(WaitUntil([&] { return WorkerNamed(c, "w1").value("state", "") == "lost"; }, 20s));
  CHECK(c.Cli({"workers"}).out.find("lost") != std::string::npos);

  auto ping = c.Cli({"ping"});
  CHECK(ping.exit_code == 0);
  CHECK(ping.out.find("cohort-coordinator " COHORT_VERSION ", protocol cohort/2, up ") != std::string::npos);
  CHECK(ping.out.find("leader") != std::string::npos);
  const int dead = FreePort();
  auto down = RunProgram({COHORT_BIN_DIR "/cohort", "ping", "--coordinator", "tcp://127.0.0.1:" + std::to_string(dead),
                          "--connect-timeout", "1"},
                         20s);
  CHECK(down.exit_code == 3);
  CHECK(down.err.find("tcp://127.0.0.1:" + std::to_string(dead)) != std::string::npos);
}

}  // namespace
}  // namespace cohort::testing
