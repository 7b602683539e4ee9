// PrometheusServer is a private, real Prometheus server for tests (Debian's
// prometheus package): started in a temporary directory under $TMPDIR with
// a generated prometheus.yml that scrapes the given targets every
// scrape_interval, listening on a loopback port the system picks, and
// stopped (with anything it started) and removed with the object. It owns
// the directory and the server's process group. The test asks it PromQL
// through the HTTP API (/api/v1/query) and waits for an answer to hold.
//
// Prometheus 2.42 hands new targets to its scrapers on a 5 s tick, so the
// first scrape comes about 5 s after Start(), whatever the interval; later
// ones follow every interval.
//
// Prometheus does not refuse root, so unlike tests/pg_server.h it runs as
// the test's user. It dies with the thread that started it, so a crashed
// test leaves no server behind.
//
// Thread contract: an instance is used by one thread at a time, which must
// live as long as the server (its parent-death signal follows that thread).
// It reaps its server with waitpid, so nothing else in the process may reap
// children it did not start.
#ifndef COHORT_TESTS_PROMETHEUS_SERVER_H_
#define COHORT_TESTS_PROMETHEUS_SERVER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tests/harness_util.h"

namespace cohort::testing {

class PrometheusServer {
 public:
  struct Options {
    // host:port of each endpoint to scrape, as job "cohort".
    std::vector<std::string> targets;
    // Prometheus takes intervals well under a second; the scrape timeout
    // is the same.
    std::chrono::milliseconds scrape_interval{200};
    std::string binary = "/usr/bin/prometheus";
  };

  // Ready when OK: /-/ready answered 200. Unavailable if the binary is not
  // installed (scripts/install-deps installs it).
  static common::Status Start(const Options& options, std::unique_ptr<PrometheusServer>* out);
  // SIGTERM, then SIGKILL to the process group past 10 s; the directory goes.
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }

  // An instant query at the server's now. On success *data is the answer's
  // "data" member: {"resultType": "vector", "result": [{"metric": {...},
  // "value": [time, "text"]}, ...]}. An error answer (a PromQL syntax error)
  // is InvalidArgument with Prometheus's message.
  common::Status Query(const std::string& promql, nlohmann::json* data);
  // Queries until `holds(data)` or `deadline`; at the deadline
  // Unavailable, naming the last answer and each target's health and last
  // scrape error. New samples arrive once per scrape interval and nothing
  // announces them, so the queries are paced by a short backoff.
  common::Status WaitForValue(const std::string& promql, const std::function<bool(const nlohmann::json&)>& holds,
                              TestClock::time_point deadline, nlohmann::json* data = nullptr);
  // The value of the answer's only sample: a vector of one, or a scalar;
  // nullopt otherwise.
  static std::optional<double> SingleValue(const nlohmann::json& data);

  // A plain HTTP/1.0 GET of `path` on 127.0.0.1:port, read to the end.
  static common::Status HttpGet(int port, const std::string& path, TestClock::time_point deadline, int* status,
                                std::string* body);

 private:
  PrometheusServer() = default;
  common::Status WriteConfig(const Options& options);
  // Waits for the log to name the port and say ready, then for /-/ready.
  common::Status AwaitReady(TestClock::time_point deadline);
  // Reads the log for the bound port and readiness; true once both are known.
  bool ReadLog();
  std::string TargetHealth();
  void Kill();

  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  pid_t owner_ = -1;  // the process that started it; a forked child leaves it alone
  int port_ = 0;
  bool said_ready_ = false;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_PROMETHEUS_SERVER_H_
