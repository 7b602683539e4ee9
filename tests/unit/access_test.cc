// Who may connect (ZapHandler::Authorize over real allowlist directories),
// how much a client may ask (ClientLimits) and what a worker agrees to run
// (StepPolicy). No sockets are connected and no clock is read.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "coordinator/client_limits.h"
#include "coordinator/zap_handler.h"
#include "tests/unit/temp_dir.h"
#include "worker/step_policy.h"

namespace cohort {
namespace {

using common::Status;

using testing::TempDir;

common::CurveKeyPair KeyIn(const std::string& dir, const std::string& name) {
  common::CurveKeyPair k;
  REQUIRE(common::GenerateKeyPair(&k).ok());
  std::string pub, sec;
  REQUIRE(common::WriteKeyFiles(dir, name, k, &pub, &sec).ok());
  REQUIRE(::unlink(sec.c_str()) == 0);  // an allowlist holds public keys only
  return k;
}

coordinator::ZapRequest Request(const char* domain, const common::CurveKeyPair& k) {
  return {domain, "10.0.0.9", "CURVE", k.public_z85};
}

TEST_CASE("ZAP admits a key only on the sockets of its role", "[unit][access]") {
  TempDir d;
  const std::string clients = d.path + "/clients", workers = d.path + "/workers";
  REQUIRE(::mkdir(clients.c_str(), 0755) == 0);
  REQUIRE(::mkdir(workers.c_str(), 0755) == 0);
  auto alice = KeyIn(clients, "alice");
  auto w1 = KeyIn(workers, "w1");
  common::CurveKeyPair stranger;
  REQUIRE(common::GenerateKeyPair(&stranger).ok());

  zmq::context_t context(1);
  coordinator::ZapHandler zap(context, clients, workers);
  REQUIRE(zap.Start().ok());
  CHECK(zap.clients() == 1);
  CHECK(zap.workers() == 1);

  auto v = zap.Authorize(Request(coordinator::kClientDomain, alice));
  CHECK(v.allowed);
  CHECK(v.user_id == "alice|" + alice.public_z85);
  CHECK(coordinator::UserIdName(v.user_id) == "alice");
  CHECK(coordinator::UserIdKey(v.user_id) == alice.public_z85);
  const std::string alice_session = v.user_id;
  v = zap.Authorize(Request(coordinator::kWorkerDomain, w1));
  CHECK(v.allowed);
  CHECK(v.user_id == "w1|" + w1.public_z85);
  const std::string w1_session = v.user_id;

  v = zap.Authorize(Request(coordinator::kWorkerDomain, alice));
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "key \"alice\" is authorized for the other role, not as a worker");
  v = zap.Authorize(Request(coordinator::kClientDomain, w1));
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "key \"w1\" is authorized for the other role, not as a client");
  v = zap.Authorize(Request(coordinator::kClientDomain, stranger));
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "key not in the clients' allowlist");
  CHECK_FALSE(zap.Authorize({coordinator::kClientDomain, "10.0.0.9", "NULL", ""}).allowed);
  CHECK_FALSE(zap.Authorize(Request("other", alice)).allowed);

  // A reload picks up a new key and drops a removed one; an unreadable
  // directory keeps the list it had.
  auto bob = KeyIn(clients, "bob");
  const std::string bob_session = coordinator::MakeUserId("bob", bob.public_z85);
  REQUIRE(::unlink((clients + "/alice.key").c_str()) == 0);
  CHECK_FALSE(zap.Authorize(Request(coordinator::kClientDomain, bob)).allowed);
  zap.Reload();
  CHECK(zap.Authorize(Request(coordinator::kClientDomain, bob)).allowed);
  CHECK_FALSE(zap.Authorize(Request(coordinator::kClientDomain, alice)).allowed);
  // Sessions opened before the reload are judged by their key, not its name.
  CHECK(zap.Admits(coordinator::kClientDomain, bob_session));
  CHECK_FALSE(zap.Admits(coordinator::kClientDomain, alice_session));
  CHECK_FALSE(zap.Admits(coordinator::kWorkerDomain, bob_session));
  CHECK(zap.Admits(coordinator::kWorkerDomain, w1_session));
  CHECK_FALSE(zap.Admits(coordinator::kClientDomain, "bob"));  // a bare name is no key
  // Rotation: w1's file now holds another key. The old session is out, a
  // session with the new key is in, under the same name.
  REQUIRE(::rename(workers.c_str(), (workers + ".old").c_str()) == 0);
  REQUIRE(::mkdir(workers.c_str(), 0755) == 0);
  auto w1_new = KeyIn(workers, "w1");
  zap.Reload();
  CHECK_FALSE(zap.Admits(coordinator::kWorkerDomain, w1_session));
  CHECK(zap.Admits(coordinator::kWorkerDomain, coordinator::MakeUserId("w1", w1_new.public_z85)));
  CHECK_FALSE(zap.Authorize(Request(coordinator::kWorkerDomain, w1)).allowed);
  v = zap.Authorize(Request(coordinator::kWorkerDomain, w1_new));
  CHECK(v.allowed);
  CHECK(coordinator::UserIdName(v.user_id) == "w1");
  REQUIRE(::rename(workers.c_str(), (workers + ".gone").c_str()) == 0);
  zap.Reload();
  CHECK(zap.Authorize(Request(coordinator::kWorkerDomain, w1_new)).allowed);
}

TEST_CASE("a User-Id splits into the key's name and the key, whatever the name holds", "[unit][access]") {
  const std::string key(40, 'k');
  CHECK(coordinator::UserIdName(coordinator::MakeUserId("a|b", key)) == "a|b");
  CHECK(coordinator::UserIdKey(coordinator::MakeUserId("a|b", key)) == key);
  CHECK(coordinator::UserIdKey("alice").empty());
  CHECK(coordinator::UserIdName("alice") == "alice");
  CHECK(coordinator::UserIdKey("").empty());
  CHECK(coordinator::UserIdKey(key).empty());  // no separator
}

TEST_CASE("ZAP start fails on an allowlist directory that does not exist", "[unit][access]") {
  TempDir d;
  zmq::context_t context(1);
  coordinator::ZapHandler zap(context, d.path + "/nope", d.path);
  Status s = zap.Start();
  CHECK(s.code() == Status::Code::kNotFound);
  CHECK(s.message().find(d.path + "/nope") != std::string::npos);
}

TEST_CASE("client limits count groups in flight per client and steps per group", "[unit][access]") {
  coordinator::ClientLimits limits(2, 10);
  CHECK(limits.CheckSubmit("alice").ok());
  limits.Admitted("alice", "g1");
  limits.Admitted("alice", "g2");
  Status s = limits.CheckSubmit("alice");
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(s.message() == "client \"alice\" already has 2 groups in flight; the limit is 2 (--max-groups-per-client): "
                       "wait for one to finish");
  CHECK(limits.CheckSubmit("bob").ok());
  CHECK(limits.CheckSubmit("").ok());
  limits.Ended("g1");
  limits.Ended("g1");       // twice: counted once
  limits.Ended("unknown");  // someone else's or before a limit: ignored
  CHECK(limits.InFlight("alice") == 1);
  CHECK(limits.CheckSubmit("alice").ok());
  CHECK(limits.max_steps() == 10);

  coordinator::ClientLimits none(0, 0);
  for (int i = 0; i < 100; ++i) none.Admitted("alice", "g" + std::to_string(i));
  CHECK(none.CheckSubmit("alice").ok());
  CHECK(none.max_steps() == common::kMaxStepsPerGroup);
}

TEST_CASE("step policy: shell lines, the allowed list, bare names resolved against the list", "[unit][access]") {
  TempDir d;
  const std::string list = d.path + "/allowed";
  std::ofstream(list) << "# comment\n\n  /usr/bin/make  \n/bin/echo\n";
  worker::StepPolicy policy;
  REQUIRE(worker::StepPolicy::Load(true, list, "/bin/sh", &policy).ok());

  worker::RunRequest shell;
  shell.shell = "echo hi";
  Status s = policy.Check(&shell);
  CHECK(s.message() ==
        "refused by the worker's policy: shell steps run /bin/sh, which is not in the worker's --allowed-commands list");

  worker::RunRequest make;
  make.argv = {"make", "-j4"};
  REQUIRE(policy.Check(&make).ok());
  CHECK(make.argv[0] == "/usr/bin/make");
  worker::RunRequest echo;
  echo.argv = {"/bin/echo", "x"};
  CHECK(policy.Check(&echo).ok());
  for (const char* bad : {"/bin/cat", "cat", "./echo", "/bin/../bin/echo", "/tmp/make"}) {
    worker::RunRequest r;
    r.argv = {bad};
    s = policy.Check(&r);
    INFO(bad);
    CHECK(s.message() == std::string("refused by the worker's policy: \"") + bad +
                             "\" is not in the worker's --allowed-commands list");
  }

  // Found in review: LD_PRELOAD let an allowed /bin/echo run any library.
  for (const char* var : {"LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "BASH_ENV", "PYTHONPATH"}) {
    worker::RunRequest r;
    r.argv = {"/bin/echo", "x"};
    r.env = {{"HARMLESS", "1"}, {var, "/tmp/evil"}};
    s = policy.Check(&r);
    INFO(var);
    CHECK(s.message() == std::string("refused by the worker's policy: env ") + var +
                             " could load code that is not on the worker's --allowed-commands list");
  }
  worker::RunRequest harmless;
  harmless.argv = {"/bin/echo"};
  harmless.env = {{"LANG", "C"}, {"XLD_PRELOAD", "x"}};
  CHECK(policy.Check(&harmless).ok());

  worker::StepPolicy no_shell;
  REQUIRE(worker::StepPolicy::Load(false, "", "/bin/sh", &no_shell).ok());
  CHECK(no_shell.Check(&shell).message().find("(--allow-shell=false)") != std::string::npos);
  worker::RunRequest anything;
  anything.argv = {"anything"};
  CHECK(no_shell.Check(&anything).ok());

  std::ofstream(list) << "/bin/sh\n";
  worker::StepPolicy with_sh;
  REQUIRE(worker::StepPolicy::Load(true, list, "/bin/sh", &with_sh).ok());
  CHECK(with_sh.Check(&shell).ok());

  std::ofstream(list) << "/bin/sh\nrelative/tool\n";
  s = worker::StepPolicy::Load(true, list, "/bin/sh", &with_sh);
  CHECK(s.message() == "--allowed-commands: " + list + ":2: \"relative/tool\" is not an absolute path");
  CHECK_FALSE(worker::StepPolicy::Load(true, d.path + "/missing", "/bin/sh", &with_sh).ok());
}

TEST_CASE("run-as looks a user up by name or uid, with its groups", "[unit][access]") {
  worker::RunAsUser u;
  REQUIRE(worker::LookUpUser("root", &u).ok());
  CHECK(u.credentials.uid == 0);
  CHECK(u.name == "root");
  CHECK_FALSE(u.credentials.groups.empty());
  worker::RunAsUser by_id;
  REQUIRE(worker::LookUpUser("0", &by_id).ok());
  CHECK(by_id.name == "root");
  Status s = worker::LookUpUser("no-such-user-cohort", &u);
  CHECK(s.code() == Status::Code::kNotFound);
  CHECK(s.message().find("no user \"no-such-user-cohort\"") != std::string::npos);
}

}  // namespace
}  // namespace cohort
