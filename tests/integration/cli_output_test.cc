// What a person sees of `cohort` day to day, through the real CLI against
// real daemons: a one-step submit that reads like running the command, a
// group's end summary that fits a screen, one step in detail.
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string HostName() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

TEST_CASE("submit --wait -- CMD prints the step's output and exits with its code", "[e2e][cli]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);

  // The worker runs on this host: its name, and nothing else, on stdout.
  RunOutput host = c.Cli({"submit", "--wait", "--", "hostname"});
  INFO(host.err);
  CHECK(host.exit_code == 0);
  CHECK(host.out == HostName() + "\n");

  RunOutput both = c.Cli({"submit", "--wait", "--", "sh", "-c", "echo out; echo err >&2; exit 7"});
  CHECK(both.exit_code == 7);
  CHECK(both.out == "out\n");
  CHECK(both.err.starts_with("err\n"));
  CHECK(both.err.find("exited with code 7") != std::string::npos);

  // Bytes that are not UTF-8 come through as the step wrote them.
  RunOutput raw = c.Cli({"submit", "--wait", "--", "printf", "a\\377\\376b"});
  CHECK(raw.exit_code == 0);
  CHECK(raw.out == "a\xff\xfe" "b");

  // 2 and 3 are cohort's own (bad usage, coordinator unreachable).
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "exit 2"}).exit_code == 1);
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "exit 3"}).exit_code == 1);
  CHECK(c.Cli({"submit", "--wait", "--", "sh", "-c", "kill -TERM $$"}).exit_code == 128 + 15);
  RunOutput late = c.Cli({"submit", "--wait", "--timeout", "0.2", "--", "sleep", "60"});
  INFO(late.err);
  CHECK(late.exit_code == 124);

  // --json keeps the result document.
  RunOutput json = c.Cli({"submit", "--wait", "--json", "--", "echo", "hi"});
  CHECK(json.exit_code == 0);
  CHECK(Json::parse(json.out)["steps"][0]["stdout"] == "hi\n");
}

}  // namespace cohort::testing
