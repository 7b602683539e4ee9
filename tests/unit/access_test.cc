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
  REQUIRE(worker::StepPolicy::Load({.allowed_commands_file = list}, &policy).ok());

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

  for (const char* var : {"LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "BASH_ENV", "PYTHONPATH"}) {
    worker::RunRequest r;
    r.argv = {"/bin/echo", "x"};
    r.env = {{var, "/tmp/evil"}};
    s = policy.Check(&r);
    INFO(var);
    CHECK(s.message() == std::string("refused by the worker's policy: step environment variable \"") + var +
                             "\" could make a program on the worker's --allowed-commands list run other code; no "
                             "--allowed-env entry allows it");
  }

  worker::StepPolicy no_shell;
  REQUIRE(worker::StepPolicy::Load({.allow_shell = false}, &no_shell).ok());
  CHECK(no_shell.Check(&shell).message().find("(--allow-shell=false)") != std::string::npos);
  worker::RunRequest anything;
  anything.argv = {"anything"};
  CHECK(no_shell.Check(&anything).ok());

  std::ofstream(list) << "/bin/sh\n";
  worker::StepPolicy with_sh;
  REQUIRE(worker::StepPolicy::Load({.allowed_commands_file = list}, &with_sh).ok());
  CHECK(with_sh.Check(&shell).ok());

  std::ofstream(list) << "/bin/sh\nrelative/tool\n";
  s = worker::StepPolicy::Load({.allowed_commands_file = list}, &with_sh);
  CHECK(s.message() == "--allowed-commands: " + list + ":2: \"relative/tool\" is not an absolute path");
  CHECK_FALSE(worker::StepPolicy::Load({.allowed_commands_file = d.path + "/missing"}, &with_sh).ok());
  s = worker::StepPolicy::Load({.allowed_commands_file = d.path}, &with_sh);
  CHECK(s.message() == "--allowed-commands: " + d.path + " is not a regular file");
}

// A policy listing /bin/echo and /bin/sh, with `allowed_env` as --allowed-env.
worker::StepPolicy EchoPolicy(const TempDir& d, const std::string& allowed_env) {
  const std::string list = d.path + "/allowed";
  std::ofstream(list) << "/bin/echo\n/bin/sh\n";
  worker::StepPolicy policy;
  Status s = worker::StepPolicy::Load({.allowed_commands_file = list, .allowed_env = allowed_env}, &policy);
  INFO(s.message());
  REQUIRE(s.ok());
  return policy;
}

Status CheckEnv(const worker::StepPolicy& policy, const std::string& name, bool shell_step = false) {
  worker::RunRequest r;
  if (shell_step) {
    r.shell = "echo x";
  } else {
    r.argv = {"/bin/echo", "x"};
  }
  r.env = {{name, "value"}};
  return policy.Check(&r);
}

std::string Refusal(const std::string& name, const std::string& why) {
  return "refused by the worker's policy: step environment variable \"" + name + "\" " + why;
}

const std::string kNotListed = "is not in --allowed-env (a command policy is set)";
const std::string kRunsCode =
    "could make a program on the worker's --allowed-commands list run other code; no --allowed-env entry allows it";
const std::string kWorkers =
    "is the worker's under a command policy; no --allowed-env entry lets a step set PATH or HOME";

TEST_CASE("step policy: under a command list a step may set no variable unless --allowed-env names it",
          "[unit][access]") {
  TempDir d;
  worker::StepPolicy policy = EchoPolicy(d, "");
  // Each a way to make an allowed program run other code; LANG and
  // MYAPP_MODE harmless, but not listed.
  for (const char* name : {"SHELLOPTS", "PS4", "BASH_FUNC_ls%%", "MAKEFLAGS", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0",
                           "GIT_CONFIG_VALUE_0", "JAVA_TOOL_OPTIONS", "PERLLIB", "PYTHONUSERBASE", "LANG",
                           "MYAPP_MODE"}) {
    for (bool shell_step : {false, true}) {
      INFO(name << (shell_step ? " (shell step)" : " (argv step)"));
      Status s = CheckEnv(policy, name, shell_step);
      CHECK(s.code() == Status::Code::kFailedPrecondition);
      const bool known = worker::CodeLoadingVariable(name);
      CHECK(s.message() == Refusal(name, known ? kRunsCode : kNotListed));
    }
  }
  for (const char* name : {"PATH", "HOME"}) {
    INFO(name);
    CHECK(CheckEnv(policy, name).message() == Refusal(name, kWorkers));
  }
  // Control: a step without variables runs, and so does one with the
  // variables the worker adds to every step itself (after the step's own, so
  // the worker's values win).
  worker::RunRequest plain;
  plain.argv = {"/bin/echo", "x"};
  CHECK(policy.Check(&plain).ok());
  plain.env = {{worker::kWorkerEnv, "w1"}, {worker::kLifeEnv, "token"}, {"COHORT_GROUP", "g"}, {"COHORT_STEP", "s"},
               {"COHORT_ATTEMPT", "1"}};
  CHECK(policy.Check(&plain).ok());
}

TEST_CASE("step policy: --allowed-env names and prefixes, never PATH, HOME or code-loading variables",
          "[unit][access]") {
  TempDir d;
  worker::StepPolicy policy = EchoPolicy(d, " LANG, MYAPP_* ,TZ");
  for (const char* name : {"LANG", "TZ", "MYAPP_MODE", "MYAPP_"}) {
    INFO(name);
    CHECK(CheckEnv(policy, name).ok());
    CHECK(CheckEnv(policy, name, true).ok());
  }
  for (const char* name : {"LANGUAGE", "MYAPP", "MYAPPX", "MYAPP_x%%", "TZ2", "lang"}) {
    INFO(name);
    CHECK(CheckEnv(policy, name).message() == Refusal(name, kNotListed));
  }
  // Prefixes that take in the worker's own variables or code-loading ones
  // still do not let a step set them.
  worker::StepPolicy wide = EchoPolicy(d, "*");
  CHECK(CheckEnv(wide, "ANYTHING").ok());
  CHECK(CheckEnv(wide, "PATH").message() == Refusal("PATH", kWorkers));
  CHECK(CheckEnv(wide, "HOME").message() == Refusal("HOME", kWorkers));
  for (const char* name : {"SHELLOPTS", "PS4", "BASH_FUNC_ls%%", "BASH_FUNC_x", "MAKEFLAGS", "GIT_CONFIG_COUNT",
                           "GIT_CONFIG_PARAMETERS", "GIT_SSH_COMMAND", "JAVA_TOOL_OPTIONS", "PERLLIB",
                           "PYTHONUSERBASE", "LD_PRELOAD", "BASH_ENV", "XDG_CONFIG_HOME", "GIT_COMMON_DIR",
                           "OPENSSL_CONF", "LUA_INIT", "PAGER", "EDITOR", "LESSOPEN"}) {
    INFO(name);
    CHECK(CheckEnv(wide, name).message() == Refusal(name, kRunsCode));
  }
  worker::StepPolicy pa = EchoPolicy(d, "PA*,HO*");
  CHECK(CheckEnv(pa, "PATH").message() == Refusal("PATH", kWorkers));
  CHECK(CheckEnv(pa, "HOME").message() == Refusal("HOME", kWorkers));
  CHECK(CheckEnv(pa, "PAGE_SIZE").ok());
}

TEST_CASE("step policy: a bad --allowed-env is refused at start-up naming the entry", "[unit][access]") {
  TempDir d;
  const std::string list = d.path + "/allowed";
  std::ofstream(list) << "/bin/echo\n";
  worker::StepPolicy policy;
  auto load = [&](const std::string& allowed_env, const std::string& file) {
    return worker::StepPolicy::Load({.allowed_commands_file = file, .allowed_env = allowed_env}, &policy);
  };
  Status s = load("LANG", "");
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message() ==
        "--allowed-env needs --allowed-commands: without a command policy a step may set any variable");
  CHECK(load(" , ", "").ok());  // empty, as an unset config line gives it
  for (const char* bad : {"MY-APP", "1ABC", "A*B", "**", "A B", "BASH_FUNC_x%%"}) {
    INFO(bad);
    CHECK(load(std::string("LANG,") + bad, list).message() ==
          std::string("--allowed-env: \"") + bad +
              "\" is not a variable name (letters, digits and _, not starting with a digit) or such a name's prefix "
              "followed by *");
  }
  CHECK(load("PATH", list).message() ==
        "--allowed-env: PATH is always the worker's under --allowed-commands; steps cannot set it");
  CHECK(load("HOME", list).message() ==
        "--allowed-env: HOME is always the worker's under --allowed-commands; steps cannot set it");
  CHECK(load("SHELLOPTS", list).message() ==
        "--allowed-env: SHELLOPTS could make an allowed program run other code; steps cannot set it");
  CHECK(load("LANG,MYAPP_*,*", list).ok());
}

TEST_CASE("step policy: without a command list the step's environment is not checked", "[unit][access]") {
  worker::StepPolicy open;
  REQUIRE(worker::StepPolicy::Load({}, &open).ok());
  for (const char* name : {"PATH", "SHELLOPTS", "LD_PRELOAD", "MYAPP_MODE"}) {
    INFO(name);
    CHECK(CheckEnv(open, name).ok());
    CHECK(CheckEnv(open, name, true).ok());
  }
}

TEST_CASE("step policy: the --allowed-commands file is trusted only as key files are", "[unit][access]") {
  TempDir d;
  const std::string list = d.path + "/allowed";
  std::ofstream(list) << "/bin/echo\n";
  const worker::StepPolicyConfig config{
      .allowed_commands_file = list,
      .check_file = [](const struct stat& st, const std::string& path) {
        return common::CheckTrusted(st, "--allowed-commands file", path, false);
      }};
  worker::StepPolicy policy;
  REQUIRE(::chmod(list.c_str(), 0644) == 0);
  REQUIRE(worker::StepPolicy::Load(config, &policy).ok());  // control
  REQUIRE(::chmod(list.c_str(), 0664) == 0);
  Status s = worker::StepPolicy::Load(config, &policy);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(s.message().find("--allowed-commands file " + list + " has mode 0664: group or others may write it") == 0);
  REQUIRE(::chmod(list.c_str(), 0602) == 0);
  CHECK(worker::StepPolicy::Load(config, &policy).message().find(" has mode 0602:") != std::string::npos);
  REQUIRE(::chmod(list.c_str(), 0644) == 0);
  if (::geteuid() == 0) {
    // Another user's file: that user decides what steps run.
    REQUIRE(::chown(list.c_str(), 65534, 65534) == 0);
    s = worker::StepPolicy::Load(config, &policy);
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK(s.message().find("--allowed-commands file " + list +
                           " is owned by uid 65534, not by root or by the user this program runs as") == 0);
  }
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
