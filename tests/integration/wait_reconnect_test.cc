// A waiting CLI across coordinator outages and restarts (cli/group_waiter.h).
// A coordinator that stays down ends the wait after --connect-timeout (exit
// 3, naming the outage); one restarted without the group ends it with exit 1
// saying so, with and without CURVE. The way through a restart that kept the
// group, which today's in-memory coordinator cannot show, is played by a fake
// coordinator on the client port: the CLI sends its WAIT again, under its
// first req, after an outage and after a restart too quick to see, and never
// while the coordinator's HEARTBEATs show it holds the WAIT.
//
// The CLI runs in the background with its stderr on a terminal, so that it
// draws its progress line: the line is the proof that it has heard from the
// coordinator, which each test waits for before the coordinator goes away.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"
#include "tests/integration/peer.h"

extern char** environ;

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kCli = COHORT_BIN_DIR "/cohort";

// The CLI as a background process: stdout a pipe, stderr a terminal, both
// read while it runs.
class LiveCli {
 public:
  explicit LiveCli(std::vector<std::string> argv) {
    int out[2];
    if (::openpty(&err_fd_, &tty_, nullptr, nullptr, nullptr) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      throw std::runtime_error("openpty or pipe failed");
    }
    ::fcntl(err_fd_, F_SETFD, FD_CLOEXEC);
    ::fcntl(tty_, F_SETFD, FD_CLOEXEC);
    out_fd_ = out[0];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, tty_, 2);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(tty_);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ~LiveCli() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {out_fd_, err_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  LiveCli(const LiveCli&) = delete;
  LiveCli& operator=(const LiveCli&) = delete;

  // Whether its stderr so far holds `text`.
  bool ErrHas(const std::string& text) {
    Pump();
    return err_.find(text) != std::string::npos;
  }

  // Waits up to `timeout` for it to exit (then kills it: exit code -1), and
  // returns all it wrote.
  RunOutput Finish(std::chrono::milliseconds timeout) {
    int status = 0;
    WaitUntil(
        [&] {
          Pump();
          reaped_ = ::waitpid(pid_, &status, WNOHANG) == pid_;
          return reaped_;
        },
        timeout);
    RunOutput r;
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      reaped_ = true;
    } else {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    WaitUntil(
        [&] {
          Pump();
          return out_fd_ < 0 && err_fd_ < 0;
        },
        5s);
    r.out = out_;
    r.err = err_;
    return r;
  }

 private:
  // Reads what is there, without waiting. A terminal whose other side is
  // closed reads as EIO: the end, like a pipe's 0.
  void Pump() {
    for (auto [fd, text] : {std::pair{&out_fd_, &out_}, std::pair{&err_fd_, &err_}}) {
      while (*fd >= 0) {
        pollfd p{*fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
        char buf[4096];
        const ssize_t n = ::read(*fd, buf, sizeof buf);
        if (n > 0) {
          text->append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(*fd);
          *fd = -1;
        }
      }
    }
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_fd_ = -1, err_fd_ = -1, tty_ = -1;
  std::string out_, err_;
};

// The start of a group's progress line.
std::string Progress(const std::string& group) { return group + ": ["; }

// A group of one step and no worker: it stays running.
void SubmitPending(Cluster& c, const std::string& group) {
  RunOutput r = c.SubmitJson({{"id", group}, {"steps", {{{"id", "s"}, {"shell", "true"}}}}}, {});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

std::vector<std::string> WaitArgs(Cluster& c, const std::string& group, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {kCli, "wait", group, "--coordinator", c.client_endpoint()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// SIGKILLs the cluster's coordinator and, with `restart`, starts a new one
// on the same ports; returns when the old one was reaped.
Clock::time_point KillCoordinator(Cluster& c, bool restart, std::vector<std::string> flags = {}) {
  c.coordinator().Kill(SIGKILL);
  REQUIRE(c.coordinator().Wait(5s) >= 0);
  const auto down = Clock::now();
  if (restart) c.StartCoordinator(std::move(flags));
  return down;
}

TEST_CASE("a waiting CLI whose coordinator stays down exits 3 after --connect-timeout, naming the outage",
          "[e2e][restart][wait]") {
  Cluster c;
  c.StartCoordinator();
  SubmitPending(c, "stranded");
  LiveCli cli(WaitArgs(c, "stranded", {"--connect-timeout", "2"}));
  REQUIRE(WaitUntil([&] { return cli.ErrHas(Progress("stranded")); }, 20s));
  const auto down = KillCoordinator(c, false);
  RunOutput w = cli.Finish(30s);
  const auto took = Clock::now() - down;
  INFO(w.err);
  CHECK(w.exit_code == 3);
  CHECK(w.err.find("while waiting for group stranded") != std::string::npos);
  CHECK(w.err.find("cannot reach the coordinator at " + c.client_endpoint()) != std::string::npos);
  CHECK(w.err.find("has not answered for 2.") != std::string::npos);
  CHECK(w.err.find("--connect-timeout 2.0s, the longest outage") != std::string::npos);
  // About the timeout after the kill: not at once, not much later.
  CHECK(took >= 1500ms);
  CHECK(took < 10s);
  std::cout << "coordinator down: the wait gave up "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms after the kill\n";
}

// A coordinator that keeps nothing (--store memory) forgets the group; the
// durable default keeps it, and durable_test.cc waits across that restart.
TEST_CASE("a waiting CLI reconnects to a restarted coordinator and says it no longer knows the group",
          "[e2e][restart][wait]") {
  const bool submitted_here = GENERATE(false, true);
  INFO((submitted_here ? "submit --wait" : "wait"));
  Cluster c;
  c.StartCoordinator({"--store", "memory"});
  const std::string group = "forgotten";
  std::unique_ptr<LiveCli> cli;
  if (submitted_here) {
    const std::string path = c.dir() + "/group.json";
    WriteFile(path, Json({{"id", group}, {"steps", {{{"id", "s"}, {"shell", "true"}}}}}).dump());
    cli = std::make_unique<LiveCli>(
        std::vector<std::string>{kCli, "submit", path, "--wait", "--coordinator", c.client_endpoint()});
  } else {
    SubmitPending(c, group);
    cli = std::make_unique<LiveCli>(WaitArgs(c, group));
  }
  REQUIRE(WaitUntil([&] { return cli->ErrHas(Progress(group)); }, 20s));
  KillCoordinator(c, true, {"--store", "memory"});
  RunOutput w = cli->Finish(30s);
  INFO(w.err);
  CHECK(w.exit_code == 4);
  CHECK(w.err.find("while waiting for group " + group) != std::string::npos);
  CHECK(w.err.find("the coordinator at " + c.client_endpoint() + " restarted") != std::string::npos);
  CHECK(w.err.find("no longer knows the group") != std::string::npos);
  CHECK(w.err.find("no group \"" + group + "\"") != std::string::npos);  // the coordinator's own words
  CHECK(w.out.empty());
}

TEST_CASE("a waiting CLI reconnects through CURVE to a restarted coordinator", "[e2e][restart][wait][curve]") {
  Cluster c;
  const std::string keys = c.dir() + "/keys";
  REQUIRE(::mkdir(keys.c_str(), 0700) == 0);
  for (const char* allowlist : {"/clients", "/workers"}) REQUIRE(::mkdir((keys + allowlist).c_str(), 0755) == 0);
  for (const char* name : {"coordinator", "alice"}) {
    REQUIRE(RunProgram({kCli, "keygen", name, "--dir", keys}, 30s).exit_code == 0);
  }
  WriteFile(keys + "/clients/alice.key", ReadFile(keys + "/alice.key"));
  REQUIRE(::chmod((keys + "/clients/alice.key").c_str(), 0644) == 0);
  const std::vector<std::string> coordinator_keys = {"--curve-secret-key", keys + "/coordinator.key_secret",
                                                     "--authorized-clients", keys + "/clients",
                                                     "--authorized-workers", keys + "/workers",
                                                     "--store", "memory"};
  const std::vector<std::string> alice = {"--coordinator-key", keys + "/coordinator.key", "--curve-secret-key",
                                          keys + "/alice.key_secret"};
  c.SetCliFlags(alice);
  c.StartCoordinator(coordinator_keys);
  SubmitPending(c, "sealed");
  LiveCli cli(WaitArgs(c, "sealed", alice));
  REQUIRE(WaitUntil([&] { return cli.ErrHas(Progress("sealed")); }, 20s));
  KillCoordinator(c, true, coordinator_keys);
  RunOutput w = cli.Finish(30s);
  INFO(w.err);
  CHECK(w.exit_code == 4);
  CHECK(w.err.find("restarted") != std::string::npos);
  CHECK(w.err.find("no longer knows the group") != std::string::npos);
}

// Plays the coordinator on a client port: answers polls (brief STATUS) with
// a running group of one step, holds every WAIT, sends HEARTBEATs to the
// clients holding one when told to, and the group's result when told to.
class FakeCoordinator {
 public:
  explicit FakeCoordinator(const std::string& endpoint) : peer_(endpoint, zmq::socket_type::router, true) {}

  // Answers what has arrived.
  void Serve() {
    std::string route;
    while (auto m = peer_.Receive(0ms, &route)) {
      if (auto* w = std::get_if<common::WaitMsg>(&*m)) {
        waits_.push_back({route, w->req});
      } else if (auto* s = std::get_if<common::StatusMsg>(&*m); s && s->brief) {
        common::ReplyMsg r;
        r.req = s->req;
        r.body = Json({{"group", s->group}, {"state", "running"}, {"total", 1}, {"running", 0}}).dump();
        peer_.Send(r, route);
      }
    }
  }
  // Holds no WAIT any more, as after a restart.
  void Forget() { waits_.clear(); }
  void Heartbeat() {
    for (const auto& w : waits_) peer_.Send(common::HeartbeatMsg{}, w.route);
  }
  // The group completed: the answer to the first WAIT held.
  void Complete(const std::string& group) {
    REQUIRE(!waits_.empty());
    common::ReplyMsg r;
    r.req = waits_[0].req;
    r.body = Json({{"group", group}, {"state", "completed"}, {"steps", Json::array()}}).dump();
    peer_.Send(r, waits_[0].route);
  }

  struct Wait {
    std::string route;
    uint64_t req;
  };
  const std::vector<Wait>& waits() const { return waits_; }

 private:
  Peer peer_;
  std::vector<Wait> waits_;
};

std::string FakeEndpoint() { return "tcp://127.0.0.1:" + std::to_string(FreePort()); }

// Starts `cohort wait GROUP` on a fake coordinator and returns once the
// coordinator holds its WAIT and the CLI has drawn an answer to a poll.
std::unique_ptr<LiveCli> WaitOnFake(const std::string& endpoint, const std::string& group, FakeCoordinator& fake) {
  auto cli = std::make_unique<LiveCli>(
      std::vector<std::string>{kCli, "wait", group, "--coordinator", endpoint, "--connect-timeout", "30"});
  const bool held = WaitUntil(
      [&] {
        fake.Serve();
        return !fake.waits().empty() && cli->ErrHas(Progress(group));
      },
      20s);
  REQUIRE(held);
  return cli;
}

// Serves until the CLI sends a WAIT, and answers it; returns the CLI's output.
RunOutput CompleteWhenWaited(FakeCoordinator& fake, LiveCli& cli, uint64_t first_req) {
  const bool waited = WaitUntil(
      [&] {
        fake.Serve();
        return !fake.waits().empty();
      },
      20s);
  REQUIRE(waited);
  CHECK(fake.waits()[0].req == first_req);  // a repeat, which a coordinator can tell from a new WAIT
  fake.Complete("kept");
  return cli.Finish(20s);
}

TEST_CASE("a waiting CLI sends its WAIT again to a coordinator back from an outage, and shows the result",
          "[e2e][restart][wait]") {
  const std::string ep = FakeEndpoint();
  auto fake = std::make_unique<FakeCoordinator>(ep);
  auto cli = WaitOnFake(ep, "kept", *fake);
  const uint64_t req = fake->waits()[0].req;
  fake.reset();
  REQUIRE(WaitUntil([&] { return cli->ErrHas("has not answered for"); }, 20s));
  // A new coordinator on the same port, which kept the group but holds no WAIT.
  fake = std::make_unique<FakeCoordinator>(ep);
  RunOutput w = CompleteWhenWaited(*fake, *cli, req);
  INFO(w.err);
  CHECK(w.exit_code == 0);
  CHECK(w.out.find("group kept: completed") != std::string::npos);
  CHECK(w.err.find("answers again after") != std::string::npos);
}

TEST_CASE("a waiting CLI repeats its WAIT when the HEARTBEATs stop, and not while they come",
          "[e2e][restart][wait]") {
  const std::string ep = FakeEndpoint();
  FakeCoordinator fake(ep);
  auto cli = WaitOnFake(ep, "kept", fake);
  const uint64_t req = fake.waits()[0].req;
  // HEARTBEATs every 3 s, as a coordinator holding a WAIT sends them by
  // default, over a window longer than the silence after which the CLI
  // repeats its WAIT (kWaitSilence, 7 s): no repeat.
  const auto until = Clock::now() + 9s;
  auto next_beat = Clock::now();
  WaitUntil(
      [&] {
        fake.Serve();
        if (Clock::now() >= next_beat) {
          fake.Heartbeat();
          next_beat += 3s;
        }
        return Clock::now() >= until;
      },
      20s);
  CHECK(fake.waits().size() == 1);
  // A coordinator restarted too quickly for the CLI to see an outage answers
  // its polls but holds no WAIT, so sends no HEARTBEAT. The fake plays it by
  // forgetting the WAIT on the same connection: a real restart could also
  // lose a poll in flight, which would show an outage first.
  fake.Forget();
  const auto forgot = Clock::now();
  RunOutput w = CompleteWhenWaited(fake, *cli, req);
  const auto took = Clock::now() - forgot;
  INFO(w.err);
  CHECK(w.exit_code == 0);
  CHECK(w.out.find("group kept: completed") != std::string::npos);
  CHECK(w.err.find("has not answered") == std::string::npos);
  // kWaitSilence after the last HEARTBEAT, sent at most 3 s before.
  CHECK(took >= 3500ms);
  CHECK(took < 15s);
}

}  // namespace
}  // namespace cohort::testing
