// Several real coordinators sharing one real PostgreSQL database, with
// workers and a CLI that are given every coordinator's endpoint, as an
// operator runs them (docs/OPERATIONS.md, "Several coordinators"). The
// database is a server of the cluster's own (tests/pg_server.h). Who leads
// is read from the leadership row itself, not guessed from logs. Every
// wait polls a condition up to a deadline.
#ifndef COHORT_TESTS_INTEGRATION_HA_CLUSTER_H_
#define COHORT_TESTS_INTEGRATION_HA_CLUSTER_H_

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/cluster.h"
#include "tests/pg_server.h"

namespace cohort::testing {

struct LeaderRow {
  std::string holder;  // "c0", "c1", ...
  uint64_t epoch = 0;
  int64_t expires_in_ms = 0;
};

class HaCluster {
 public:
  // `coordinators` slots, none started; a fresh database on a new server.
  explicit HaCluster(int coordinators, int heartbeat_ms = 200);
  ~HaCluster();

  // Starts coordinator `i` (named c<i>) and returns at once.
  Daemon& StartCoordinator(int i, std::vector<std::string> extra = {});
  Daemon& coordinator(int i) { return *coordinators_.at(i); }
  void StopCoordinator(int i) { coordinators_.at(i).reset(); }
  // Starts a worker given every coordinator's endpoint; returns at once.
  Daemon& StartWorker(const std::string& name, int slots, std::vector<std::string> extra = {});
  Daemon& worker(const std::string& name) { return *workers_.at(name); }

  // The surface Cluster offers, for tests written for both (the crash
  // chaos): "the coordinator" is the one leading now.
  // Starts every coordinator that is not running, with `extra`, and waits
  // until one leads and answers.
  void StartCoordinator(std::vector<std::string> extra);
  // The leader, once one holds the lease and runs (waits up to 30 s; throws
  // if none does).
  Daemon& coordinator();
  // Starts a worker and waits until the leader lists it.
  Daemon& StartWorkerJoined(const std::string& name, int slots);
  Daemon& LaunchWorker(const std::string& name, int slots) { return StartWorker(name, slots); }
  bool HasWorker(const std::string& name);
  // Every coordinator's log, as one text.
  std::string CoordinatorLogs();
  // A unique token for marking a test's processes, killed with the cluster.
  std::string Marker();

  // The leadership row, if any.
  std::optional<LeaderRow> Leader();
  // Waits until a coordinator holds an unexpired lease and answers clients;
  // its index, or -1 at the timeout.
  int WaitForLeader(std::chrono::milliseconds timeout);
  // SQL of the test's own on the database: the first column of the first row.
  std::string Query(const std::string& sql);

  // `cohort ARGS... --coordinator <every client endpoint>`.
  RunOutput Cli(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  RunOutput SubmitJson(const nlohmann::json& group, std::vector<std::string> flags = {});
  nlohmann::json Status(const std::string& group);

  PgServer& pg() { return *pg_; }
  const std::string& dir() const { return dir_; }
  std::string client_endpoint(int i) const { return "tcp://127.0.0.1:" + std::to_string(ports_.at(i)[0]); }
  std::string AllLogs();

 private:
  int heartbeat_ms_;
  std::string dir_;
  std::unique_ptr<PgServer> pg_;
  std::string db_;
  std::vector<std::array<int, 3>> ports_;
  std::vector<std::unique_ptr<Daemon>> coordinators_;
  std::map<std::string, std::unique_ptr<Daemon>> workers_;
  int files_ = 0;
  std::vector<std::string> markers_;
  std::vector<std::string> extra_;  // the flags StartCoordinator(extra) was given
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_HA_CLUSTER_H_
