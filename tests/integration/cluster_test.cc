// End-to-end: a real coordinator, real workers, real processes, the real CLI.
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <zmq.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

Json ParseOut(const RunOutput& r) {
  Json j = Json::parse(r.out, nullptr, false);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

const Json& StepOf(const Json& result, const std::string& id) {
  for (const Json& s : result["steps"]) {
    if (s["id"] == id) return s;
  }
  FAIL("no step " << id);
  static Json none;
  return none;
}

// Tags a step with the test's marker in its environment; its processes (and
// their children, which inherit it) can then be found in /proc.
Json Marked(Json step, const std::string& marker) {
  step["env"] = {{"COHORT_TEST_MARK", marker}};
  return step;
}

// A step that records its SIGTERM in a file and keeps a background child, so
// killing it whole is visible.
std::string TrappingSleeper(const std::string& dir, const std::string& name, const std::string& marker) {
  (void)marker;  // carried in the step's environment, see Marked()
  return "trap 'echo term > " + dir + "/" + name + ".term; exit 143' TERM; sleep 30 & wait";
}

TEST_CASE("seed scenario: a failing step cancels its running siblings everywhere", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  c.StartWorker("w2", 2);
  const std::string m = c.Marker();
  Json g = {{"id", "seed"},
            {"steps",
             {Marked({{"id", "step1"}, {"shell", TrappingSleeper(c.dir(), "step1", m)}}, m),
              Marked({{"id", "step2"}, {"shell", "sleep 0.5; echo boom >&2; exit 3"}}, m),
              Marked({{"id", "step3"}, {"shell", TrappingSleeper(c.dir(), "step3", m)}}, m)}}};
  RunOutput r = c.SubmitJson(g, {"--wait", "--json"});
  CHECK(r.exit_code == 1);
  Json res = ParseOut(r);
  CHECK(res["state"] == "failed");
  CHECK(res["cause"]["step"] == "step2");
  REQUIRE(res["errors"].size() == 1);
  CHECK(res["errors"][0]["error"] == "exited with code 3");
  CHECK(StepOf(res, "step2")["state"] == "failed");
  CHECK(StepOf(res, "step2")["stderr"] == "boom\n");
  CHECK(StepOf(res, "step1")["state"] == "cancelled");
  CHECK(StepOf(res, "step3")["state"] == "cancelled");
  // The siblings saw SIGTERM, and nothing of the group is alive now that wait returned.
  CHECK(ReadFile(c.dir() + "/step1.term") == "term\n");
  CHECK(ReadFile(c.dir() + "/step3.term") == "term\n");
  CHECK(ProcessesWith(m).empty());
}

TEST_CASE("submitting a group again with the same spec follows it, and another spec under its id is refused",
          "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  Json g = {{"id", "again"}, {"steps", {{{"id", "a"}, {"shell", "echo once >> " + c.dir() + "/runs"}}}}};
  REQUIRE(c.SubmitJson(g, {"--wait"}).exit_code == 0);
  // The same spec: the same group, its result, and no second run.
  RunOutput again = c.SubmitJson(g, {"--wait", "--json"});
  CHECK(again.exit_code == 0);
  CHECK(Json::parse(again.out)["group"] == "again");
  RunOutput plain = c.SubmitJson(g, {});
  CHECK(plain.exit_code == 0);
  CHECK(plain.err.find("already exists with this spec") != std::string::npos);
  CHECK(ReadFile(c.dir() + "/runs") == "once\n");
  // Another spec under the id: a usage error that says what to do.
  g["steps"][0]["shell"] = "true";
  RunOutput changed = c.SubmitJson(g, {});
  CHECK(changed.exit_code == 2);
  CHECK(changed.err.find("exists already, with another spec") != std::string::npos);
  CHECK(changed.err.find("another id") != std::string::npos);
}

TEST_CASE("max_parallel holds across two workers", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 3);
  c.StartWorker("w2", 3);
  Json steps = Json::array();
  for (int i = 0; i < 9; ++i) {
    std::string f = c.dir() + "/t" + std::to_string(i);
    steps.push_back({{"id", "s" + std::to_string(i)},
                     {"shell", "date +%s.%N > " + f + "; sleep 0.3; date +%s.%N >> " + f}});
  }
  RunOutput r = c.SubmitJson({{"steps", steps}, {"max_parallel", 2}}, {"--wait", "--json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  Json res = ParseOut(r);
  std::vector<std::pair<double, int>> events;  // +1 at start, -1 at end
  std::set<std::string> workers;
  for (int i = 0; i < 9; ++i) {
    std::istringstream in(ReadFile(c.dir() + "/t" + std::to_string(i)));
    double start = 0, end = 0;
    in >> start >> end;
    REQUIRE(end > start);
    events.push_back({start, +1});
    events.push_back({end, -1});
  }
  for (const Json& s : res["steps"]) workers.insert(s["worker"].get<std::string>());
  std::sort(events.begin(), events.end());
  int now = 0, peak = 0;
  for (auto& e : events) peak = std::max(peak, now += e.second);
  CHECK(peak <= 2);
  CHECK(peak == 2);
  CHECK(workers.size() == 2);  // both workers were used
}

TEST_CASE("a step's timeout kills it and fails the group", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  const std::string m = c.Marker();
  auto t0 = std::chrono::steady_clock::now();
  RunOutput r = c.SubmitJson({{"steps", {Marked({{"id", "slow"}, {"command", {"sleep", "30"}}, {"timeout_s", 0.5}}, m)}}},
                             {"--wait", "--json"});
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.exit_code == 1);
  Json res = ParseOut(r);
  CHECK(StepOf(res, "slow")["state"] == "failed");
  CHECK(StepOf(res, "slow")["error"] == "timed out after 0.5s");
  CHECK(took < 10s);
  CHECK(ProcessesWith(m).empty());
}

TEST_CASE("retries until success", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  std::string f = c.dir() + "/count";
  std::string sh = "n=$(cat " + f + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + f + "; [ $n -ge 3 ]";
  RunOutput r = c.SubmitJson({{"steps", {{{"id", "flaky"}, {"shell", sh}}}}},
                             {"--wait", "--json", "--retries", "4", "--backoff", "0.05"});
  CHECK(r.exit_code == 0);
  Json res = ParseOut(r);
  CHECK(res["state"] == "completed");
  CHECK(StepOf(res, "flaky")["attempts"] == 3);
  CHECK(StepOf(res, "flaky")["history"][0]["status"] == "failed");
  CHECK(StepOf(res, "flaky")["history"][2]["status"] == "succeeded");
}

TEST_CASE("a worker killed with SIGKILL mid-step: the step runs again on the other worker", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("a", 1);
  c.StartWorker("b", 1);
  const std::string m = c.Marker();
  // The first attempt outlives any delay before the kill (under load a short
  // sleep could end first); the second one finds the flag and ends at once.
  const std::string flag = c.dir() + "/first-attempt";
  const std::string shell = "if [ -e " + flag + " ]; then echo ok; else : > " + flag + "; sleep 60; fi";
  RunOutput sub = c.SubmitJson({{"id", "lost"}, {"steps", {Marked({{"id", "s"}, {"shell", shell}}, m)}}}, {});
  REQUIRE(sub.exit_code == 0);
  std::string first;
  REQUIRE(WaitUntil(
      [&] {
        Json st = c.Status("lost");
        if (!st.is_object() || st["steps"][0]["state"] != "running") return false;
        first = st["steps"][0]["worker"].get<std::string>();
        return !ProcessesWith(m).empty();
      },
      20s));
  c.worker(first).Kill(SIGKILL);
  c.worker(first).Wait(5s);
  RunOutput r = c.Cli({"wait", "lost", "--json"});
  CHECK(r.exit_code == 0);
  Json res = ParseOut(r);
  const Json& s = StepOf(res, "s");
  CHECK(s["state"] == "completed");
  CHECK(s["attempts"] == 2);
  CHECK(s["history"][0]["status"] == "worker_lost");
  CHECK(s["history"][0]["worker"] == first);
  CHECK(s["worker"] != first);
  CHECK(s["stdout"] == "ok\n");
}

TEST_CASE("a user's cancel stops the group and leaves nothing running", "[e2e]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 4);
  const std::string m = c.Marker();
  Json g = {{"id", "victim"},
            {"steps",
             {Marked({{"id", "a"}, {"shell", TrappingSleeper(c.dir(), "a", m)}}, m),
              Marked({{"id", "b"}, {"shell", TrappingSleeper(c.dir(), "b", m)}}, m)}}};
  REQUIRE(c.SubmitJson(g, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return ProcessesWith(m).size() >= 4; }, 20s));
  RunOutput cancel = c.Cli({"cancel", "victim"});
  CHECK(cancel.exit_code == 0);
  RunOutput r = c.Cli({"wait", "victim", "--json"});
  CHECK(r.exit_code == 1);
  Json res = ParseOut(r);
  CHECK(res["state"] == "cancelled");
  CHECK(StepOf(res, "a")["state"] == "cancelled");
  CHECK(ProcessesWith(m).empty());
  // Cancelling it again says it already ended; nothing is left to stop.
  RunOutput again = c.Cli({"cancel", "victim"});
  CHECK(again.exit_code == 0);
  CHECK(again.err.find("already finished (cancelled); nothing to cancel") != std::string::npos);
}

TEST_CASE("garbage on every port leaves the coordinator serving", "[e2e][hostile]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  std::mt19937 rng(7);
  for (int port_index = 0; port_index < 3; ++port_index) {
    for (int round = 0; round < 5; ++round) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(c.port(port_index)));
      REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
      std::string junk(1 + rng() % 4096, '\0');
      for (char& ch : junk) ch = static_cast<char>(rng());
      if (round == 0) junk = std::string("\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f", 10) + junk;  // a ZMTP-like start
      ssize_t ignored = write(fd, junk.data(), junk.size());
      (void)ignored;
      close(fd);
    }
  }
  // Well-formed ZeroMQ, malformed cohort messages, on the client and worker ports.
  zmq::context_t ctx;
  for (int port_index = 0; port_index < 2; ++port_index) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.connect("tcp://127.0.0.1:" + std::to_string(c.port(port_index)));
    s.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    s.send(zmq::str_buffer("cohort/2"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("SUBMIT"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("\xc1\xc1\xc1"), zmq::send_flags::none);
    s.send(zmq::str_buffer("cohort/9"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("RUN"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("\x80"), zmq::send_flags::none);
    s.send(zmq::str_buffer("cohort/2"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("FINISHED"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("\x81\xa5group\x01"), zmq::send_flags::none);
  }
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "still-serving"});
  CHECK(r.exit_code == 0);
  CHECK(ParseOut(r)["steps"][0]["stdout"] == "still-serving\n");
  CHECK(c.coordinator().Log().find("bad_message") != std::string::npos);
}

TEST_CASE("the CLI: invalid specs exit 2 naming the field - an unreachable coordinator exits 3", "[e2e][cli]") {
  Cluster c;
  c.StartCoordinator();
  RunOutput bad = c.SubmitJson({{"max_parallel", 0}, {"steps", {{{"id", "a"}, {"shell", "true"}}}}}, {});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("max_parallel") != std::string::npos);
  RunOutput dup = c.SubmitJson({{"steps", {{{"id", "a"}, {"shell", "true"}}, {{"id", "a"}, {"shell", "true"}}}}}, {});
  CHECK(dup.exit_code == 2);
  CHECK(dup.err.find("steps[1] (id \"a\")") != std::string::npos);
  // A key given twice in a file is refused as the coordinator would, not
  // lost when the CLI reads the file.
  const std::string twice = c.dir() + "/twice.json";
  WriteFile(twice, R"({"steps": [{"id": "a", "shell": "true", "shell": "false"}]})");
  RunOutput repeated = c.Cli({"submit", twice});
  INFO(repeated.err);
  CHECK(repeated.exit_code == 2);
  CHECK(repeated.err.find("given more than once") != std::string::npos);
  RunOutput flag = c.Cli({"submit", "--on-failure", "sometimes", "--", "true"});
  CHECK(flag.exit_code == 2);
  CHECK(flag.err.find("on_failure") != std::string::npos);
  RunOutput none = c.Cli({"submit"});
  CHECK(none.exit_code == 2);
  RunOutput unknown = c.Cli({"status", "no-such-group"});
  CHECK(unknown.exit_code == 4);
  CHECK(unknown.err.find("no-such-group") != std::string::npos);
  RunOutput away = RunProgram({COHORT_BIN_DIR "/cohort", "groups", "--connect-timeout", "0.5", "--coordinator",
                               "tcp://127.0.0.1:" + std::to_string(FreePort())},
                              20s);
  CHECK(away.exit_code == 3);
  CHECK(away.err.find("cannot reach the coordinator at tcp://127.0.0.1:") != std::string::npos);
}

}  // namespace
}  // namespace cohort::testing

namespace cohort::testing {
namespace {

TEST_CASE("workers re-register after the coordinator restarts", "[e2e][reconnect]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  c.coordinator().Kill(SIGKILL);
  c.coordinator().Wait(std::chrono::seconds(5));
  c.StartCoordinator();  // same ports, no memory of w1
  // The worker notices the silence, reconnects with backoff and registers again.
  bool back = WaitUntil([&] { return c.HasWorker("w1"); }, std::chrono::seconds(20));
  INFO(c.worker("w1").Log());
  REQUIRE(back);
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "after-restart"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("after-restart") != std::string::npos);
}

TEST_CASE("a second worker under a taken name is refused while the first lives", "[e2e][reconnect]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("twin", 1);
  // Started by hand: it never joins, so StartWorker's wait does not apply.
  Daemon second({COHORT_BIN_DIR "/cohort-worker", "--coordinator", "tcp://127.0.0.1:" + std::to_string(c.port(1)),
                 "--name", "twin", "--slots", "5", "--heartbeat-ms", "200", "--state-dir", c.dir() + "/second-state",
                 "--run-as", StepUserFlags()[1]},
                c.dir() + "/second.log");
  REQUIRE(WaitUntil([&] { return second.Log().find("is in use by another live worker") != std::string::npos; },
                    std::chrono::seconds(20)));
  auto workers = c.Workers();
  REQUIRE(workers.size() == 1);
  CHECK(workers[0]["slots"] == 1);  // still the first one
  RunOutput r = c.Cli({"submit", "--wait", "--json", "--", "echo", "ok"});
  CHECK(r.exit_code == 0);
}

}  // namespace
}  // namespace cohort::testing
