// Config files as an operator writes them: every error names the file and
// the line, values are checked by each option's own type, the command line
// wins; and what --check-config looks at without binding or locking
// (endpoints, state directories).
#include "common/options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/state_dir.h"
#include "common/transport.h"
#include "tests/unit/temp_dir.h"

namespace cohort::common {
namespace {

namespace po = boost::program_options;
using cohort::testing::TempDir;

struct Parsed {
  int rc = -1;
  std::string err;
  int slots = 0;
  std::string name;
  bool insecure = false;
};

// Parses `args` with a small option table, stderr caught in a file.
Parsed Parse(std::vector<std::string> args) {
  Parsed p;
  po::options_description table("Options");
  table.add_options()
      ("slots", po::value(&p.slots)->default_value(1), "steps at once")
      ("name", po::value(&p.name), "a name")
      ("heartbeat-ms", po::value<int>()->default_value(1000), "ms")
      ("insecure", po::bool_switch(&p.insecure), "no keys");
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  TempDir dir;
  const std::string err_path = dir.path + "/stderr";
  const int fd = ::open(err_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  po::variables_map vm;
  p.rc = ParseCommandLine(static_cast<int>(argv.size()), argv.data(), "prog", "usage", table, &vm);
  if (p.rc < 0 && p.slots == 2 && p.name == "too-few") p.rc = UsageError("prog", "--slots must be 3 or more");
  std::cerr.flush();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(err_path);
  p.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return p;
}

struct Conf {
  TempDir dir;
  std::string path = dir.path + "/test.conf";
  explicit Conf(const std::string& text) { std::ofstream(path) << text; }
};

}  // namespace

TEST_CASE("options: a config file's values, each checked by its option, the command line winning", "[unit][options]") {
  Conf conf("# comment\n\n  slots = 4   # four\nname=w1\ninsecure = true\n");
  Parsed p = Parse({"--config", conf.path});
  CHECK(p.rc == -1);
  CHECK(p.err.empty());
  CHECK(p.slots == 4);
  CHECK(p.name == "w1");
  CHECK(p.insecure);
  p = Parse({"--config", conf.path, "--slots", "7"});
  CHECK(p.rc == -1);
  CHECK(p.slots == 7);
  CHECK(p.name == "w1");
}

TEST_CASE("options: a config file's errors name the file and the line", "[unit][options]") {
  struct Case {
    const char* text;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"slots = 2\nheartbeat_ms = 5\n", ":2: unknown option \"heartbeat_ms\" (did you mean \"heartbeat-ms\"?)\n"},
           {"--slots = 2\n", ":1: unknown option \"--slots\" (did you mean \"slots\"?)\n"},
           {"colour = red\n", ":1: unknown option \"colour\"\n"},
           {"\n\nslots = many\n", ":3: bad value \"many\" for option \"slots\"\n"},
           {"insecure = perhaps\n", ":1: bad value \"perhaps\" for option \"insecure\"\n"},
           {"slots\n", ":1: malformed line \"slots\": expected `name = value`\n"},
           {"[worker]\n", ":1: malformed line \"[worker]\": expected `name = value`\n"},
           {" = 3\n", ":1: malformed line \"= 3\": expected `name = value`\n"},
           {"slots = 2\nname = a\nslots = 3\n", ":3: option \"slots\" given twice (first on line 1)\n"},
       }) {
    Conf conf(c.text);
    INFO(c.text);
    Parsed p = Parse({"--config", conf.path});
    CHECK(p.rc == 2);
    CHECK(p.err == "prog: " + conf.path + c.message);
  }
  // A bad value is an error even where the command line overrides it.
  Conf conf("slots = many\n");
  CHECK(Parse({"--config", conf.path, "--slots", "3"}).rc == 2);
  CHECK(Parse({"--config", "/nonexistent/x.conf"}).err ==
        "prog: cannot read config file /nonexistent/x.conf: No such file or directory\n");
}

TEST_CASE("options: a later check's error says where in the config file the options it names were set",
          "[unit][options]") {
  Conf conf("name = too-few\nslots = 2\n");
  Parsed p = Parse({"--config", conf.path});
  CHECK(p.rc == 2);
  CHECK(p.err == "prog: --slots must be 3 or more\n  (in " + conf.path + ": line 2 slots = 2)\n");
  // Given on the command line: nothing to point to.
  p = Parse({"--config", conf.path, "--slots", "2"});
  CHECK(p.err == "prog: --slots must be 3 or more\n");
}

TEST_CASE("options: endpoints are checked without binding or connecting", "[unit][options]") {
  for (const char* ok : {"tcp://127.0.0.1:5700", "tcp://*:5700", "tcp://[::1]:5701", "tcp://eth0:1",
                         "tcp://10.0.0.1:0", "ipc:///run/cohort/c", "inproc://x"}) {
    INFO(ok);
    CHECK(CheckEndpoint(ok, true).ok());
  }
  CHECK(CheckEndpoint("tcp://a.example;10.0.0.5:5701", false).ok());
  for (const char* bad : {"", "127.0.0.1:5700", "tcp://127.0.0.1", "tcp://:5700", "tcp://h:port", "tcp://h:65536",
                          "udp://h:1", "ipc://", "inproc://"}) {
    INFO(bad);
    Status s = CheckEndpoint(bad, true);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("endpoint \"" + std::string(bad) + "\""));
  }
  CHECK_FALSE(CheckEndpoint("tcp://h:*", false).ok());  // only a bind picks a port
  CHECK_FALSE(CheckEndpoint("tcp://h:0", false).ok());
}

TEST_CASE("options: a state directory is checked without creating or locking it", "[unit][options]") {
  TempDir d;
  CHECK(CheckStateDir(d.path + "/new/deeper", "prog").ok());  // its parents would be made
  struct stat st {};
  CHECK(::stat((d.path + "/new").c_str(), &st) != 0);
  std::ofstream(d.path + "/file") << "x";
  Status s = CheckStateDir(d.path + "/file", "prog");
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains(d.path + "/file is not a directory"));
  s = CheckStateDir(d.path + "/file/sub", "prog");
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(CheckStateDir("relative/dir", "prog").code() == Status::Code::kFailedPrecondition);
  // Held by a running daemon is fine: the check must pass beside it.
  StateDirLock lock;
  REQUIRE(StateDirLock::Take(d.path, "prog", &lock).ok());
  CHECK(CheckStateDir(d.path, "prog").ok());
  if (::geteuid() != 0) {  // root writes through mode bits
    REQUIRE(::mkdir((d.path + "/ro").c_str(), 0500) == 0);
    s = CheckStateDir(d.path + "/ro", "prog");
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("not writable by prog"));
  }
}

}  // namespace cohort::common
