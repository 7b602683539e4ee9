// The metrics endpoint against a real Prometheus (tests/prometheus_server.h):
// a MetricsServer on its own poll loop in a thread exposes a counter, a
// histogram and a label full of awkward bytes, Prometheus scrapes it every
// 200 ms, and PromQL must give back what was written. promtool, from the
// same package, lints the writer's text.
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/unique_fd.h"
#include "tests/prometheus_server.h"

namespace cohort::testing {
namespace {

using common::Exposition;
using common::Histogram;
using common::MetricType;
using common::MetricsServer;
using common::Status;
using common::UniqueFd;
using nlohmann::json;
using namespace std::chrono_literals;

// Quotes, a backslash, a new line and UTF-8 in one label value.
const std::string kAwkward = "say \"hi\" \\o/\ncaf\xc3\xa9";

std::string Render() {
  Exposition e;
  Histogram h(Histogram::DefaultSecondsBounds());
  for (double v : {0.003, 0.02, 0.02, 0.02, 0.7, 4.0}) h.Observe(v);
  bool ok = e.Declare("cohort_test_total", MetricType::kCounter, "A counter the test set to 42.").ok() &&
            e.Declare("cohort_test_seconds", MetricType::kHistogram, "Six observations, in seconds.").ok() &&
            e.Declare("cohort_test_label_info", MetricType::kGauge, "A label value with awkward bytes.").ok() &&
            e.Add("cohort_test_total", {}, 42).ok() && e.AddHistogram("cohort_test_seconds", {}, h).ok() &&
            e.Add("cohort_test_label_info", {{"id", kAwkward}}, 1).ok();
  return ok ? e.Text() : "broken\n";
}

// A daemon's loop around the server alone, on the real clock, until told
// to stop through an eventfd.
class ServingThread {
 public:
  explicit ServingThread(std::unique_ptr<MetricsServer> server)
      : server_(std::move(server)), stop_(::eventfd(0, EFD_CLOEXEC)), thread_([this] { Run(); }) {}
  ~ServingThread() {
    const uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) != sizeof one) {
      // Cannot happen to a fresh eventfd; join would hang, so fail loudly.
      std::abort();
    }
    thread_.join();
  }
  const MetricsServer& server() const { return *server_; }

 private:
  void Run() {
    std::vector<pollfd> fds;
    while (true) {
      fds.clear();
      fds.push_back({stop_.get(), POLLIN, 0});
      server_->PollFds(&fds);
      int timeout = -1;
      if (auto d = server_->NextDeadline()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*d - common::Clock::now()).count();
        timeout = static_cast<int>(std::clamp<long long>(left, 0, 60000));
      }
      if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) return;
      server_->Process(fds, common::Clock::now(), Render);
    }
  }

  std::unique_ptr<MetricsServer> server_;
  UniqueFd stop_;
  std::thread thread_;
};

std::function<bool(const json&)> Equals(double want) {
  return [want](const json& data) {
    const auto v = PrometheusServer::SingleValue(data);
    return v && std::fabs(*v - want) <= 1e-9 * std::max(1.0, std::fabs(want));
  };
}

TEST_CASE("a real Prometheus scrapes the counter, the histogram and the label as written", "[prometheus]") {
  std::unique_ptr<MetricsServer> server;
  REQUIRE(MetricsServer::Listen("127.0.0.1:0", &server).ok());
  const std::string target = server->endpoint();
  ServingThread serving(std::move(server));

  std::unique_ptr<PrometheusServer> prometheus;
  PrometheusServer::Options options;
  options.targets = {target};
  const Status started = PrometheusServer::Start(options, &prometheus);
  INFO(started.ToString());
  REQUIRE(started.ok());

  const auto deadline = TestClock::now() + 30s;
  auto check = [&](const std::string& query, double want) {
    const Status s = prometheus->WaitForValue(query, Equals(want), deadline);
    INFO(query << ": " << s.ToString());
    CHECK(s.ok());
  };
  check("up{job=\"cohort\"}", 1);
  check("cohort_test_total", 42);
  check("cohort_test_seconds_count", 6);
  check("cohort_test_seconds_sum", 4.763);
  check("cohort_test_seconds_bucket{le=\"0.025\"}", 4);
  check("cohort_test_seconds_bucket{le=\"+Inf\"}", 6);
  // Rank 3 of 6 falls in (0.01, 0.025], two of its three: 0.01 + 0.015 × 2/3.
  check("histogram_quantile(0.5, cohort_test_seconds_bucket)", 0.02);

  json data;
  REQUIRE(prometheus->Query("cohort_test_label_info", &data).ok());
  REQUIRE(data["result"].size() == 1);
  CHECK(data["result"][0]["metric"]["id"] == kAwkward);

  // HELP and TYPE arrived as written.
  int status = 0;
  std::string body;
  REQUIRE(PrometheusServer::HttpGet(prometheus->port(), "/api/v1/metadata", deadline, &status, &body).ok());
  const json metadata = json::parse(body, nullptr, false);
  REQUIRE(metadata.contains("data"));
  CHECK(metadata["data"]["cohort_test_seconds"][0]["type"] == "histogram");
  CHECK(metadata["data"]["cohort_test_total"][0]["type"] == "counter");
  CHECK(metadata["data"]["cohort_test_total"][0]["help"] == "A counter the test set to 42.");
  CHECK(serving.server().connections() <= 1);
}

TEST_CASE("a bad query is an error at once, not a wait until the deadline", "[prometheus]") {
  std::unique_ptr<PrometheusServer> prometheus;
  const Status started = PrometheusServer::Start({}, &prometheus);
  INFO(started.ToString());
  REQUIRE(started.ok());
  const auto begin = TestClock::now();
  const Status s = prometheus->WaitForValue("sum(", Equals(1), begin + 30s);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(TestClock::now() - begin < 10s);
  // A query that never holds fails at its deadline, naming what it saw.
  const Status never = prometheus->WaitForValue("vector(1)", Equals(2), TestClock::now() + 300ms);
  CHECK(never.code() == Status::Code::kUnavailable);
  CHECK(never.message().find("\"1\"") != std::string::npos);
}

TEST_CASE("promtool finds nothing to lint in the writer's text", "[prometheus]") {
  const char* promtool = "/usr/bin/promtool";
  REQUIRE(::access(promtool, X_OK) == 0);
  std::string dir = (std::filesystem::temp_directory_path() / "cohort-promtool-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  {
    std::ofstream(dir + "/metrics.txt") << Render();
  }
  const pid_t pid = Spawn({"/bin/sh", "-c", std::string(promtool) + " check metrics < metrics.txt"},
                          SpawnOptions{.cwd = dir, .log = dir + "/promtool.log"});
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(Tail(dir + "/promtool.log", 0));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cohort::testing
