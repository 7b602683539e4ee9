// Both daemons' metrics endpoints, scraped by a real Prometheus: a PromQL
// query returns the counts of a group that just ran. And the example alert
// rules in configs/ pass promtool.
#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"
#include "tests/prometheus_server.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// The endpoint a daemon's `event=metrics endpoint=HOST:PORT` line names.
std::string LoggedEndpoint(const std::string& log) {
  const std::string key = "event=metrics endpoint=";
  const size_t at = log.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  return log.substr(from, log.find_first_of(" \n", from) - from);
}

TEST_CASE("a real Prometheus scrapes the coordinator and a worker and sees the group that ran", "[ops][prometheus]") {
  Cluster c;
  // Port 0: each daemon binds a free port itself and logs which.
  c.StartCoordinator({"--metrics-endpoint", "127.0.0.1:0"});
  c.StartWorker("w1", 2, {"--metrics-endpoint", "127.0.0.1:0"});
  const std::string coordinator_metrics = LoggedEndpoint(c.CoordinatorLogs());
  const std::string worker_metrics = LoggedEndpoint(c.worker("w1").Log());
  REQUIRE(coordinator_metrics.rfind("127.0.0.1:", 0) == 0);
  REQUIRE(worker_metrics.rfind("127.0.0.1:", 0) == 0);
  std::unique_ptr<PrometheusServer> prometheus;
  PrometheusServer::Options options;
  options.targets = {coordinator_metrics, worker_metrics};
  const common::Status started = PrometheusServer::Start(options, &prometheus);
  INFO(started.ToString());
  REQUIRE(started.ok());

  Json group = {{"id", "scraped"},
                {"on_failure", "continue"},
                {"steps", Json::array({{{"id", "a"}, {"shell", "true"}},
                                       {{"id", "b"}, {"shell", "true"}},
                                       {{"id", "c"}, {"shell", "exit 3"}}})}};
  CHECK(c.SubmitJson(group, {"--wait"}).exit_code == 1);

  const auto deadline = TestClock::now() + 30s;
  auto check = [&](const std::string& query, double want) {
    const common::Status s = prometheus->WaitForValue(
        query, [&](const Json& data) { return PrometheusServer::SingleValue(data) == want; }, deadline);
    INFO(query << ": " << s.ToString());
    CHECK(s.ok());
  };
  check("sum(up{job=\"cohort\"})", 2);
  check("cohort_steps{state=\"completed\"}", 2);
  check("cohort_steps{state=\"failed\"}", 1);
  check("cohort_groups_ended_total{state=\"failed\"}", 1);
  check("cohort_workers{state=\"ready\"}", 1);
  check("cohort_slots", 2);
  check("cohort_step_run_seconds_count", 3);
  check("cohort_dispatch_to_start_seconds_count", 3);
  check("cohort_coordinator_leading", 1);
  check("cohort_worker_steps_ended_total{result=\"exit_0\"}", 2);
  check("cohort_worker_steps_ended_total{result=\"exit_nonzero\"}", 1);
  check("cohort_worker_registered", 1);
  check("sum(cohort_store_commit_seconds_count) > bool 0", 1);
}

TEST_CASE("the example alert rules pass promtool", "[ops][prometheus]") {
  auto out = RunProgram({"/usr/bin/promtool", "check", "rules", COHORT_SOURCE_DIR "/configs/prometheus-alerts.yml"},
                        60s);
  INFO(out.out << out.err);
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("SUCCESS") != std::string::npos);
}

}  // namespace
}  // namespace cohort::testing
