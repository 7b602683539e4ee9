// The worker's state directory with real files and real processes: the
// lock keeps a second worker out, the life token survives to the next life,
// and the leftover cleanup kills exactly the processes carrying the token it
// is given.
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/temp_dir.h"
#include "worker/leftovers.h"
#include "worker/life_record.h"

namespace cohort::worker {
namespace {

// `sleep 300` with `life` as its kLifeEnv (nothing else in its environment).
pid_t SleeperOf(const std::string& life) {
  std::string var = std::string(kLifeEnv) + "=" + life;
  char* argv[] = {const_cast<char*>("/bin/sleep"), const_cast<char*>("300"), nullptr};
  char* envp[] = {var.data(), nullptr};
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, "/bin/sleep", nullptr, nullptr, argv, envp) == 0);
  return pid;
}

// Reaps `pid`; its terminating signal, 0 if it exited.
int ReapSignal(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST_CASE("a new state directory records no previous life, and the next life reads this one's token",
          "[life]") {
  testing::TempDir s;
  const std::string dir = s.path + "/state";
  std::string token;
  {
    LifeRecord first;
    REQUIRE(LifeRecord::Open(dir, &first).ok());
    CHECK(first.previous().empty());
    REQUIRE(first.Begin(&token).ok());
    CHECK(token.size() == 32);
  }
  LifeRecord second;
  REQUIRE(LifeRecord::Open(dir, &second).ok());
  CHECK(second.previous() == token);
  std::string next;
  REQUIRE(second.Begin(&next).ok());
  CHECK(next != token);
}

TEST_CASE("a state directory in use is refused, naming the holder's pid", "[life]") {
  testing::TempDir s;
  LifeRecord holder;
  REQUIRE(LifeRecord::Open(s.path, &holder).ok());
  LifeRecord second;
  common::Status st = LifeRecord::Open(s.path, &second);
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == common::Status::Code::kFailedPrecondition);
  CHECK(st.message().find(s.path + "/lock") != std::string::npos);
  CHECK(st.message().find("pid " + std::to_string(::getpid())) != std::string::npos);
}

TEST_CASE("a torn or foreign life file names no previous life", "[life]") {
  testing::TempDir s;
  for (const char* text : {"", "0123", "not a token\n", "../../etc\n"}) {
    std::ofstream(s.path + "/life", std::ios::trunc) << text;
    LifeRecord r;
    REQUIRE(LifeRecord::Open(s.path, &r).ok());
    CHECK(r.previous() == (std::string(text) == "0123" ? "0123" : ""));
  }
}

TEST_CASE("leftover cleanup kills exactly the processes that carry the token", "[life]") {
  const std::string mine = "0123456789abcdef0123456789abcdef";
  const std::string theirs = "fedcba9876543210fedcba9876543210";
  const pid_t a = SleeperOf(mine), b = SleeperOf(mine), other = SleeperOf(theirs);
  const pid_t prefix = SleeperOf(mine + "00");  // a token that merely starts like ours
  CHECK(KillLeftovers(mine) == 2);
  CHECK(ReapSignal(a) == SIGKILL);
  CHECK(ReapSignal(b) == SIGKILL);
  CHECK(::kill(other, 0) == 0);
  CHECK(::kill(prefix, 0) == 0);
  CHECK(KillLeftovers("") == 0);
  ::kill(other, SIGKILL);
  ::kill(prefix, SIGKILL);
  CHECK(ReapSignal(other) == SIGKILL);
  CHECK(ReapSignal(prefix) == SIGKILL);
}

}  // namespace
}  // namespace cohort::worker
