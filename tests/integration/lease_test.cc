// The worker's lease, with real daemons and processes: a step never runs in
// two places at once. A worker that loses its coordinator for the lease
// stops its steps itself and reports them lost; one that stops on SIGTERM
// says goodbye only once its steps are dead, so their retries never overlap
// the originals' kill grace.
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

TEST_CASE("a worker that loses its coordinator for its lease stops its steps, and they run again on its return",
          "[e2e][lease]") {
  Cluster c;
  // Steps are stopped 3 s after the last acknowledgement (6 s, less the
  // test workers' 2 s kill grace and a second).
  c.StartCoordinator({"--worker-lease", "6"});
  c.StartWorker("w1", 1);
  const std::string m = c.Marker();
  Json step = {{"id", "s"}, {"shell", "sleep 300"}, {"env", {{"COHORT_TEST_MARK", m}}}};
  REQUIRE(c.SubmitJson({{"id", "leased"}, {"steps", {step}}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return !ProcessesWith(m).empty(); }, 20s));

  c.coordinator().Kill(SIGKILL);
  REQUIRE(c.coordinator().Wait(5s) >= 0);
  // Nobody answers: the worker stops the step itself.
  CHECK(WaitUntil([&] { return ProcessesWith(m).empty(); }, 30s));
  CHECK(c.worker("w1").Log().find("event=lease_expired") != std::string::npos);

  // Back, the coordinator hears of attempt 1 as lost (from the worker's kept
  // result), and runs attempt 2.
  c.StartCoordinator({"--worker-lease", "6"});
  REQUIRE(WaitUntil([&] { return !ProcessesWith(m).empty(); }, 30s));
  Json st = c.Status("leased");
  REQUIRE(st["steps"][0]["attempts"] == 2);
  const Json& first = st["steps"][0]["history"][0];
  CHECK(first["status"] == "worker_lost");
  CHECK(first["error"].get<std::string>().find("lease") != std::string::npos);
  CHECK(c.Cli({"cancel", "leased"}).exit_code == 0);
  CHECK(WaitUntil([&] { return ProcessesWith(m).empty(); }, 20s));
}

TEST_CASE("a worker stopped with SIGTERM says goodbye only once its steps are dead: no retry overlaps them",
          "[e2e][lease]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  const std::string d = c.dir();
  // Attempt 1 takes a second to die after SIGTERM; attempt 2 notes whether
  // attempt 1 was still alive when it started.
  const std::string shell =
      "if [ \"$COHORT_ATTEMPT\" = 1 ]; then touch " + d + "/a1-alive; trap 'sleep 1; rm -f " + d +
      "/a1-alive; exit 143' TERM; touch " + d + "/a1-started; sleep 300 & wait; else [ -e " + d +
      "/a1-alive ] && touch " + d + "/overlap; touch " + d + "/a2-ran; fi";
  REQUIRE(c.SubmitJson({{"id", "handover"}, {"steps", {{{"id", "s"}, {"shell", shell}}}}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return Exists(d + "/a1-started"); }, 20s));
  c.StartWorker("w2", 1);

  c.worker("w1").Kill(SIGTERM);
  CHECK(c.worker("w1").Wait(20s) == 0);
  REQUIRE(WaitUntil([&] { return Exists(d + "/a2-ran"); }, 30s));
  CHECK_FALSE(Exists(d + "/overlap"));
  CHECK_FALSE(Exists(d + "/a1-alive"));
  RunOutput w = c.Cli({"wait", "handover", "--json"});
  CHECK(w.exit_code == 0);
  CHECK(Json::parse(w.out)["steps"][0]["attempts"] == 2);
  // It was not declared lost while its step took a second to die: it said
  // goodbye, and the step ran again at once, not a lease later.
  const std::string log = c.coordinator().Log();
  CHECK(log.find("event=worker_left worker=w1") != std::string::npos);
  CHECK(log.find("event=worker_lost worker=w1") == std::string::npos);
}

}  // namespace
}  // namespace cohort::testing
