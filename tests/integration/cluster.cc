#include "tests/integration/cluster.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace cohort::testing {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::vector<char*> CArgs(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int DecodeWait(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::vector<std::string> StepUserFlags() {
  const passwd* pw = ::getpwuid(::geteuid());
  if (pw == nullptr) throw std::runtime_error("no passwd entry for uid " + std::to_string(::geteuid()));
  return {"--run-as", pw->pw_name};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

RunOutput RunProgram(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = -1;
  auto args = CArgs(argv);
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  RunOutput r;
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.err = "cannot spawn " + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  bool killed = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 && !killed) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (poll(fds, 2, left > 0 ? static_cast<int>(left) : 100) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = DecodeWait(status);
  return r;
}

bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);  // the polling interval of a bounded wait
  }
}

std::vector<pid_t> ProcessesWith(const std::string& marker) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::string base = std::string("/proc/") + e->d_name;
    std::string cmdline = ReadFile(base + "/cmdline");
    std::string environ_text = ReadFile(base + "/environ");
    if (cmdline.find(marker) == std::string::npos && environ_text.find(marker) == std::string::npos) continue;
    std::string stat = ReadFile(base + "/stat");
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    out.push_back(pid);
  }
  closedir(d);
  return out;
}

Daemon::Daemon(std::vector<std::string> argv, std::string log_path) : log_path_(std::move(log_path)) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  auto args = CArgs(argv);
  int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

void Daemon::Kill(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Daemon::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return 0;
  int status = 0, code = -1;
  WaitUntil(
      [&] {
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
          reaped_ = true;
          code = DecodeWait(status);
        }
        return reaped_;
      },
      timeout);
  return code;
}

Daemon::~Daemon() {
  if (reaped_) return;
  Kill(SIGTERM);
  if (Wait(10s) < 0 && !reaped_) {
    Kill(SIGKILL);
    Wait(5s);
  }
}

Cluster::Cluster(int heartbeat_ms) : heartbeat_ms_(heartbeat_ms) {
  char tmpl[] = "/tmp/cohort-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  for (int& p : ports_) p = FreePort();
  client_ = "tcp://127.0.0.1:" + std::to_string(ports_[0]);
  worker_ep_ = "tcp://127.0.0.1:" + std::to_string(ports_[1]);
  cancel_ = "tcp://127.0.0.1:" + std::to_string(ports_[2]);
}

Cluster::~Cluster() {
  workers_.clear();
  coordinator_.reset();
  // Steps of a worker that was SIGKILLed outlive it (their worker was the
  // one to kill them): leave nothing of this cluster's steps behind.
  for (const std::string& m : markers_) {
    for (pid_t pid : ProcessesWith(m)) ::kill(pid, SIGKILL);
  }
  if (!std::getenv("COHORT_KEEP_TEST_DIRS")) RunProgram({"/bin/rm", "-rf", dir_}, 30s);
}

std::string Cluster::Marker() {
  static std::mt19937_64 rng(std::random_device{}());
  markers_.push_back("cohortmark" + std::to_string(rng() % 1000000000));
  return markers_.back();
}

void Cluster::StartCoordinator(std::vector<std::string> extra) {
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-coordinator", "--client-endpoint", client_,
                                   "--worker-endpoint", worker_ep_, "--cancel-endpoint", cancel_,
                                   "--heartbeat-ms", std::to_string(heartbeat_ms_), "--log-level", "debug"};
  // Its state in the cluster's directory, so a restart finds it again and
  // no test touches the system's /var/lib/cohort.
  auto given = [&](const char* flag) { return std::find(extra.begin(), extra.end(), flag) != extra.end(); };
  if (!given("--store") && !given("--state-dir")) {
    argv.push_back("--state-dir");
    argv.push_back(dir_ + "/coordinator-state");
  }
  // A lost worker's steps run again after its lease: 10 s, not a minute,
  // keeps tests that kill workers short. It still outlasts the outages the
  // restart tests make (the workers' kill grace here is 2 s).
  if (!given("--worker-lease")) {
    argv.push_back("--worker-lease");
    argv.push_back("10");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  coordinator_ = std::make_unique<Daemon>(argv, dir_ + "/coordinator.log");
  // Ready when it answers.
  bool up = WaitUntil([&] { return Cli({"groups", "--connect-timeout", "1"}).exit_code == 0; }, 20s);
  if (!up) throw std::runtime_error("coordinator did not come up:\n" + coordinator_->Log());
}

Daemon& Cluster::StartWorker(const std::string& name, int slots, std::vector<std::string> extra) {
  Daemon& d = LaunchWorker(name, slots, std::move(extra));
  bool joined = WaitUntil([&] { return HasWorker(name); }, 20s);
  if (!joined) throw std::runtime_error("worker " + name + " did not join:\n" + d.Log());
  return d;
}

Daemon& Cluster::LaunchWorker(const std::string& name, int slots, std::vector<std::string> extra) {
  // A previous worker of this name is stopped first: it holds the state
  // directory the new one takes.
  workers_.erase(name);
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort-worker", "--coordinator", worker_ep_, "--name", name,
                                   "--slots", std::to_string(slots), "--heartbeat-ms", std::to_string(heartbeat_ms_),
                                   "--kill-grace-ms", "2000", "--log-level", "debug"};
  if (std::find(extra.begin(), extra.end(), "--run-as") == extra.end()) {
    for (const std::string& f : StepUserFlags()) argv.push_back(f);
  }
  // One per name, in the cluster's directory: a worker started again under
  // its name finds what its previous life recorded, and no test touches the
  // system's /var/lib/cohort or another test's workers.
  if (std::find(extra.begin(), extra.end(), "--state-dir") == extra.end()) {
    argv.push_back("--state-dir");
    argv.push_back(dir_ + "/worker-" + name + "-state");
  }
  // SIGTERM stops a test's workers at once, as tests that stop a worker
  // mean and as teardown needs; the tests of the drain ask for one.
  if (std::find(extra.begin(), extra.end(), "--drain-timeout") == extra.end()) {
    argv.push_back("--drain-timeout");
    argv.push_back("0");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<Daemon>(argv, dir_ + "/worker-" + name + ".log");
  Daemon& ref = *d;
  workers_[name] = std::move(d);
  return ref;
}

RunOutput Cluster::Cli(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  // The endpoint goes right after the command, before any "-- CMD ARG...".
  std::vector<std::string> argv = {COHORT_BIN_DIR "/cohort"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> flags = {"--coordinator", client_};
  flags.insert(flags.end(), cli_flags_.begin(), cli_flags_.end());
  argv.insert(argv.begin() + (args.empty() ? 1 : 2), flags.begin(), flags.end());
  return RunProgram(argv, timeout);
}

RunOutput Cluster::SubmitJson(const nlohmann::json& group, std::vector<std::string> flags) {
  std::string path = dir_ + "/group" + std::to_string(++files_) + ".json";
  WriteFile(path, group.dump());
  std::vector<std::string> args = {"submit", path};
  args.insert(args.end(), flags.begin(), flags.end());
  return Cli(args);
}

nlohmann::json Cluster::Status(const std::string& group) {
  RunOutput r = Cli({"status", group, "--json"});
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

bool Cluster::HasWorker(const std::string& name) {
  // Lost workers stay listed for a while: only a live one counts.
  for (const auto& w : Workers()) {
    if (w.value("name", "") == name && w.value("state", "") != "lost") return true;
  }
  return false;
}

nlohmann::json Cluster::Workers() {
  RunOutput r = Cli({"workers", "--json", "--connect-timeout", "2"});
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() || !j.is_array() ? nlohmann::json::array() : j;
}

}  // namespace cohort::testing
