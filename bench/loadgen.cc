// Coordinator throughput without process spawns.
//
// Starts a real cohort-coordinator as a child process on free loopback ports,
// plays K simulated workers on real ZeroMQ DEALER sockets (one thread, all
// sockets under one zmq::poll), each registering with S slots and answering
// every RUN at once with STARTED and FINISHED (exit code 0), then submits one
// group of N `true` steps from a client DEALER and WAITs for it. Prints one
// line: steps/s from SUBMIT to the WAIT reply; the phases inside it (SUBMIT to
// its reply and to the first RUN, first to last RUN = dispatch, last RUN to the
// WAIT reply = finishing and building the result document);
// the coordinator's peak RSS (VmHWM) and its RSS per step over the idle
// baseline, and the CPU seconds the coordinator and the load generator used
// (to tell which side was the bottleneck). The coordinator is killed at exit.
//
// Usage: loadgen --workers K --slots S --steps N --coordinator-bin PATH
//                [--timeout-s T] [--heartbeat-ms MS]
// --heartbeat-ms (default 60000) is passed to the coordinator and used by the
// simulated workers; a REREGISTER is answered with a new REGISTER, and the
// line's runs= counts every RUN received (> steps when attempts were redone).
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/codec.h"
#include "common/messages.h"
#include "common/transport.h"

namespace {

namespace cc = cohort::common;
using Clock = std::chrono::steady_clock;

volatile pid_t g_child = 0;

// SIGTERM first (so a coordinator run under valgrind or perf writes its
// profile), SIGKILL if it is still there after 10 s.
void KillChild() {
  pid_t pid = g_child;
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 1000; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      g_child = 0;
      return;
    }
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  g_child = 0;
}

void OnSignal(int sig) {
  pid_t pid = g_child;
  if (pid > 0) kill(pid, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

struct Options {
  int workers = 100;
  int slots = 8;
  long steps = 10000;
  std::string coordinator_bin = "build/bin/cohort-coordinator";
  double timeout_s = 900;
  int heartbeat_ms = 60000;
  std::string store = "memory";  // or sqlite, in a temporary state directory
  std::string sync = "normal";
  std::string state_dir;  // made when store is sqlite
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "loadgen: %s\nusage: loadgen --workers K --slots S --steps N --coordinator-bin PATH "
               "[--timeout-s T] [--heartbeat-ms MS] [--store memory|sqlite|postgresql://...] [--sync normal|full]\n",
               msg);
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") Usage("help");
    if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    try {
      if (a == "--workers") o.workers = std::stoi(v);
      else if (a == "--slots") o.slots = std::stoi(v);
      else if (a == "--steps") o.steps = std::stol(v);
      else if (a == "--coordinator-bin") o.coordinator_bin = v;
      else if (a == "--timeout-s") o.timeout_s = std::stod(v);
      else if (a == "--heartbeat-ms") o.heartbeat_ms = std::stoi(v);
      else if (a == "--store") o.store = v;
      else if (a == "--sync") o.sync = v;
      else Usage(("unknown option " + a).c_str());
    } catch (const std::logic_error&) {
      Usage(("bad value for " + a + ": " + v).c_str());
    }
  }
  if (o.workers < 1 || o.slots < 1 || o.steps < 1) Usage("--workers, --slots and --steps must be >= 1");
  return o;
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Free loopback TCP ports: bind all to port 0 at once (so they differ), read
// them, close. The coordinator binds them right after; a lost race shows up
// as the coordinator exiting, which is reported.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind() failed");
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

pid_t StartCoordinator(const Options& o, const std::string& client_ep, const std::string& worker_ep,
                       const std::string& cancel_ep) {
  std::vector<std::string> args = {o.coordinator_bin,
                                   "--client-endpoint", client_ep,
                                   "--worker-endpoint", worker_ep,
                                   "--cancel-endpoint", cancel_ep,
                                   "--heartbeat-ms", std::to_string(o.heartbeat_ms),
                                   "--log-level", "warn",
                                   "--store", o.store};
  if (o.store == "sqlite") {
    for (const char* a : {"--state-dir", o.state_dir.c_str(), "--sync", o.sync.c_str()}) args.push_back(a);
  }
  std::vector<char*> cargs;
  for (auto& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork() failed");
  if (pid == 0) {
    execv(cargs[0], cargs.data());
    std::fprintf(stderr, "loadgen: cannot exec %s: %s\n", cargs[0], std::strerror(errno));
    _exit(127);
  }
  return pid;
}

bool ChildAlive(pid_t pid) {
  int st = 0;
  pid_t r = waitpid(pid, &st, WNOHANG);
  if (r == pid) {
    g_child = 0;
    return false;
  }
  return true;
}

long ProcStatusKiB(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  size_t klen = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, klen, key) == 0) return std::strtol(line.c_str() + klen, nullptr, 10);
  }
  return -1;
}

// utime + stime of a process, in seconds.
double ProcCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t p = s.rfind(')');
  if (p == std::string::npos) return -1;
  std::istringstream rest(s.substr(p + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After "pid (comm) ": state is field 3; utime is 14, stime 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string BuildSpec(long steps) {
  std::string s;
  s.reserve(static_cast<size_t>(steps) * 40 + 64);
  s += "{\"id\":\"loadgen\",\"steps\":[";
  for (long i = 0; i < steps; ++i) {
    if (i) s += ',';
    s += "{\"id\":\"";
    s += std::to_string(i);
    s += "\",\"command\":[\"true\"]}";
  }
  s += "]}";
  return s;
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One measured run: the coordinator child, K simulated workers and a client
// on one poll, moving through the phases register -> submit -> wait -> done.
class LoadRun {
 public:
  explicit LoadRun(const Options& o) : o_(o), ctx_(1), rng_(std::random_device{}()) {}

  int Run() {
    StartAll();
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o_.timeout_s));
    while (phase_ != Phase::kDone) {
      zmq::poll(items_.data(), items_.size(), std::chrono::milliseconds(100));
      const auto now = Clock::now();
      if (now > deadline) throw std::runtime_error("timed out (--timeout-s)");
      KeepAlive(now);
      for (int i = 0; i < o_.workers; ++i) {
        if (items_[i].revents & ZMQ_POLLIN) OnWorker(i);
      }
      if (items_[o_.workers].revents & ZMQ_POLLIN) OnClient();
      if (phase_ == Phase::kRegister && welcomed_ == o_.workers) Submit();
    }
    return Report();
  }

 private:
  enum class Phase { kRegister, kSubmit, kWait, kDone };

  cc::RegisterMsg Register(int i) {
    cc::RegisterMsg r;
    r.name = "sim-" + std::to_string(i);
    r.slots = static_cast<uint32_t>(o_.slots);
    r.version = "loadgen";
    r.instance = instances_[i];
    return r;
  }

  void StartAll() {
    auto ports = FreePorts(3);
    std::string client_ep = "tcp://127.0.0.1:" + std::to_string(ports[0]);
    std::string worker_ep = "tcp://127.0.0.1:" + std::to_string(ports[1]);
    std::string cancel_ep = "tcp://127.0.0.1:" + std::to_string(ports[2]);
    pid_ = StartCoordinator(o_, client_ep, worker_ep, cancel_ep);
    g_child = pid_;
    ctx_.set(zmq::ctxopt::max_sockets, o_.workers + 64);
    workers_.reserve(o_.workers);
    instances_.resize(o_.workers);
    got_welcome_.assign(o_.workers, 0);
    for (int i = 0; i < o_.workers; ++i) {
      auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
      cc::ConfigureSocket(*s);
      if (auto st = cc::ConnectSocket(*s, worker_ep); !st.ok()) throw std::runtime_error(st.ToString());
      workers_.push_back(std::move(s));
    }
    for (int i = 0; i < o_.workers; ++i) {
      instances_[i] = rng_() | 1;
      if (!cc::SendMessage(*workers_[i], std::nullopt, Register(i))) {
        throw std::runtime_error("cannot send REGISTER");
      }
    }
    client_.emplace(ctx_, zmq::socket_type::dealer);
    cc::ConfigureSocket(*client_);
    if (auto st = cc::ConnectSocket(*client_, client_ep); !st.ok()) throw std::runtime_error(st.ToString());
    items_.resize(o_.workers + 1);
    for (int i = 0; i < o_.workers; ++i) items_[i] = {workers_[i]->handle(), 0, ZMQ_POLLIN, 0};
    items_[o_.workers] = {client_->handle(), 0, ZMQ_POLLIN, 0};
    last_alive_check_ = last_heartbeat_ = Clock::now();
  }

  // Like a real worker, each simulated one sends a HEARTBEAT every
  // heartbeat_ms, so a coordinator busy for longer than its liveness window
  // (a huge SUBMIT) finds them queued and does not declare them lost.
  void KeepAlive(Clock::time_point now) {
    if (now - last_alive_check_ > std::chrono::milliseconds(200)) {
      last_alive_check_ = now;
      if (!ChildAlive(pid_)) throw std::runtime_error("the coordinator exited");
    }
    if (now - last_heartbeat_ >= std::chrono::milliseconds(o_.heartbeat_ms)) {
      last_heartbeat_ = now;
      for (auto& s : workers_) cc::SendMessage(*s, std::nullopt, cc::HeartbeatMsg{});
    }
  }

  void OnWorker(int i) {
    zmq::socket_t& s = *workers_[i];
    while (cc::ReceiveEnvelope(s, false, &env_)) {
      if (!cc::DecodeEnvelope(env_, &msg_).ok()) continue;
      if (auto* run = std::get_if<cc::RunMsg>(&msg_)) {
        if (runs_ == 0) t_first_run_ = Clock::now();
        ++runs_;
        if (runs_ == o_.steps) t_last_run_ = Clock::now();
        cc::SendMessage(s, std::nullopt, cc::StartedMsg{run->id});
        cc::FinishedMsg fin;
        fin.id = std::move(run->id);
        fin.exit_code = 0;
        cc::SendMessage(s, std::nullopt, fin);
      } else if (std::holds_alternative<cc::WelcomeMsg>(msg_)) {
        if (!got_welcome_[i]) {
          got_welcome_[i] = 1;
          ++welcomed_;
        }
      } else if (std::holds_alternative<cc::ReregisterMsg>(msg_)) {
        cc::SendMessage(s, std::nullopt, Register(i));
      }
      // HEARTBEAT, CANCEL: nothing to do (steps end at once).
    }
  }

  void OnClient() {
    while (cc::ReceiveEnvelope(*client_, false, &env_)) {
      if (!cc::DecodeEnvelope(env_, &msg_).ok()) continue;
      auto* reply = std::get_if<cc::ReplyMsg>(&msg_);
      if (!reply) continue;
      if (reply->code != cc::Status::Code::kOk) {
        throw std::runtime_error("request " + std::to_string(reply->req) + " failed: " + reply->error);
      }
      if (reply->req == 1 && phase_ == Phase::kSubmit) {
        t_submit_reply_ = Clock::now();
        cc::WaitMsg w;
        w.req = 2;
        w.group = "loadgen";
        cc::SendMessage(*client_, std::nullopt, w);
        phase_ = Phase::kWait;
      } else if (reply->req == 2 && phase_ == Phase::kWait) {
        t_done_ = Clock::now();
        wait_body_ = std::move(reply->body);
        phase_ = Phase::kDone;
      }
    }
  }

  // Every worker is in: note the idle baseline, then submit.
  void Submit() {
    idle_rss_ = ProcStatusKiB(pid_, "VmRSS:");
    coord_cpu0_ = ProcCpuSeconds(pid_);
    self_cpu0_ = SelfCpuSeconds();
    cc::SubmitMsg sub;
    sub.req = 1;
    sub.spec = BuildSpec(o_.steps);
    t_submit_ = Clock::now();
    if (!cc::SendMessage(*client_, std::nullopt, sub)) throw std::runtime_error("cannot send SUBMIT");
    phase_ = Phase::kSubmit;
  }

  int Report() {
    double coord_cpu = ProcCpuSeconds(pid_) - coord_cpu0_;
    double self_cpu = SelfCpuSeconds() - self_cpu0_;
    long hwm = ProcStatusKiB(pid_, "VmHWM:");
    bool completed = wait_body_.find("\"state\":\"completed\"") != std::string::npos ||
                     wait_body_.find("\"state\": \"completed\"") != std::string::npos;
    double total = Seconds(t_submit_, t_done_);
    double per_step_bytes =
        idle_rss_ >= 0 ? static_cast<double>(hwm - idle_rss_) * 1024.0 / static_cast<double>(o_.steps) : -1;
    std::printf(
        "workers=%d slots=%d steps=%ld runs=%ld state=%s total_s=%.3f submit_s=%.3f first_run_s=%.3f "
        "dispatch_s=%.3f result_s=%.3f steps_per_s=%.0f "
        "coord_idle_rss_kib=%ld coord_peak_rss_kib=%ld rss_per_step_b=%.0f coord_cpu_s=%.2f loadgen_cpu_s=%.2f\n",
        o_.workers, o_.slots, o_.steps, runs_, completed ? "completed" : "NOT-COMPLETED", total,
        Seconds(t_submit_, t_submit_reply_), Seconds(t_submit_, t_first_run_), Seconds(t_first_run_, t_last_run_),
        Seconds(t_last_run_, t_done_), static_cast<double>(o_.steps) / total, idle_rss_, hwm, per_step_bytes,
        coord_cpu, self_cpu);
    std::fflush(stdout);
    for (auto& s : workers_) s->close();
    client_->close();
    KillChild();
    return completed ? 0 : 1;
  }

  const Options& o_;
  zmq::context_t ctx_;
  std::mt19937_64 rng_;
  pid_t pid_ = 0;
  std::vector<std::unique_ptr<zmq::socket_t>> workers_;
  std::vector<uint64_t> instances_;
  std::vector<char> got_welcome_;
  std::optional<zmq::socket_t> client_;
  std::vector<zmq::pollitem_t> items_;
  Phase phase_ = Phase::kRegister;
  long welcomed_ = 0;
  long runs_ = 0;
  cc::Envelope env_;
  cc::Message msg_;
  std::string wait_body_;
  long idle_rss_ = -1;
  double coord_cpu0_ = 0, self_cpu0_ = 0;
  Clock::time_point t_submit_{}, t_submit_reply_{}, t_done_{}, t_first_run_{}, t_last_run_{};
  Clock::time_point last_alive_check_{}, last_heartbeat_{};
};

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  RaiseFdLimit();
  std::atexit(KillChild);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  if (o.store == "sqlite") {
    char tmpl[] = "/tmp/cohort-loadgen-XXXXXX";
    if (!::mkdtemp(tmpl)) Usage("cannot make a temporary state directory");
    o.state_dir = tmpl;
  }
  int rc = 1;
  try {
    rc = LoadRun(o).Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    KillChild();
  }
  if (!o.state_dir.empty()) {
    KillChild();
    std::string rm = "rm -rf '" + o.state_dir + "'";
    if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "loadgen: could not remove %s\n", o.state_dir.c_str());
  }
  return rc;
}
