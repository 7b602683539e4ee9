// Hostile peers: a real coordinator and real workers fed
// garbage, truncated and mistyped messages, wrong versions, oversized bodies,
// huge groups, huge ids and a flood of connections. Each gets a clear error
// or is dropped; the daemons stay up, keep serving, and their memory stays
// within the limits docs/RELIABILITY.md lists.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <random>

#include <catch2/catch.hpp>

#include "common/codec.h"
#include "common/protocol.h"
#include "tests/integration/cluster.h"
#include "tests/integration/peer.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using common::Status;

// Sends `frames` and proves, with a good request that follows on the same
// connection, that the coordinator read them, answered none of them and
// still serves: replies on one connection come in the order requests were read.
void ExpectDropped(Peer& p, const std::vector<std::string>& frames) {
  p.SendFrames(frames);
  static uint64_t probes = 900000;
  const uint64_t probe = ++probes;
  common::GroupsMsg groups;
  groups.req = probe;
  p.Send(groups);
  while (true) {
    auto m = p.Receive(30s);
    REQUIRE(m);  // no answer at all: the coordinator stalled or died
    auto* r = std::get_if<common::ReplyMsg>(&*m);
    REQUIRE(r);
    INFO("an answer to a message that should have been dropped: req " << r->req << " " << r->error << "; frames "
                                                                      << ::Catch::Detail::stringify(frames));
    REQUIRE(r->req == probe);
    CHECK(r->code == Status::Code::kOk);
    return;
  }
}

std::string Submit(Peer& p, const std::string& spec, Status::Code* code) {
  common::SubmitMsg m;
  m.spec = spec;
  auto r = p.Call(m, 120s);
  REQUIRE(r);
  *code = r->code;
  return r->error;
}

std::string StepsJson(size_t n) {
  std::string s = R"({"steps":[)";
  s.reserve(n * 32 + 16);
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ',';
    s += R"({"id":")" + std::to_string(i) + R"(","shell":"true"})";
  }
  return s + "]}";
}

// Messages the codec refuses: each is dropped and logged, never answered.
void SendBadFrames(Peer& p) {
  // Truncated multipart messages, and one with too many frames.
  ExpectDropped(p, {"cohort/2"});
  ExpectDropped(p, {"cohort/2", "GROUPS"});
  ExpectDropped(p, {"cohort/2", "GROUPS", "\x81\xa3req\x4d", "", "", "", "", "", "", ""});
  ExpectDropped(p, {""});
  // Wrong protocol versions and commands.
  ExpectDropped(p, {"cohort/1", "GROUPS", "\x81\xa3req\x4d"});
  ExpectDropped(p, {"COHORT/1", "GROUPS", "\x81\xa3req\x4d"});
  ExpectDropped(p, {"cohort/2", "DESTROY", "\x81\xa3req\x4d"});
  ExpectDropped(p, {"cohort/2", "groups", "\x81\xa3req\x4d"});
  // Valid frames, bodies of the wrong shape or types.
  ExpectDropped(p, {"cohort/2", "STATUS", "\x82\xa3req\x4d\xa5group\x05"});      // group: int
  ExpectDropped(p, {"cohort/2", "SUBMIT", "\x82\xa3req\x4d\xa4spec\x05"});       // spec: int
  ExpectDropped(p, {"cohort/2", "GROUPS", "\x81\xa3req\xa2no"});                 // req: str
  ExpectDropped(p, {"cohort/2", "GROUPS", std::string("\x81\xa3req\xcb", 6) + std::string("\x40\0\0\0\0\0\0\0", 8)});
  ExpectDropped(p, {"cohort/2", "GROUPS", "\x92\x01\x02"});                      // an array body
  ExpectDropped(p, {"cohort/2", "GROUPS", std::string("\x81\xa3req\x4d\xc0", 7)});  // bytes after the map
  ExpectDropped(p, {"cohort/2", "GROUPS", "\x82\xa3req"});                       // cut short
  ExpectDropped(p, {"cohort/2", "GROUPS", "\xdf\xff\xff\xff\xff"});              // 4 billion pairs promised
  ExpectDropped(p, {"cohort/2", "GROUPS", "\x81\xa1x" + std::string(100000, '\x91') + std::string(1, '\0')});
  ExpectDropped(p, {"cohort/2", "WAIT", "\x81\xa3req\x4d"});                     // a field missing
  ExpectDropped(p, {"cohort/2", "STATUS", "\x82\xa3req\x4d\xa5group\xa3\xff\xfe\xfd"});  // not UTF-8
  // A worker's message on the client port.
  ExpectDropped(p, common::Encode(common::HeartbeatMsg{}));
  common::StartedMsg started;
  started.id = {"g", 0, 1, 1};
  ExpectDropped(p, common::Encode(started));
  // A group name over kMaxNameBytes, a 1 MB one.
  common::StatusMsg long_name;
  long_name.req = 77;
  long_name.group = std::string(1 << 20, 'g');
  ExpectDropped(p, common::Encode(long_name));
}

// Specs the codec passes but the coordinator refuses, with the field named.
void SendBadSpecs(Peer& p) {
  Status::Code code;
  std::string err = Submit(p, R"({"steps":[{"id":")" + std::string(1 << 20, 's') + R"(","shell":"true"}]})", &code);
  CHECK(code == Status::Code::kInvalidArgument);
  CHECK(err.find("steps[0]") != std::string::npos);
  CHECK(err.find("id is 1048576 bytes; the limit is 256") != std::string::npos);
  CHECK(err.size() < 1000);  // the 1 MB id is not echoed back
  err = Submit(p, "{not json", &code);
  CHECK(code == Status::Code::kInvalidArgument);
  err = Submit(p, "[1,2,3]", &code);
  CHECK(code == Status::Code::kInvalidArgument);
  err = Submit(p, std::string(100000, '[') + std::string(100000, ']'), &code);
  CHECK(code == Status::Code::kInvalidArgument);
  err = Submit(p, R"({"steps":[{"id":"a","shell":"true","max_paralel":2}]})", &code);
  CHECK(code == Status::Code::kInvalidArgument);
  CHECK(err.find("max_paralel") != std::string::npos);
}

TEST_CASE("bad client requests are refused with an error or dropped and the coordinator serves on", "[e2e][hostile]") {
  Cluster c;
  c.StartCoordinator({"--max-steps", "100000"});
  c.StartWorker("w1", 2);
  Peer p(c.client_endpoint());
  const pid_t coord = c.coordinator().pid();
  const long base_kib = RssKiB(coord);

  SendBadFrames(p);
  SendBadSpecs(p);

  // A million-step group is parsed, then refused: more than --max-steps.
  Status::Code code;
  std::string err = Submit(p, StepsJson(1'000'000), &code);
  CHECK(code == Status::Code::kUnavailable);
  CHECK(err.find("--max-steps") != std::string::npos);
  // One step more than any group may have.
  err = Submit(p, StepsJson(1'000'001), &code);
  CHECK(code == Status::Code::kInvalidArgument);
  CHECK(err.find("steps") != std::string::npos);
  // Its parse costs hundreds of MB for a moment, given back once it is refused.
  long after_huge_kib = 0;
  const bool trimmed = WaitUntil([&] { return (after_huge_kib = RssKiB(coord)) < base_kib + 128 * 1024; }, 10s);
  if (kRssMeaningful) CHECK(trimmed);

  // A spec over kMaxDocumentBytes (but a frame under kMaxMessageBytes) is dropped.
  common::SubmitMsg big;
  big.req = 78;
  big.spec = std::string(common::kMaxDocumentBytes + 1, ' ');
  ExpectDropped(p, common::Encode(big));
  big.spec.clear();
  big.spec.shrink_to_fit();
  {
    // A frame over ZMQ_MAXMSGSIZE: ZeroMQ drops the connection before
    // buffering it, so it costs the coordinator nothing.
    Peer rude(c.client_endpoint());
    rude.SendFrames({"cohort/2", "SUBMIT", std::string(common::kMaxMessageBytes + 1, 'x')});
    REQUIRE_FALSE(rude.Receive(500ms));
  }
  ExpectDropped(p, {"cohort/2"});

  // Through all of that: still serving groups, the worker was never lost.
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "still-serving"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("still-serving") != std::string::npos);
  const std::string log = c.coordinator().Log();
  CHECK(log.find("bad_message") != std::string::npos);
  INFO("coordinator log: " << log.substr(log.find("group_refused")) << "\nworker log: " << c.worker("w1").Log());
  CHECK(log.find("worker_lost") == std::string::npos);
  const long end_kib = RssKiB(coord);
  std::cout << "hostile clients: coordinator RSS " << base_kib << " KiB at start, " << after_huge_kib
            << " KiB after the million-step group, " << end_kib << " KiB at the end, peak " << PeakRssKiB(coord)
            << " KiB\n";
  // What stays does not grow with what was sent: see docs/RELIABILITY.md.
  if (kRssMeaningful) CHECK(end_kib < base_kib + 128 * 1024);
}

// Starts `n` non-blocking TCP connects to `port`, sends each a few bytes of
// junk (or nothing), then closes them all.
void ConnectWave(int port, int n, std::mt19937& rng) {
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fds.push_back(fd);
  }
  std::vector<pollfd> pfds;
  for (int fd : fds) pfds.push_back({fd, POLLOUT, 0});
  poll(pfds.data(), pfds.size(), 200);
  for (const pollfd& pf : pfds) {
    if (!(pf.revents & POLLOUT) || rng() % 2) continue;
    char junk[64];
    for (char& ch : junk) ch = static_cast<char>(rng());
    ssize_t ignored = send(pf.fd, junk, 1 + rng() % sizeof junk, MSG_NOSIGNAL);
    (void)ignored;
  }
  for (int fd : fds) close(fd);
}

TEST_CASE("a flood of 10000 connects past the coordinator's fd limit leaves it serving", "[e2e][hostile]") {
  Cluster c;
  // A small fd limit, so the flood also runs the coordinator out of fds.
  c.StartCoordinator({});
  const pid_t coord = c.coordinator().pid();
  rlimit lim{256, 256};
  REQUIRE(prlimit(coord, RLIMIT_NOFILE, &lim, nullptr) == 0);
  c.StartWorker("w1", 1);
  const long base_kib = RssKiB(coord);
  std::mt19937 rng(11);
  const auto t0 = std::chrono::steady_clock::now();
  for (int sent = 0; sent < 10000; sent += 400) {
    ConnectWave(c.port(sent / 400 % 2), 400, rng);  // client and worker ports
  }
  std::cout << "10,000 connects in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()
            << " ms\n";
  // Serving again once the flood is over, and the worker never lost.
  REQUIRE(WaitUntil([&] { return c.Cli({"groups", "--connect-timeout", "2"}).exit_code == 0; }, 60s));
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "after-flood"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("after-flood") != std::string::npos);
  CHECK(c.HasWorker("w1"));
  CHECK(c.coordinator().Log().find("worker_lost") == std::string::npos);
  const long end_kib = RssKiB(coord);
  std::cout << "connect flood: coordinator RSS " << base_kib << " KiB before, " << end_kib << " KiB after\n";
  if (kRssMeaningful) CHECK(end_kib < base_kib + 64 * 1024);
}

TEST_CASE("bad worker messages are dropped or answered with REREGISTER and real workers are unaffected",
          "[e2e][hostile]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  const std::string worker_ep = "tcp://127.0.0.1:" + std::to_string(c.port(1));
  Peer rogue(worker_ep);
  // Unregistered: results and starts for groups it was never given.
  common::FinishedMsg fin;
  fin.id = {"nosuch", 0, 1, 1};
  fin.exit_code = 0;
  rogue.Send(fin);
  auto m = rogue.Receive(10s);
  REQUIRE(m);
  CHECK(std::holds_alternative<common::ReregisterMsg>(*m));
  // REGISTERs that break the rules: no slots, a 1 MB name, a wrong version.
  rogue.SendFrames({"cohort/2", "REGISTER", "\x80"});
  common::RegisterMsg reg;
  reg.name = "rogue";
  reg.slots = 0;
  rogue.Send(reg);
  reg.slots = 1;
  reg.name = std::string(1 << 20, 'n');
  rogue.Send(reg);
  std::vector<std::string> v1 = common::Encode(common::RegisterMsg{"rogue", 1, {}, {}, "x", 1});
  v1[0] = "cohort/1";
  rogue.SendFrames(v1);
  // None of them registered it.
  CHECK_FALSE(rogue.Receive(500ms));
  // Registered, claiming to run a thousand attempts of groups that do not exist.
  reg.name = "rogue";
  reg.instance = 42;
  for (uint32_t i = 0; i < 1000; ++i) reg.running.push_back({"ghost", i, 1, 1});
  rogue.Send(reg);
  int cancels = 0;
  bool welcomed = false;
  while (auto got = rogue.Receive(2s)) {
    welcomed = welcomed || std::holds_alternative<common::WelcomeMsg>(*got);
    if (std::holds_alternative<common::CancelAttemptMsg>(*got)) ++cancels;
    if (welcomed && cancels == 1000) break;
  }
  CHECK(welcomed);
  CHECK(cancels == 1000);  // each told to stop
  // Reports for attempts it does not hold are fenced, not believed.
  fin.id = {"ghost", 5, 1, 1};
  rogue.Send(fin);
  rogue.Send(common::ByeMsg{});
  // The real worker runs a group start to end.
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "real-worker"});
  REQUIRE(r.exit_code == 0);
  Json res = Json::parse(r.out, nullptr, false);
  REQUIRE(res.is_object());
  CHECK(res["steps"][0]["worker"] == "w1");
  CHECK(c.HasWorker("w1"));
}

// Found in review: a REGISTER without an instance (0) was let take a live
// worker's name, and with it the RUNs meant for that worker.
TEST_CASE("a REGISTER without an instance cannot take a live worker's name", "[e2e][hostile]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  Peer rogue("tcp://127.0.0.1:" + std::to_string(c.port(1)));
  common::RegisterMsg reg;
  reg.name = "w1";
  reg.slots = 8;
  reg.instance = 0;
  rogue.Send(reg);
  auto m = rogue.Receive(10s);
  REQUIRE(m);
  auto* refused = std::get_if<common::ReregisterMsg>(&*m);
  REQUIRE(refused != nullptr);
  CHECK(refused->reason.find("in use by another live worker") != std::string::npos);
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "still-mine"});
  REQUIRE(r.exit_code == 0);
  Json res = Json::parse(r.out, nullptr, false);
  REQUIRE(res.is_object());
  CHECK(res["steps"][0]["worker"] == "w1");
  CHECK_FALSE(rogue.Receive(200ms));  // no RUN reached it
}

// A coordinator played by the test: it welcomes a real worker, then sends it
// garbage and more RUNs than it has slots.
TEST_CASE("a worker refuses RUNs beyond its slots and survives garbage from its coordinator", "[e2e][hostile]") {
  const int port = FreePort();
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  Peer coord(ep, zmq::socket_type::router, /*bind=*/true);
  char tmpl[] = "/tmp/cohort-test-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string marker = "cohortmark-slots-" + std::to_string(getpid());
  Daemon worker({COHORT_BIN_DIR "/cohort-worker", "--coordinator", ep, "--name", "w", "--slots", "2",
                 "--heartbeat-ms", "200", "--kill-grace-ms", "500", "--log-level", "debug", "--state-dir",
                 dir + "/worker-state", "--run-as", StepUserFlags()[1], "--drain-timeout", "0"},
                dir + "/worker.log");
  std::string route;
  std::optional<common::Message> m;
  do {
    m = coord.Receive(20s, &route);
    REQUIRE(m);
  } while (!std::holds_alternative<common::RegisterMsg>(*m));
  common::WelcomeMsg welcome;
  welcome.heartbeat_ms = 200;
  welcome.liveness = 100;  // this coordinator sends no heartbeats; the worker must not give up on it
  welcome.cancel_endpoint = "tcp://127.0.0.1:" + std::to_string(FreePort());
  coord.Send(welcome, route);

  // Garbage first: each is dropped, the worker stays.
  coord.SendFrames({route, "cohort/2"});
  coord.SendFrames({route, "cohort/1", "RUN", "\x80"});
  coord.SendFrames({route, "cohort/2", "RUN", "\x81\xa5group\x05"});
  coord.SendFrames({route, "cohort/2", "RUN", "\xdf\xff\xff\xff\xff"});
  coord.SendFrames({route, "cohort/2", "SUBMIT", "\x80"});
  coord.SendFrames({route, std::string(1000, 'x')});

  auto run = [&](uint32_t step) {
    common::RunMsg r;
    r.id = {"g", step, 1, 1};
    r.step_id = "s" + std::to_string(step);
    r.argv = {"sleep", "30"};  // one process per step, so they can be counted
    r.env = {{"COHORT_TEST_MARK", marker}};
    coord.Send(r, route);
  };
  for (uint32_t i = 0; i < 3; ++i) run(i);
  int started = 0;
  std::optional<common::FinishedMsg> refused;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while ((started < 2 || !refused) && std::chrono::steady_clock::now() < until) {
    auto got = coord.Receive(1s);
    if (!got) continue;
    if (std::holds_alternative<common::StartedMsg>(*got)) ++started;
    if (auto* f = std::get_if<common::FinishedMsg>(&*got)) refused = *f;
  }
  INFO(worker.Log());
  CHECK(started == 2);
  REQUIRE(refused);
  CHECK(refused->id.step == 2);
  CHECK_FALSE(refused->exit_code);
  CHECK(refused->error.find("all of its 2 slots") != std::string::npos);
  CHECK(WaitUntil([&] { return ProcessesWith(marker).size() == 2; }, 10s));
  // A cancel frees a slot; then a RUN is taken again.
  common::CancelAttemptMsg cancel;
  cancel.id = {"g", 0, 1, 1};
  coord.Send(cancel, route);
  std::optional<common::FinishedMsg> done;
  while (!done) {
    auto got = coord.Receive(10s);
    REQUIRE(got);
    if (auto* f = std::get_if<common::FinishedMsg>(&*got)) done = *f;
  }
  CHECK(done->cancelled);
  run(3);
  bool restarted = false;
  while (!restarted) {
    auto got = coord.Receive(10s);
    REQUIRE(got);
    if (auto* s = std::get_if<common::StartedMsg>(&*got)) restarted = s->id.step == 3;
  }
  CHECK(worker.Log().find("bad_message") != std::string::npos);
  worker.Kill(SIGTERM);
  CHECK(worker.Wait(20s) == 0);
  CHECK(WaitUntil([&] { return ProcessesWith(marker).empty(); }, 10s));
  RunProgram({"/bin/rm", "-rf", dir}, 30s);
}

}  // namespace
}  // namespace cohort::testing
