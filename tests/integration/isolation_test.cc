// A shared CURVE cluster, tried as its tenants would: one client reaching for
// another's groups, a worker key claiming more than the operator granted it,
// and one key flooding the coordinator. Each refusal comes with a control that
// succeeds, so a test cannot pass because nothing worked at all.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/messages.h"
#include "common/protocol.h"
#include "tests/integration/cluster.h"
#include "tests/integration/secure_cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using common::Status;

// A SecureCluster with a second client, bob, and an admin, carol, whose key is
// in --admin-clients only.
struct SharedCluster {
  SecureCluster s;

  SharedCluster() {
    s.keys.Make("bob");
    s.keys.Make("carol");
    s.keys.Authorize("bob", s.keys.clients());
    s.keys.Authorize("carol", s.keys.admins());
  }
  void Start(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--admin-clients", s.keys.admins()});
    s.Start(extra);
    s.c.StartWorker("w1", 4, s.keys.PeerFlags("w1"));
  }
  RunOutput As(const std::string& who, std::vector<std::string> args) {
    return s.CliAs(s.keys.PeerFlags(who), std::move(args));
  }
  std::string Log() { return s.c.CoordinatorLogs(); }
};

// Processes (any user's) whose environment holds `text`, as root sees them.
int CountProcessesWithEnv(const std::string& text) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    n += ReadFile(entry.path().string() + "/environ").find(text) != std::string::npos;
  }
  return n;
}

std::string StateOf(const RunOutput& status_json) {
  Json j = Json::parse(status_json.out, nullptr, false);
  return j.is_object() && j.contains("state") ? j["state"].get<std::string>() : "";
}

TEST_CASE("a client reaches only its own groups and an admin reaches all", "[security][isolation]") {
  SharedCluster t;
  t.Start();
  REQUIRE(t.As("alice", {"submit", "--id", "long", "--", "/bin/sleep", "60"}).exit_code == 0);
  REQUIRE(StateOf(t.As("alice", {"status", "long", "--json"})) == "running");

  // bob is told what he would be told of a group that does not exist.
  RunOutput none = t.As("bob", {"status", "nosuch"});
  REQUIRE(none.exit_code != 0);
  RunOutput status = t.As("bob", {"status", "long"});
  INFO(status.out << status.err);
  CHECK(status.exit_code == none.exit_code);
  CHECK(status.err.find("no group") != std::string::npos);
  CHECK(status.out.find("sleep") == std::string::npos);
  RunOutput cancel = t.As("bob", {"cancel", "long"});
  CHECK(cancel.exit_code != 0);
  CHECK(cancel.err.find("no group") != std::string::npos);
  RunOutput wait = t.As("bob", {"wait", "long"});
  CHECK(wait.exit_code == none.exit_code);
  CHECK(wait.err.find("no group") != std::string::npos);
  CHECK(t.As("bob", {"logs", "long", "1"}).exit_code != 0);
  RunOutput listed = t.As("bob", {"groups", "--json"});
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("long") == std::string::npos);
  // Nor by its full id, which reads like one that does not exist.
  RunOutput full = t.As("bob", {"status", "alice/long"});
  RunOutput full_none = t.As("bob", {"status", "alice/nosuch"});
  CHECK(full.exit_code == full_none.exit_code);
  CHECK(full.err.find("no group \"alice/long\"") != std::string::npos);
  CHECK(t.As("bob", {"cancel", "alice/long"}).exit_code != 0);
  CHECK(t.As("bob", {"wait", "alice/long"}).exit_code == none.exit_code);
  // The refusals name who asked; alice's group runs on.
  CHECK(t.Log().find("event=group_access_refused client=bob") != std::string::npos);
  CHECK(t.Log().find("client=bob") != std::string::npos);
  CHECK(StateOf(t.As("alice", {"status", "long", "--json"})) == "running");
  // A client key cannot cordon a worker; an admin key can.
  RunOutput cordon = t.As("alice", {"cordon", "w1"});
  CHECK(cordon.exit_code != 0);
  CHECK(cordon.err.find("--admin-clients") != std::string::npos);

  // carol, an admin, sees and cancels it by its full id.
  RunOutput seen = t.As("carol", {"status", "alice/long", "--json"});
  INFO(seen.err);
  CHECK(StateOf(seen) == "running");
  RunOutput all = t.As("carol", {"groups", "--json"});
  CHECK(all.out.find("alice/long") != std::string::npos);
  CHECK(t.As("carol", {"cancel", "alice/long"}).exit_code == 0);
  CHECK(t.Log().find("event=cancel_requested group=alice/long") != std::string::npos);
  CHECK(t.Log().find("client=carol") != std::string::npos);
  CHECK(t.As("alice", {"wait", "long"}).exit_code == 1);
  CHECK(t.As("carol", {"cordon", "w1"}).exit_code == 0);
  CHECK(t.As("carol", {"uncordon", "w1"}).exit_code == 0);
}

TEST_CASE("explicit group ids are per client, so no client can squat another's", "[security][isolation]") {
  SharedCluster t;
  t.Start();
  RunOutput bobs = t.As("bob", {"submit", "--id", "nightly", "--wait", "--", "/bin/false"});
  CHECK(bobs.exit_code == 1);
  RunOutput alices = t.As("alice", {"submit", "--id", "nightly", "--wait", "--", "/bin/true"});
  INFO(alices.err);
  CHECK(alices.exit_code == 0);
  CHECK(StateOf(t.As("alice", {"status", "nightly", "--json"})) == "completed");
  CHECK(StateOf(t.As("bob", {"status", "nightly", "--json"})) == "failed");
  // A client's full id is its own too.
  CHECK(StateOf(t.As("alice", {"status", "alice/nightly", "--json"})) == "completed");
  CHECK(t.As("alice", {"status", "bob/nightly"}).exit_code != 0);
}

TEST_CASE("WAIT slots are per client and a refused wait polls instead", "[security][isolation]") {
  SharedCluster t;
  t.Start({"--max-waits-per-client", "1"});
  REQUIRE(t.As("alice", {"submit", "--id", "a", "--", "/bin/sleep", "60"}).exit_code == 0);
  REQUIRE(t.As("bob", {"submit", "--id", "b", "--", "/bin/sleep", "60"}).exit_code == 0);
  const int port = t.s.c.port(0);
  // A held WAIT is never answered while its group runs: the reply to a later
  // request on the same connection comes first.
  auto holds = [&](HeldSession& session, const std::string& group) {
    session.Send(common::WaitMsg{0, group});
    auto groups = session.Groups();
    return groups.has_value();
  };
  HeldSession alice_first(t.s.keys, "alice", port);
  REQUIRE(holds(alice_first, "a"));
  HeldSession alice_second(t.s.keys, "alice", port);
  auto refused = alice_second.Call(common::WaitMsg{0, "a"});
  REQUIRE(refused);
  CHECK(refused->code == Status::Code::kUnavailable);
  CHECK(refused->error.find("--max-waits-per-client") != std::string::npos);
  // bob's share is his own.
  HeldSession bob(t.s.keys, "bob", port);
  auto bob_wait = bob.Send(common::WaitMsg{0, "b"});
  auto probe = bob.Groups();
  REQUIRE(probe);
  (void)bob_wait;
  CHECK(t.Log().find("event=wait_refused") != std::string::npos);
  // The CLI whose WAIT is refused polls, and still reports the result.
  RunOutput polled = t.As("alice", {"submit", "--wait", "--", "/bin/true"});
  INFO(polled.err);
  CHECK(polled.exit_code == 0);
}

TEST_CASE("a client's step cannot read another client's running step's environment", "[security][isolation]") {
  SharedCluster t;
  t.s.Start({"--admin-clients", t.s.keys.admins()});
  const std::string users = t.s.c.dir() + "/client-users";
  WriteFile(users, "alice nobody\nbob daemon\n");
  REQUIRE(::chmod(users.c_str(), 0644) == 0);
  t.s.c.StartWorker("w1", 4, {"--client-users", users, "--curve-secret-key", t.s.keys.Secret("w1"),
                              "--coordinator-key", t.s.keys.Public("coordinator")});
  // alice's step holds a secret in its environment while it runs.
  const std::string secret = "hunter2-" + t.s.c.Marker();
  REQUIRE(t.As("alice", {"submit", "--id", "holder", "--", "/bin/sh", "-c",
                         "export DB_PASSWORD=" + secret + "; exec sleep 60"}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return CountProcessesWithEnv(secret) > 0; }, 20s));
  // Any process's environment holding it, read as the step's own user.
  const std::string look = "grep -qs " + secret + " /proc/[0-9]*/environ";
  RunOutput bob = t.As("bob", {"submit", "--wait", "--", "/bin/sh", "-c", look});
  INFO(bob.out << bob.err);
  CHECK(bob.exit_code == 1);
  // The control: alice's own second step, as the same user, reads it.
  RunOutput alice = t.As("alice", {"submit", "--wait", "--", "/bin/sh", "-c", look});
  INFO(alice.out << alice.err);
  CHECK(alice.exit_code == 0);
  CHECK(t.As("alice", {"cancel", "holder"}).exit_code == 0);
}

// ---- Worker keys ------------------------------------------------------------

// The worker allowlist entry for `name`, with `metadata` lines the operator
// wrote next to its public key.
void Grant(Keys& keys, const std::string& name, const std::vector<std::string>& metadata) {
  std::string text = "metadata\n";
  for (const std::string& line : metadata) text += "    " + line + "\n";
  text += "curve\n    public-key = \"" + PublicKeyOf(keys.Public(name)) + "\"\n";
  const std::string path = keys.workers() + "/" + name + ".key";
  WriteFile(path, text);
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
}

common::RegisterMsg Registration(const std::string& name, uint32_t slots, std::vector<std::string> agents) {
  common::RegisterMsg r;
  r.name = name;
  r.slots = slots;
  r.agents = std::move(agents);
  r.version = "test";
  r.instance = 7;
  return r;
}

// The coordinator's answer to one REGISTER: WELCOME, or REREGISTER's reason.
std::string Answer(HeldSession& session, const common::RegisterMsg& reg) {
  session.Send(reg);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    auto m = session.Receive(1s);
    if (!m) continue;
    if (std::holds_alternative<common::WelcomeMsg>(*m)) return "welcome";
    if (auto* r = std::get_if<common::ReregisterMsg>(&*m)) return r->reason;
  }
  return "no answer";
}

TEST_CASE("a worker key registers only as what the operator granted it", "[security][worker-keys]") {
  SecureCluster s;
  s.keys.Make("w2");
  Grant(s.keys, "w2", {"name = \"w2\"", "max-slots = \"4\"", "labels = \"linux, ssd\""});
  s.Start();
  const int port = s.c.port(1);
  HeldSession greedy(s.keys, "w2", port);
  std::string slots = Answer(greedy, Registration("w2", 4000000000u, {}));
  CHECK(slots.find("max-slots") != std::string::npos);
  std::string labels = Answer(greedy, Registration("w2", 4, {"gpu", "prod-db"}));
  CHECK(labels.find("\"gpu\"") != std::string::npos);
  std::string name = Answer(greedy, Registration("w1", 4, {}));
  CHECK(name.find("may register only as") != std::string::npos);
  CHECK(s.c.coordinator().Log().find("event=worker_refused") != std::string::npos);
  // Within its grant it joins, and only once at a time.
  CHECK(Answer(greedy, Registration("w2", 2, {"ssd"})) == "welcome");
  HeldSession twin(s.keys, "w2", port);
  common::RegisterMsg again = Registration("w2", 2, {"ssd"});
  again.instance = 8;
  CHECK(Answer(twin, again).find("in use") != std::string::npos);
  // A key whose entry grants nothing offers no labels, a bounded number of
  // slots, under its own name.
  HeldSession plain(s.keys, "w1", port);
  CHECK(Answer(plain, Registration("w1", 1, {"gpu"})).find("\"gpu\"") != std::string::npos);
  CHECK(Answer(plain, Registration("w1", 4000000000u, {})).find("max-slots") != std::string::npos);
  CHECK(Answer(plain, Registration("w1", 1, {})) == "welcome");
}

TEST_CASE("a grant narrowed by a reload cuts off a worker registered under the old one", "[security][worker-keys]") {
  SecureCluster s;
  Grant(s.keys, "w1", {"labels = \"gpu, ssd\""});
  s.Start();
  s.c.StartWorker("w1", 2, {"--agents", "gpu,ssd", "--curve-secret-key", s.keys.Secret("w1"), "--coordinator-key",
                            s.keys.Public("coordinator")});
  REQUIRE(s.c.HasWorker("w1"));
  Grant(s.keys, "w1", {"labels = \"ssd\""});
  s.c.coordinator().Kill(SIGHUP);
  REQUIRE(WaitUntil([&] {
    return s.c.coordinator().Log().find("event=worker_revoked worker=w1") != std::string::npos;
  }, 20s));
  const std::string log = s.c.coordinator().Log();
  const size_t at = log.find("event=worker_revoked worker=w1");
  const std::string line = log.substr(at, log.find('\n', at) - at);
  INFO(line);
  CHECK(line.find("gpu") != std::string::npos);
  CHECK(line.find("not granted") != std::string::npos);
  // Its next registration, with the same labels, is refused with the reason.
  CHECK(WaitUntil([&] { return s.c.coordinator().Log().find("event=worker_refused worker=w1") != std::string::npos; },
                  20s));
  CHECK_FALSE(s.c.HasWorker("w1"));
}

TEST_CASE("a label flood from one worker key is refused before it is held", "[security][worker-keys]") {
  SecureCluster s;
  s.Start();
  const int port = s.c.port(1);
  std::vector<std::string> flood;
  for (int i = 0; i < 65000; ++i) flood.push_back("label-" + std::to_string(i));
  std::vector<std::unique_ptr<HeldSession>> sessions;
  for (int i = 0; i < 4; ++i) {
    sessions.push_back(std::make_unique<HeldSession>(s.keys, "w1", port));
    sessions.back()->Send(Registration("w1", 1, flood));
  }
  // The coordinator stays responsive and holds none of it: the real worker
  // joins and runs a step.
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  CHECK(s.c.Cli({"submit", "--wait", "--", "/bin/true"}).exit_code == 0);
  CHECK(s.c.coordinator().Log().find("(kMaxAgents)") != std::string::npos);
  CHECK(s.c.Cli({"workers", "--json"}).out.find("label-1") == std::string::npos);
}

}  // namespace
}  // namespace cohort::testing
