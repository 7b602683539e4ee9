// End-to-end security: real keys made with `cohort keygen`, a real
// coordinator with CURVE and its ZAP allowlists, real workers and the real CLI
// on loopback. Each refusal is checked together with a control that succeeds,
// so a test cannot pass because nothing worked at all.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "common/curve_keys.h"
#include "common/transport.h"
#include "tests/integration/cluster.h"
#include "tests/integration/secure_cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// How long a "this never happens" check watches: several reconnect and
// heartbeat rounds at the test's 200 ms heartbeat.
constexpr auto kNeverWindow = 3s;

Json StatusOf(Cluster& c, const std::string& group) { return c.Status(group); }

TEST_CASE("a client with an unknown key is refused, logged once, and nothing runs", "[security]") {
  SecureCluster s;
  s.Start();
  s.c.StartWorker("w1", 2, s.keys.PeerFlags("w1"));
  s.keys.Make("mallory");
  const std::string target = s.c.dir() + "/mallory-ran";
  for (int i = 0; i < 2; ++i) {
    RunOutput r = s.CliAs(s.keys.PeerFlags("mallory"),
                          {"submit", "--id", "evil", "--connect-timeout", "20", "--", "/usr/bin/touch", target});
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("refused your key") != std::string::npos);
    CHECK(r.err.find("authorized-clients") != std::string::npos);
  }
  CHECK(s.Refused("mallory"));
  // A refusal or a mismatch ends the CLI at once, whatever its timeout.
  RunOutput plain = s.CliAs({}, {"groups", "--connect-timeout", "20"});
  CHECK(plain.exit_code == 3);
  CHECK(plain.err.find("one side uses CURVE, the other does not") != std::string::npos);
  const std::string log = s.c.coordinator().Log();
  // Two CLI runs, each retrying its handshake: one line.
  CHECK(Count(log, PublicKeyOf(s.keys.Public("mallory"))) == 1);
  CHECK(log.find("address=127.0.0.1") != std::string::npos);
  CHECK(s.c.Status("evil").is_null());
  CHECK_FALSE(Exists(target));

  // Control: alice, authorized, runs the same command.
  RunOutput ok = s.c.Cli({"submit", "--wait", "--", "/usr/bin/touch", target});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(Exists(target));
}

TEST_CASE("a worker with an unknown key never receives a step", "[security]") {
  SecureCluster s;
  s.Start();
  s.keys.Make("rogue");
  auto rogue = s.LaunchWorker("rogue", s.keys.PeerFlags("rogue"));
  const std::string target = s.c.dir() + "/ran";
  RunOutput r = s.c.Cli({"submit", "--id", "g", "--", "/usr/bin/touch", target});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(WaitUntil([&] { return s.Refused("rogue"); }, 20s));
  CHECK_FALSE(WaitUntil([&] { return s.c.HasWorker("rogue"); }, kNeverWindow));
  CHECK(StatusOf(s.c, "g")["steps"][0]["state"] == "pending");
  CHECK(rogue->Log().find("event=registered") == std::string::npos);
  CHECK(WaitUntil([&] { return rogue->Log().find("event=coordinator_refused_key") != std::string::npos; }, 20s));
  CHECK_FALSE(Exists(target));

  // Control: an authorized worker takes the step at once.
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  RunOutput done = s.c.Cli({"wait", "g"});
  CHECK(done.exit_code == 0);
  CHECK(Exists(target));
  CHECK(rogue->Log().find("event=finished") == std::string::npos);
}

TEST_CASE("a client without keys is told the coordinator requires CURVE", "[security]") {
  SecureCluster s;
  s.Start();
  // A CURVE server answers a client without keys with a mechanism mismatch,
  // which the CLI names, not with a closed connection.
  RunOutput r = s.CliAs({}, {"groups", "--connect-timeout", "5"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("security mismatch: one side uses CURVE, the other does not") != std::string::npos);
  CHECK(r.err.find("does it require CURVE keys? see --coordinator-key") != std::string::npos);
}

TEST_CASE("a client key cannot register as a worker and a worker key cannot submit", "[security]") {
  SecureCluster s;
  s.Start();
  auto posing = s.LaunchWorker("posing", s.keys.PeerFlags("alice"));
  REQUIRE(WaitUntil([&] { return s.c.coordinator().Log().find("authorized for the other role, not as a worker") !=
                                 std::string::npos; },
                    20s));
  CHECK_FALSE(WaitUntil([&] { return s.c.HasWorker("posing"); }, kNeverWindow));

  RunOutput r = s.CliAs(s.keys.PeerFlags("w1"), {"submit", "--connect-timeout", "20", "--", "/bin/true"});
  CHECK(r.exit_code == 3);
  CHECK(s.c.coordinator().Log().find("authorized for the other role, not as a client") != std::string::npos);
  CHECK(s.c.Cli({"groups", "--json"}).out == "[]\n");

  // Control: each key works in its own role.
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  CHECK(s.c.Cli({"submit", "--wait", "--", "/bin/true"}).exit_code == 0);
}

TEST_CASE("a worker given the wrong coordinator key never connects, even to a coordinator that admits it",
          "[security]") {
  // An impostor holds its own key pair and admits anything it knows of; the
  // worker was told the real coordinator's key.
  SecureCluster s;
  s.keys.Make("real");
  const std::string target = s.c.dir() + "/ran";
  s.Start();
  auto fooled = s.LaunchWorker("w1", s.keys.PeerFlags("w1", "real"));
  RunOutput r = s.c.Cli({"submit", "--id", "g", "--", "/usr/bin/touch", target});
  REQUIRE(r.exit_code == 0);
  REQUIRE(WaitUntil([&] { return fooled->Log().find("event=handshake_failed") != std::string::npos; }, 20s));
  CHECK_FALSE(WaitUntil([&] { return s.c.HasWorker("w1"); }, kNeverWindow));
  CHECK(fooled->Log().find("event=registered") == std::string::npos);
  CHECK_FALSE(Exists(target));
  fooled.reset();

  // Control: with the key of the coordinator it reaches, it connects.
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  CHECK(s.c.Cli({"wait", "g"}).exit_code == 0);
  CHECK(Exists(target));
}

// Runs one step through a recording proxy between the worker and the
// coordinator; returns what the proxy forwarded.
std::string RecordStepTraffic(bool curve, const std::string& marker) {
  SecureCluster s;
  if (curve) {
    s.Start();
  } else {
    s.c.SetCliFlags({});
    s.c.StartCoordinator();
  }
  const int proxy_port = FreePort();
  const std::string record = s.c.dir() + "/proxy.bytes";
  Daemon proxy({"/usr/bin/python3", PROXY_SCRIPT, std::to_string(proxy_port), std::to_string(s.c.port(1)), record},
               s.c.dir() + "/proxy.log");
  REQUIRE(WaitUntil([&] { return proxy.Log().find("listening") != std::string::npos; }, 20s));
  std::vector<std::string> argv = {kBin + "/cohort-worker", "--coordinator",
                                   "tcp://127.0.0.1:" + std::to_string(proxy_port), "--name", "w1",
                                   "--heartbeat-ms", "200", "--state-dir", s.c.dir() + "/proxied-w1-state"};
  for (const std::string& f : StepUserFlags()) argv.push_back(f);
  if (curve) {
    for (const std::string& f : s.keys.PeerFlags("w1")) argv.push_back(f);
  }
  Daemon worker(argv, s.c.dir() + "/worker-w1.log");
  REQUIRE(WaitUntil([&] { return s.c.HasWorker("w1"); }, 20s));
  RunOutput r = s.c.Cli({"submit", "--wait", "--json", "--", "/bin/echo", marker});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(marker) != std::string::npos);  // it did run, and its output came back
  return ReadFile(record);
}

TEST_CASE("CURVE encrypts: a recording proxy never sees a step's command line", "[security]") {
  const std::string marker = "cohort-secret-" + std::to_string(::getpid()) + "-argument";
  const std::string encrypted = RecordStepTraffic(true, marker);
  CHECK(encrypted.size() > 500);  // RUN, STARTED, FINISHED and heartbeats went through it
  CHECK(encrypted.find(marker) == std::string::npos);
  CHECK(encrypted.find("cohort/1") == std::string::npos);
  // Control: without CURVE the same proxy sees the command in clear.
  const std::string clear = RecordStepTraffic(false, marker);
  CHECK(clear.find(marker) != std::string::npos);
}

TEST_CASE("a secret key file readable by others is refused by every program", "[security]") {
  Cluster c;
  Keys keys(c.dir());
  REQUIRE(::chmod(keys.Secret("coordinator").c_str(), 0644) == 0);
  RunOutput coord = RunProgram({kBin + "/cohort-coordinator", "--client-endpoint", "ipc://" + c.dir() + "/c",
                                "--worker-endpoint", "ipc://" + c.dir() + "/w", "--cancel-endpoint",
                                "ipc://" + c.dir() + "/p", "--curve-secret-key", keys.Secret("coordinator"),
                                "--authorized-clients", keys.clients(), "--authorized-workers", keys.workers()},
                               30s);
  CHECK(coord.exit_code == 2);
  CHECK(coord.err.find("has mode 0644") != std::string::npos);
  CHECK(coord.err.find("chmod 600") != std::string::npos);
  RunOutput worker = RunProgram({kBin + "/cohort-worker", "--coordinator", "ipc://" + c.dir() + "/w",
                                 "--coordinator-key", keys.Public("coordinator"), "--curve-secret-key",
                                 keys.Secret("coordinator"), "--run-as", StepUserFlags()[1]},
                                30s);
  CHECK(worker.exit_code == 2);
  CHECK(worker.err.find("has mode 0644") != std::string::npos);
  RunOutput cli = RunProgram({kBin + "/cohort", "groups", "--coordinator", "ipc://" + c.dir() + "/c",
                              "--coordinator-key", keys.Public("coordinator"), "--curve-secret-key",
                              keys.Secret("coordinator")},
                             30s);
  CHECK(cli.exit_code == 2);
  CHECK(cli.err.find("has mode 0644") != std::string::npos);
}

TEST_CASE("off loopback without keys the coordinator and the worker refuse to start", "[security]") {
  Cluster c;
  const std::string ep = "tcp://0.0.0.0:" + std::to_string(FreePort());
  RunOutput r = RunProgram({kBin + "/cohort-coordinator", "--client-endpoint", ep, "--worker-endpoint",
                            "ipc://" + c.dir() + "/w", "--cancel-endpoint", "ipc://" + c.dir() + "/p"},
                           30s);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("refusing to bind " + ep + " without CURVE") != std::string::npos);
  CHECK(r.err.find("cohort keygen") != std::string::npos);
  CHECK(r.err.find("event=listening") == std::string::npos);  // refused before binding
  // 192.0.2.0/24 is TEST-NET-1: refused before any packet is sent.
  RunOutput w = RunProgram({kBin + "/cohort-worker", "--coordinator", "tcp://192.0.2.1:5701"}, 30s);
  CHECK(w.exit_code == 2);
  CHECK(w.err.find("without CURVE") != std::string::npos);
  // An abstract ipc socket is open to every local user: the same refusal.
  const std::string abstract = "ipc://@cohort-test-" + std::to_string(FreePort());
  RunOutput a = RunProgram({kBin + "/cohort-coordinator", "--client-endpoint", abstract, "--worker-endpoint",
                            "ipc://" + c.dir() + "/w", "--cancel-endpoint", "ipc://" + c.dir() + "/p"},
                           30s);
  CHECK(a.exit_code == 2);
  CHECK(a.err.find("refusing to bind " + abstract + " without CURVE") != std::string::npos);
}

TEST_CASE("SIGHUP rereads the allowlists: new keys get in and removed ones are cut off", "[security]") {
  SecureCluster s;
  s.Start();
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  s.keys.Make("bob");
  const std::vector<std::string> bob = s.keys.PeerFlags("bob");
  CHECK(s.CliAs(bob, {"groups", "--connect-timeout", "20"}).exit_code == 3);
  s.keys.Authorize("bob", s.keys.clients());
  REQUIRE(std::remove((s.keys.clients() + "/alice.key").c_str()) == 0);
  REQUIRE(std::remove((s.keys.workers() + "/w1.key").c_str()) == 0);
  s.c.coordinator().Kill(SIGHUP);
  CHECK(WaitUntil([&] { return s.CliAs(bob, {"groups", "--connect-timeout", "1"}).exit_code == 0; }, 20s));
  RunOutput alice = s.c.Cli({"groups", "--connect-timeout", "20"});
  CHECK(alice.exit_code == 3);
  CHECK(alice.err.find("refused your key") != std::string::npos);
  // The worker connected before the reload; it is dropped all the same and
  // cannot register again.
  s.c.SetCliFlags(bob);
  CHECK(WaitUntil([&] { return !s.c.HasWorker("w1"); }, 20s));
  CHECK(s.c.coordinator().Log().find("event=worker_revoked worker=w1") != std::string::npos);
  CHECK_FALSE(WaitUntil([&] { return s.c.HasWorker("w1"); }, kNeverWindow));
  CHECK(s.c.coordinator().Log().find("event=allowlist_loaded role=client") != std::string::npos);
}

TEST_CASE("rotating a key under the same name cuts off sessions of the old key", "[security]") {
  SecureCluster s;
  s.Start();
  s.c.StartWorker("w1", 1, s.keys.PeerFlags("w1"));
  HeldSession old_alice(s.keys, "alice", s.c.port(0));
  std::optional<common::ReplyMsg> before = old_alice.Groups();
  REQUIRE(before);
  CHECK(before->code == common::Status::Code::kOk);

  // alice.key and w1.key now hold new keys; the files keep their names.
  s.keys.Make("alice-new");
  s.keys.Make("w1-new");
  s.keys.Authorize("alice-new", s.keys.clients(), "alice");
  s.keys.Authorize("w1-new", s.keys.workers(), "w1");
  const size_t loads = Count(s.c.coordinator().Log(), "event=allowlist_loaded role=client");
  s.c.coordinator().Kill(SIGHUP);
  REQUIRE(WaitUntil([&] { return Count(s.c.coordinator().Log(), "event=allowlist_loaded role=client") > loads; },
                    20s));

  // The session opened with the old key, on the same connection, is refused.
  std::optional<common::ReplyMsg> after = old_alice.Groups();
  REQUIRE(after);
  CHECK(after->code == common::Status::Code::kFailedPrecondition);
  CHECK(after->error == "key \"alice\" is no longer authorized");
  // A new connection with the old key fails its handshake; the new key works.
  RunOutput old_cli = s.c.Cli({"groups", "--connect-timeout", "20"});
  CHECK(old_cli.exit_code == 3);
  CHECK(old_cli.err.find("refused your key") != std::string::npos);
  const std::vector<std::string> new_alice = s.keys.PeerFlags("alice-new");
  CHECK(s.CliAs(new_alice, {"groups", "--connect-timeout", "20"}).exit_code == 0);
  HeldSession new_session(s.keys, "alice-new", s.c.port(0));
  std::optional<common::ReplyMsg> fresh = new_session.Groups();
  REQUIRE(fresh);
  CHECK(fresh->code == common::Status::Code::kOk);

  // The worker connected with w1's old key is dropped; with the new key, the
  // same name registers again.
  s.c.SetCliFlags(new_alice);
  REQUIRE(WaitUntil([&] { return s.c.coordinator().Log().find("event=worker_revoked worker=w1") != std::string::npos; },
                    20s));
  // The line names the old key (quoted when it holds '=').
  const std::string log = s.c.coordinator().Log();
  const size_t revoked_at = log.find("event=worker_revoked worker=w1");
  const std::string revoked_line = log.substr(revoked_at, log.find('\n', revoked_at) - revoked_at);
  CHECK(revoked_line.find(PublicKeyOf(s.keys.Public("w1"))) != std::string::npos);
  CHECK(revoked_line.find("key-name=w1 ") != std::string::npos);
  auto w1_new = s.LaunchWorker("w1", s.keys.PeerFlags("w1-new"));
  CHECK(WaitUntil([&] { return s.c.HasWorker("w1"); }, 20s));
  RunOutput run = s.c.Cli({"submit", "--wait", "--", "true"});
  INFO(run.err);
  CHECK(run.exit_code == 0);
}

TEST_CASE("per-client limits refuse before scheduling, and only the client over its limit", "[security]") {
  SecureCluster s;
  s.keys.Make("bob");
  s.keys.Authorize("bob", s.keys.clients());
  s.Start({"--max-groups-per-client", "1", "--max-steps-per-group", "2"});
  s.c.StartWorker("w1", 4, s.keys.PeerFlags("w1"));
  RunOutput first = s.c.Cli({"submit", "--id", "long", "--", "/bin/sleep", "30"});
  REQUIRE(first.exit_code == 0);
  RunOutput second = s.c.Cli({"submit", "--id", "more", "--", "/bin/true"});
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("client \"alice\" already has 1 groups in flight") != std::string::npos);
  CHECK(s.c.Status("more").is_null());
  // bob has his own share.
  CHECK(s.CliAs(s.keys.PeerFlags("bob"), {"submit", "--wait", "--", "/bin/true"}).exit_code == 0);
  Json big = {{"id", "big"}, {"steps", Json::array()}};
  for (int i = 0; i < 3; ++i) big["steps"].push_back({{"id", std::to_string(i)}, {"command", {"/bin/true"}}});
  s.c.SetCliFlags(s.keys.PeerFlags("bob"));
  RunOutput too_big = s.c.SubmitJson(big, {});
  CHECK(too_big.exit_code == 1);
  CHECK(too_big.err.find("--max-steps-per-group") != std::string::npos);
  // Once alice's group ends she may submit again.
  s.c.SetCliFlags(s.keys.PeerFlags("alice"));
  CHECK(s.c.Cli({"cancel", "long"}).exit_code == 0);
  CHECK(s.c.Cli({"wait", "long"}).exit_code == 1);
  CHECK(s.c.Cli({"submit", "--wait", "--", "/bin/true"}).exit_code == 0);
}

TEST_CASE("run-as runs steps with that user's uid, gid, groups and home", "[security]") {
  if (::geteuid() != 0) {
    WARN("not root: --run-as cannot be tested here");
    return;
  }
  passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  const std::string uid = std::to_string(nobody->pw_uid), gid = std::to_string(nobody->pw_gid);
  const std::string home = nobody->pw_dir;
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1, {"--run-as", "nobody"});
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "/bin/sh", "-c", "id -u; id -g; id -G; echo \"$HOME\""});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json res = Json::parse(r.out, nullptr, false);
  REQUIRE_FALSE(res.is_discarded());
  CHECK(res["steps"][0]["stdout"] == uid + "\n" + gid + "\n" + gid + "\n" + home + "\n");
  // Control: root steps only when asked for by name, on loopback too.
  c.StartWorker("w2", 1, {"--run-as", "root", "--agents", "root"});
  const std::string spec = c.dir() + "/as-root.json";
  WriteFile(spec, R"({"steps": [{"id": "whoami", "command": ["id", "-u"], "agent": "root"}]})");
  RunOutput as_root = c.Cli({"submit", "--wait", "--json", spec});
  INFO(as_root.err);
  REQUIRE(as_root.exit_code == 0);
  CHECK(Json::parse(as_root.out)["steps"][0]["stdout"] == "0\n");
  RunOutput refused = RunProgram({kBin + "/cohort-worker", "--coordinator", "ipc://" + c.dir() + "/nobody-here",
                                  "--name", "w3"},
                                 30s);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("give --run-as USER") != std::string::npos);
}

TEST_CASE("a worker's policy refuses shell lines and unlisted programs with the rule's name", "[security]") {
  Cluster c;
  const std::string allowed = c.dir() + "/allowed";
  WriteFile(allowed, "# the only programs\n/bin/echo\n");
  c.StartCoordinator();
  c.StartWorker("w1", 1, {"--allow-shell=false", "--allowed-commands", allowed});
  auto step_error = [](const RunOutput& r) {
    Json res = Json::parse(r.out, nullptr, false);
    if (res.is_discarded()) return "no JSON: " + r.err;
    const Json& e = res["steps"][0]["error"];
    return e.is_string() ? e.get<std::string>() : std::string("no error: " + r.out);
  };
  RunOutput shell = c.Cli({"submit", "--wait", "--json", "--commands", allowed});  // "/bin/echo" as a shell line
  CHECK(shell.exit_code == 1);
  CHECK(step_error(shell).find("shell steps are not allowed (--allow-shell=false)") != std::string::npos);
  RunOutput cat = c.Cli({"submit", "--wait", "--json", "--", "/bin/cat", "/etc/hostname"});
  CHECK(cat.exit_code == 1);
  CHECK(step_error(cat).find("\"/bin/cat\" is not in the worker's --allowed-commands list") != std::string::npos);
  // Control: the listed program runs, by path and by bare name (resolved
  // against the list; a step may not set PATH under a list).
  CHECK(c.Cli({"submit", "--wait", "--", "/bin/echo", "hi"}).exit_code == 0);
  Json g = {{"id", "bare"}, {"steps", {{{"id", "1"}, {"command", {"echo", "hi"}}}}}};
  RunOutput bare = c.SubmitJson(g, {"--wait"});
  INFO(bare.err);
  CHECK(bare.exit_code == 0);
}

}  // namespace
}  // namespace cohort::testing
