// Unit tests of the --client-users file: its syntax and the errors that name
// file and line, the `*` default, duplicates, unknown users, root refused,
// the owner and mode checks of Load, and Resolve for listed, unlisted and
// absent clients. Real users of the passwd database (root, daemon, nobody).
#include "worker/client_users.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "tests/unit/temp_dir.h"

namespace cohort::worker {
namespace {

using common::Status;

RunAsUser User(const std::string& name) {
  RunAsUser user;
  REQUIRE(LookUpUser(name, &user).ok());
  return user;
}

TEST_CASE("client-users maps listed clients - and * is everyone else's", "[client_users]") {
  ClientUsers users;
  REQUIRE(ClientUsers::Parse("# teams\n\nalice  daemon\n  bob\tnobody  \n* nobody\n", "/etc/cu", &users).ok());
  CHECK(users.size() == 3);
  const RunAsUser* user = nullptr;
  REQUIRE(users.Resolve("alice", &user).ok());
  REQUIRE(user != nullptr);
  CHECK(user->credentials.uid == User("daemon").credentials.uid);
  CHECK(user->home == User("daemon").home);
  REQUIRE(users.Resolve("bob", &user).ok());
  REQUIRE(user != nullptr);
  CHECK(user->credentials.uid == User("nobody").credentials.uid);
  REQUIRE(users.Resolve("carol", &user).ok());
  REQUIRE(user != nullptr);
  CHECK(user->name == "nobody");
  // No client (no CURVE): the worker's own --run-as.
  REQUIRE(users.Resolve("", &user).ok());
  CHECK(user == nullptr);
}

TEST_CASE("client-users without * refuses an unlisted client by name", "[client_users]") {
  ClientUsers users;
  REQUIRE(ClientUsers::Parse("alice daemon\n", "/etc/cu", &users).ok());
  const RunAsUser* user = nullptr;
  Status s = users.Resolve("bob", &user);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(s.message() == "client \"bob\" is not mapped to a user on this worker (--client-users /etc/cu)");
  CHECK(user == nullptr);
  REQUIRE(users.Resolve("", &user).ok());
  CHECK(user == nullptr);
}

TEST_CASE("client-users errors name the file and the line", "[client_users]") {
  ClientUsers users;
  auto error = [&users](const std::string& text) {
    Status s = ClientUsers::Parse(text, "/etc/cu", &users);
    CHECK_FALSE(s.ok());
    return s.message();
  };
  CHECK(error("alice daemon\n\nbob\n") ==
        "--client-users: /etc/cu:3: expected `CLIENT-NAME USER` (or `* USER`), got 1 fields");
  CHECK(error("alice daemon extra\n") ==
        "--client-users: /etc/cu:1: expected `CLIENT-NAME USER` (or `* USER`), got 3 fields");
  CHECK(error("alice daemon\n# x\nalice nobody\n") ==
        "--client-users: /etc/cu:3: client \"alice\" is mapped already on line 1");
  CHECK(error("* daemon\n* nobody\n") == "--client-users: /etc/cu:2: client \"*\" is mapped already on line 1");
  CHECK(error("alice no-such-user-cohort-test\n") ==
        "--client-users: /etc/cu:1: no user \"no-such-user-cohort-test\" on this host");
  CHECK(error("alice daemon\nbob root\n") ==
        "--client-users: /etc/cu:2: client \"bob\" would run steps as root (uid 0); map it to an unprivileged user");
  CHECK(error("* 0\n") ==
        "--client-users: /etc/cu:1: client \"*\" would run steps as root (uid 0); map it to an unprivileged user");
}

TEST_CASE("client-users files are checked like key files", "[client_users]") {
  testing::TempDir dir;
  const std::string file = dir.path + "/client-users";
  std::ofstream(file) << "alice daemon\n";
  ClientUsers users;
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  REQUIRE(ClientUsers::Load(file, &users).ok());
  CHECK(users.size() == 1);

  REQUIRE(::chmod(file.c_str(), 0666) == 0);
  Status s = ClientUsers::Load(file, &users);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(s.message().find("--client-users file " + file + " has mode") == 0);

  s = ClientUsers::Load(dir.path + "/missing", &users);
  CHECK(s.code() == Status::Code::kNotFound);
  CHECK(s.message().find("--client-users: cannot open " + dir.path + "/missing") == 0);

  s = ClientUsers::Load(dir.path, &users);
  CHECK(s.message() == "--client-users: " + dir.path + " is not a regular file");
}

}  // namespace
}  // namespace cohort::worker
