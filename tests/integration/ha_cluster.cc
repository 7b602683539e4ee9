#include "tests/integration/ha_cluster.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <stdexcept>

namespace cohort::testing {

using namespace std::chrono_literals;

HaCluster::HaCluster(int coordinators, int heartbeat_ms) : heartbeat_ms_(heartbeat_ms) {
  char tmpl[] = "/tmp/cohort-ha-XXXXXX";
  dir_ = mkdtemp(tmpl);
  std::string error;
  if (!PgServer::Start(&pg_, &error)) throw std::runtime_error("PostgreSQL did not start: " + error);
  db_ = "cohort";
  if (!pg_->CreateDatabase(db_, &error)) throw std::runtime_error("CREATE DATABASE failed: " + error);
  for (int i = 0; i < coordinators; ++i) ports_.push_back({FreePort(), FreePort(), FreePort()});
  coordinators_.resize(coordinators);
}

HaCluster::~HaCluster() {
  workers_.clear();
  coordinators_.clear();
  for (const std::string& m : markers_) {
    for (pid_t pid : ProcessesWith(m)) ::kill(pid, SIGKILL);
  }
  if (!std::getenv("COHORT_KEEP_TEST_DIRS")) RunProgram({"/bin/rm", "-rf", dir_}, 30s);
}

Daemon& HaCluster::StartCoordinator(int i, std::vector<std::string> extra) {
  const auto& p = ports_.at(i);
  auto ep = [](int port) { return "tcp://127.0.0.1:" + std::to_string(port); };
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-coordinator", "--store", pg_->Uri(db_),
                                   "--name", "c" + std::to_string(i), "--client-endpoint", ep(p[0]),
                                   "--worker-endpoint", ep(p[1]), "--cancel-endpoint", ep(p[2]),
                                   "--heartbeat-ms", std::to_string(heartbeat_ms_), "--log-level", "debug"};
  // As in Cluster: a lost worker's steps run again after 10 s, not a minute.
  if (std::find(extra.begin(), extra.end(), "--worker-lease") == extra.end()) {
    argv.push_back("--worker-lease");
    argv.push_back("10");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  coordinators_.at(i) = std::make_unique<Daemon>(argv, dir_ + "/c" + std::to_string(i) + ".log");
  return *coordinators_.at(i);
}

Daemon& HaCluster::StartWorker(const std::string& name, int slots, std::vector<std::string> extra) {
  std::string all;
  for (const auto& p : ports_) all += (all.empty() ? "" : ",") + ("tcp://127.0.0.1:" + std::to_string(p[1]));
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-worker", "--coordinator", all, "--name", name,
                                   "--slots", std::to_string(slots), "--heartbeat-ms", std::to_string(heartbeat_ms_),
                                   "--kill-grace-ms", "2000", "--log-level", "debug", "--state-dir",
                                   dir_ + "/worker-" + name + "-state", "--drain-timeout", "0"};
  for (const std::string& f : StepUserFlags()) argv.push_back(f);
  argv.insert(argv.end(), extra.begin(), extra.end());
  // A previous worker of this name is stopped first: it holds the state
  // directory the new one takes.
  workers_.erase(name);
  workers_[name] = std::make_unique<Daemon>(argv, dir_ + "/worker-" + name + ".log");
  return *workers_[name];
}

void HaCluster::StartCoordinator(std::vector<std::string> extra) {
  extra_ = extra;
  for (size_t i = 0; i < coordinators_.size(); ++i) {
    if (!coordinators_[i] || coordinators_[i]->Wait(0ms) != -1) StartCoordinator(static_cast<int>(i), extra);
  }
  if (WaitForLeader(30s) < 0) throw std::runtime_error("no coordinator came to lead:\n" + AllLogs());
}

Daemon& HaCluster::coordinator() {
  int leader = -1;
  WaitUntil(
      [&] {
        auto l = Leader();
        if (!l || l->expires_in_ms < 0 || l->holder.size() < 2) return false;
        const int i = std::atoi(l->holder.c_str() + 1);
        if (i < 0 || i >= static_cast<int>(coordinators_.size()) || !coordinators_[i] ||
            coordinators_[i]->Wait(0ms) != -1) {
          return false;
        }
        leader = i;
        return true;
      },
      30s);
  if (leader < 0) throw std::runtime_error("no coordinator leads:\n" + AllLogs());
  return *coordinators_[leader];
}

Daemon& HaCluster::StartWorkerJoined(const std::string& name, int slots) {
  Daemon& d = StartWorker(name, slots);
  if (!WaitUntil([&] { return HasWorker(name); }, 20s)) {
    throw std::runtime_error("worker " + name + " did not join:\n" + d.Log());
  }
  return d;
}

bool HaCluster::HasWorker(const std::string& name) {
  const nlohmann::json list =
      nlohmann::json::parse(Cli({"workers", "--json", "--connect-timeout", "2"}).out, nullptr, false);
  if (!list.is_array()) return false;
  for (const auto& w : list) {
    if (w.value("name", "") == name && w.value("state", "") != "lost") return true;
  }
  return false;
}

std::string HaCluster::CoordinatorLogs() {
  std::string out;
  for (size_t i = 0; i < coordinators_.size(); ++i) out += ReadFile(dir_ + "/c" + std::to_string(i) + ".log");
  return out;
}

std::string HaCluster::Marker() {
  static std::mt19937_64 rng(std::random_device{}());
  markers_.push_back("cohortmark" + std::to_string(rng() % 1000000000));
  return markers_.back();
}

std::string HaCluster::Query(const std::string& sql) {
  PGconn* conn = PQconnectdb(pg_->ConnInfo(db_).c_str());
  std::string out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

std::optional<LeaderRow> HaCluster::Leader() {
  const std::string row = Query(
      "SELECT holder || ' ' || epoch || ' ' || (expires_unix_ms - CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000"
      " AS BIGINT)) FROM leadership WHERE name = 'leader'");
  if (row.empty()) return std::nullopt;
  LeaderRow l;
  std::istringstream in(row);
  in >> l.holder >> l.epoch >> l.expires_in_ms;
  return l;
}

int HaCluster::WaitForLeader(std::chrono::milliseconds timeout) {
  int index = -1;
  WaitUntil(
      [&] {
        // Answering first, then the row: a lease that ran out but is not yet
        // taken over still names its dead holder.
        if (Cli({"groups", "--connect-timeout", "3"}).exit_code != 0) return false;
        auto l = Leader();
        if (!l || l->expires_in_ms < 0 || l->holder.size() < 2) return false;
        index = std::atoi(l->holder.c_str() + 1);
        return coordinators_.at(index) && kill(coordinators_[index]->pid(), 0) == 0 &&
               coordinators_[index]->Log().find("event=listening") != std::string::npos;
      },
      timeout);
  return index;
}

RunOutput HaCluster::Cli(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  std::string all;
  for (size_t i = 0; i < ports_.size(); ++i) all += (all.empty() ? "" : ",") + client_endpoint(static_cast<int>(i));
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::vector<std::string> flags = {"--coordinator", all};
  argv.insert(argv.begin() + (args.empty() ? 1 : 2), flags.begin(), flags.end());
  return RunProgram(argv, timeout);
}

RunOutput HaCluster::SubmitJson(const nlohmann::json& group, std::vector<std::string> flags) {
  const std::string path = dir_ + "/group" + std::to_string(++files_) + ".json";
  WriteFile(path, group.dump());
  std::vector<std::string> args = {"submit", path};
  args.insert(args.end(), flags.begin(), flags.end());
  return Cli(args);
}

nlohmann::json HaCluster::Status(const std::string& group) {
  RunOutput r = Cli({"status", group, "--json"});
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

std::string HaCluster::AllLogs() {
  // The ends of the logs: what led up to a failure, not every debug line.
  auto tail = [](std::string log) { return log.size() > 20000 ? log.substr(log.size() - 20000) : log; };
  std::string out;
  for (size_t i = 0; i < coordinators_.size(); ++i) {
    if (coordinators_[i]) out += "---- c" + std::to_string(i) + "\n" + tail(coordinators_[i]->Log());
  }
  for (const auto& [name, w] : workers_) out += "---- worker " + name + "\n" + tail(w->Log());
  return out;
}

}  // namespace cohort::testing
