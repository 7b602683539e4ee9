// A real cohort cluster for integration tests: a coordinator and workers as
// separate processes on free loopback ports, and the CLI run as a process.
// Every wait polls a condition up to a deadline; nothing sleeps to "let
// things settle". Each Cluster has its own temp directory for logs and
// scratch files, and kills every daemon it started when destroyed.
#ifndef COHORT_TESTS_INTEGRATION_CLUSTER_H_
#define COHORT_TESTS_INTEGRATION_CLUSTER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/free_port.h"

namespace cohort::testing {

// {"--run-as", the user running the tests}: a worker started as root refuses
// to run steps as root unless told to, and one started as anyone else may
// name itself; so every worker the tests start names the current user.
std::vector<std::string> StepUserFlags();

struct RunOutput {
  int exit_code = -1;  // 128 + signal if killed
  std::string out;
  std::string err;
};

// Runs a program to completion (stdin /dev/null), killing it at `timeout`.
RunOutput RunProgram(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Polls `cond` every few milliseconds until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// PIDs of live (non-zombie) processes whose command line contains `marker`.
std::vector<pid_t> ProcessesWith(const std::string& marker);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

class Daemon {
 public:
  Daemon(std::vector<std::string> argv, std::string log_path);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  void Kill(int sig);
  // Waits for the process to exit; its exit code, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  std::string Log() const { return ReadFile(log_path_); }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

class Cluster {
 public:
  explicit Cluster(int heartbeat_ms = 200);
  ~Cluster();

  void StartCoordinator(std::vector<std::string> extra = {});
  // Starts a worker and waits until the coordinator lists it.
  Daemon& StartWorker(const std::string& name, int slots, std::vector<std::string> extra = {});
  // Starts a worker without waiting for it to join: for a coordinator that
  // is down, or to race its registration against something else. A worker
  // this cluster started under that name is stopped first (SIGTERM): both
  // would take the state directory DIR/worker-NAME-state, unless `extra`
  // gives another --state-dir.
  Daemon& LaunchWorker(const std::string& name, int slots, std::vector<std::string> extra = {});
  // Flags every Cli() call adds after the command, e.g. CURVE keys.
  void SetCliFlags(std::vector<std::string> flags) { cli_flags_ = std::move(flags); }
  // `cohort ARGS... --coordinator <ours>`.
  RunOutput Cli(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Submits a JSON group file written to the temp dir; returns the CLI's output.
  RunOutput SubmitJson(const nlohmann::json& group, std::vector<std::string> flags);
  nlohmann::json Status(const std::string& group);
  nlohmann::json Workers();
  bool HasWorker(const std::string& name);

  const std::string& dir() const { return dir_; }
  const std::string& client_endpoint() const { return client_; }
  int port(int i) const { return ports_[i]; }
  Daemon& coordinator() { return *coordinator_; }
  // The coordinator's log over all its starts.
  std::string CoordinatorLogs() { return coordinator_->Log(); }
  Daemon& worker(const std::string& name) { return *workers_.at(name); }
  void StopWorker(const std::string& name) { workers_.erase(name); }
  // A unique token for marking a test's processes.
  std::string Marker();

 private:
  int heartbeat_ms_;
  std::string dir_;
  std::vector<std::string> markers_;  // every Marker() given out, for cleanup
  int ports_[3] = {0, 0, 0};
  std::string client_, worker_ep_, cancel_;
  std::vector<std::string> cli_flags_;
  std::unique_ptr<Daemon> coordinator_;
  std::map<std::string, std::unique_ptr<Daemon>> workers_;
  int files_ = 0;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_CLUSTER_H_
