// Results of any size, read as a user would: every step of a large group
// through `status --json` and `--jsonl` (page by page underneath), a group
// whose output passes a message's limit with `submit --wait --json`, and a
// step's kept output byte for byte with `cohort logs`.
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"
#include "tests/integration/peer.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// What step `i` of the big-output group prints on `stream` (1 or 2), which
// the test computes again: numbered lines, then bytes that are not UTF-8.
std::string Printed(int i, int stream) {
  std::string text;
  for (int n = 0; text.size() < 131072; ++n) text += std::to_string(i) + "-" + std::to_string(stream) + "-" + std::to_string(n) + "\n";
  text.resize(131072);
  return text + std::string("\xff\x01" "end", 5);
}

std::string PrintCommand(int i, int stream) {
  return "awk 'BEGIN{for(n=0;n<20000;n++) printf \"%d-%d-%d\\n\", " + std::to_string(i) + ", " +
         std::to_string(stream) + ", n}' | head -c 131072" + (stream == 2 ? " >&2" : "") +
         "; printf '\\377\\001end'" + (stream == 2 ? " >&2" : "");
}

}  // namespace

TEST_CASE("every step of a 20,000-step group reads back through status --json and --jsonl", "[e2e][results]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 8);
  // 500 steps run; the other 19,500 wait for a label nobody offers, and are
  // cancelled with the group.
  Json steps = Json::array();
  for (int i = 0; i < 20000; ++i) {
    Json s = {{"id", "s" + std::to_string(i)}, {"shell", "true"}};
    if (i >= 500) s["agent"] = "nobody";
    steps.push_back(s);
  }
  REQUIRE(c.SubmitJson({{"id", "big"}, {"on_failure", "continue"}, {"steps", steps}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.Status("big")["counts"]["completed"] == 500; }, 120s));
  REQUIRE(c.Cli({"cancel", "big"}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.Status("big")["state"] == "cancelled"; }, 30s));

  auto expect_state = [](int i) { return i < 500 ? "completed" : "cancelled"; };
  RunOutput json = c.Cli({"status", "big", "--json"});
  REQUIRE(json.exit_code == 1);  // cancelled
  Json doc = Json::parse(json.out);
  CHECK(doc["group"] == "big");
  CHECK(doc["steps_omitted"] == 0);
  CHECK(doc["next_cursor"].is_null());
  REQUIRE(doc["steps"].size() == 20000);
  for (int i = 0; i < 20000; ++i) {
    INFO("step " << i);
    REQUIRE(doc["steps"][i]["id"] == "s" + std::to_string(i));
    REQUIRE(doc["steps"][i]["state"] == expect_state(i));
  }

  RunOutput jsonl = c.Cli({"status", "big", "--jsonl"});
  REQUIRE(jsonl.exit_code == 1);
  std::istringstream lines(jsonl.out);
  std::string line;
  int i = 0;
  Json last;
  while (std::getline(lines, line)) {
    last = Json::parse(line);
    if (i < 20000) {
      INFO("line " << i);
      REQUIRE(last["group"] == "big");
      REQUIRE(last["id"] == "s" + std::to_string(i));
      REQUIRE(last["state"] == expect_state(i));
    }
    ++i;
  }
  CHECK(i == 20001);
  CHECK(last["state"] == "cancelled");  // the summary comes last
  CHECK(last["counts"]["completed"] == 500);
  CHECK_FALSE(last.contains("steps"));

  // The table puts what needs attention first and says how to see the rest.
  RunOutput table = c.Cli({"status", "big"});
  CHECK(table.out.find("more steps not shown: `cohort status big --jsonl` lists every step") != std::string::npos);
  CHECK(table.out.find("s600 ") < table.out.find("s0 "));

  const long rss = RssKiB(c.coordinator().pid());
  INFO("coordinator RSS " << rss << " KiB");
  if (kRssMeaningful) CHECK(rss < 512 * 1024);
}

TEST_CASE("a group whose output passes a message's limit is read whole, and logs gives a tail byte for byte",
          "[e2e][results]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 8);
  // 600 steps x 2 streams x 64 KiB kept: 77 MB of output, more than one
  // 64 MiB message.
  Json steps = Json::array();
  for (int i = 0; i < 600; ++i) {
    steps.push_back({{"id", "s" + std::to_string(i)}, {"shell", PrintCommand(i, 1) + "; " + PrintCommand(i, 2)}});
  }
  RunOutput w = c.SubmitJson({{"id", "loud"}, {"steps", steps}}, {"--wait", "--json"});
  INFO(w.err);
  REQUIRE(w.exit_code == 0);
  Json doc = Json::parse(w.out);
  CHECK(doc["state"] == "completed");
  REQUIRE(doc["steps"].size() == 600);
  for (int i = 0; i < 600; ++i) {
    INFO("step " << i);
    const Json& s = doc["steps"][i];
    REQUIRE(s["id"] == "s" + std::to_string(i));
    REQUIRE(s["state"] == "completed");
    REQUIRE(s["output_omitted"] == false);
    REQUIRE(s["stdout"].get<std::string>().size() >= 65536);  // the tail, its last bytes shown as U+FFFD
  }

  for (int i : {0, 317, 599}) {
    INFO("step " << i);
    const std::string want_out = Printed(i, 1).substr(Printed(i, 1).size() - 65536);
    const std::string want_err = Printed(i, 2).substr(Printed(i, 2).size() - 65536);
    RunOutput out = c.Cli({"logs", "loud", "s" + std::to_string(i)});
    REQUIRE(out.exit_code == 0);
    CHECK(out.out == want_out);
    RunOutput err = c.Cli({"logs", "loud", "s" + std::to_string(i), "--stderr", "--attempt", "1"});
    REQUIRE(err.exit_code == 0);
    CHECK(err.out == want_err);
  }
  RunOutput missing = c.Cli({"logs", "loud", "nope"});
  CHECK(missing.exit_code == 4);
  CHECK(missing.err.find("group \"loud\" has no step \"nope\"") != std::string::npos);
  RunOutput no_attempt = c.Cli({"logs", "loud", "s1", "--attempt", "2"});
  CHECK(no_attempt.exit_code == 4);
  CHECK(no_attempt.err.find("has run 1 attempt(s), not 2") != std::string::npos);

  const long rss = RssKiB(c.coordinator().pid());
  INFO("coordinator RSS " << rss << " KiB");
  if (kRssMeaningful) CHECK(rss < 512 * 1024);
}

TEST_CASE("a running group past --max-output-mb serves its finished steps' output from the store",
          "[e2e][results]") {
  Cluster c;
  c.StartCoordinator({"--max-output-mb", "1"});
  c.StartWorker("w1", 4);
  const std::string gate = c.dir() + "/gate";
  // 20 steps of 2 x 64 KiB kept output (2.5 MiB) and one that holds the
  // group open until the test is done looking.
  Json steps = Json::array();
  for (int i = 0; i < 20; ++i) {
    steps.push_back({{"id", "s" + std::to_string(i)}, {"shell", PrintCommand(i, 1) + "; " + PrintCommand(i, 2)}});
  }
  steps.push_back({{"id", "hold"}, {"shell", "while [ ! -e " + gate + " ]; do sleep 0.05; done"}});
  REQUIRE(c.SubmitJson({{"id", "open"}, {"steps", steps}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.Status("open")["counts"]["completed"] == 20; }, 60s));

  Json doc = Json::parse(c.Cli({"status", "open", "--json"}).out);
  CHECK(doc["state"] == "running");
  int omitted = 0;
  for (const Json& s : doc["steps"]) omitted += s["output_omitted"].get<bool>() ? 1 : 0;
  CHECK(omitted > 0);  // let go of to stay within the budget
  for (int i : {0, 7, 19}) {
    INFO("step " << i);
    RunOutput out = c.Cli({"logs", "open", "s" + std::to_string(i)});
    REQUIRE(out.exit_code == 0);
    CHECK(out.out == Printed(i, 1).substr(Printed(i, 1).size() - 65536));
    RunOutput err = c.Cli({"logs", "open", "s" + std::to_string(i), "--stderr"});
    REQUIRE(err.exit_code == 0);
    CHECK(err.out == Printed(i, 2).substr(Printed(i, 2).size() - 65536));
  }
  WriteFile(gate, "");
  RunOutput w = c.Cli({"wait", "open", "--json"});
  CHECK(w.exit_code == 0);
}

}  // namespace cohort::testing
