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
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "loadgen: %s\nusage: loadgen --workers K --slots S --steps N --coordinator-bin PATH "
               "[--timeout-s T] [--heartbeat-ms MS]\n",
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
                                   "--log-level", "warn"};
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

int Run(const Options& o) {
  auto ports = FreePorts(3);
  std::string client_ep = "tcp://127.0.0.1:" + std::to_string(ports[0]);
  std::string worker_ep = "tcp://127.0.0.1:" + std::to_string(ports[1]);
  std::string cancel_ep = "tcp://127.0.0.1:" + std::to_string(ports[2]);
  pid_t pid = StartCoordinator(o, client_ep, worker_ep, cancel_ep);
  g_child = pid;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.timeout_s));

  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, o.workers + 64);
  std::vector<std::unique_ptr<zmq::socket_t>> workers;
  workers.reserve(o.workers);
  std::mt19937_64 rng(std::random_device{}());
  for (int i = 0; i < o.workers; ++i) {
    auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    cc::ConfigureSocket(*s);
    auto st = cc::ConnectSocket(*s, worker_ep);
    if (!st.ok()) throw std::runtime_error(st.ToString());
    workers.push_back(std::move(s));
  }
  auto register_msg = [&](int i) {
    cc::RegisterMsg r;
    r.name = "sim-" + std::to_string(i);
    r.slots = static_cast<uint32_t>(o.slots);
    r.version = "loadgen";
    r.instance = rng() | 1;
    return r;
  };
  std::vector<uint64_t> instances(o.workers);
  for (int i = 0; i < o.workers; ++i) {
    auto r = register_msg(i);
    instances[i] = r.instance;
    if (!cc::SendMessage(*workers[i], std::nullopt, r)) throw std::runtime_error("cannot send REGISTER");
  }
  zmq::socket_t client(ctx, zmq::socket_type::dealer);
  cc::ConfigureSocket(client);
  if (auto st = cc::ConnectSocket(client, client_ep); !st.ok()) throw std::runtime_error(st.ToString());

  std::vector<zmq::pollitem_t> items(o.workers + 1);
  for (int i = 0; i < o.workers; ++i) items[i] = {workers[i]->handle(), 0, ZMQ_POLLIN, 0};
  items[o.workers] = {client.handle(), 0, ZMQ_POLLIN, 0};

  long welcomed = 0;
  long runs = 0;
  std::vector<char> got_welcome(o.workers, 0);
  cc::Envelope env;
  cc::Message msg;
  std::string spec;
  Clock::time_point t_submit{}, t_submit_reply{}, t_done{}, t_first_run{}, t_last_run{};
  enum class Phase { kRegister, kSubmit, kWait, kDone } phase = Phase::kRegister;
  long idle_rss = -1;
  double coord_cpu0 = 0, self_cpu0 = 0;
  std::string wait_body;
  auto last_alive_check = Clock::now();
  // Like a real worker, each simulated one sends a HEARTBEAT every
  // heartbeat_ms, so a coordinator busy for longer than its liveness window
  // (a huge SUBMIT) finds them queued and does not declare them lost.
  const auto heartbeat_every = std::chrono::milliseconds(o.heartbeat_ms);
  auto last_heartbeat = Clock::now();

  while (phase != Phase::kDone) {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
    auto now = Clock::now();
    if (now > deadline) throw std::runtime_error("timed out (--timeout-s)");
    if (now - last_alive_check > std::chrono::milliseconds(200)) {
      last_alive_check = now;
      if (!ChildAlive(pid)) throw std::runtime_error("the coordinator exited");
    }
    if (now - last_heartbeat >= heartbeat_every) {
      last_heartbeat = now;
      for (auto& s : workers) cc::SendMessage(*s, std::nullopt, cc::HeartbeatMsg{});
    }
    for (int i = 0; i < o.workers; ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      zmq::socket_t& s = *workers[i];
      while (cc::ReceiveEnvelope(s, false, &env)) {
        if (!cc::DecodeEnvelope(env, &msg).ok()) continue;
        if (auto* run = std::get_if<cc::RunMsg>(&msg)) {
          if (runs == 0) t_first_run = Clock::now();
          ++runs;
          if (runs == o.steps) t_last_run = Clock::now();
          cc::StartedMsg started{run->id};
          cc::SendMessage(s, std::nullopt, started);
          cc::FinishedMsg fin;
          fin.id = std::move(run->id);
          fin.exit_code = 0;
          cc::SendMessage(s, std::nullopt, fin);
        } else if (std::holds_alternative<cc::WelcomeMsg>(msg)) {
          if (!got_welcome[i]) {
            got_welcome[i] = 1;
            ++welcomed;
          }
        } else if (std::holds_alternative<cc::ReregisterMsg>(msg)) {
          auto r = register_msg(i);
          r.instance = instances[i];
          cc::SendMessage(s, std::nullopt, r);
        }
        // HEARTBEAT, CANCEL: nothing to do (steps end at once).
      }
    }
    if (items[o.workers].revents & ZMQ_POLLIN) {
      while (cc::ReceiveEnvelope(client, false, &env)) {
        if (!cc::DecodeEnvelope(env, &msg).ok()) continue;
        auto* reply = std::get_if<cc::ReplyMsg>(&msg);
        if (!reply) continue;
        if (reply->code != cc::Status::Code::kOk) {
          throw std::runtime_error("request " + std::to_string(reply->req) + " failed: " + reply->error);
        }
        if (reply->req == 1 && phase == Phase::kSubmit) {
          t_submit_reply = Clock::now();
          cc::WaitMsg w;
          w.req = 2;
          w.group = "loadgen";
          cc::SendMessage(client, std::nullopt, w);
          phase = Phase::kWait;
        } else if (reply->req == 2 && phase == Phase::kWait) {
          t_done = Clock::now();
          wait_body = std::move(reply->body);
          phase = Phase::kDone;
        }
      }
    }
    if (phase == Phase::kRegister && welcomed == o.workers) {
      // Every worker is in: note the idle baseline, then submit.
      spec = BuildSpec(o.steps);
      idle_rss = ProcStatusKiB(pid, "VmRSS:");
      coord_cpu0 = ProcCpuSeconds(pid);
      self_cpu0 = SelfCpuSeconds();
      cc::SubmitMsg sub;
      sub.req = 1;
      sub.spec = std::move(spec);
      t_submit = Clock::now();
      if (!cc::SendMessage(client, std::nullopt, sub)) throw std::runtime_error("cannot send SUBMIT");
      phase = Phase::kSubmit;
    }
  }

  double coord_cpu = ProcCpuSeconds(pid) - coord_cpu0;
  double self_cpu = SelfCpuSeconds() - self_cpu0;
  long hwm = ProcStatusKiB(pid, "VmHWM:");
  bool completed = wait_body.find("\"state\":\"completed\"") != std::string::npos ||
                   wait_body.find("\"state\": \"completed\"") != std::string::npos;
  double total = Seconds(t_submit, t_done);
  double per_step_bytes = idle_rss >= 0 ? static_cast<double>(hwm - idle_rss) * 1024.0 / static_cast<double>(o.steps)
                                        : -1;
  std::printf(
      "workers=%d slots=%d steps=%ld runs=%ld state=%s total_s=%.3f submit_s=%.3f first_run_s=%.3f dispatch_s=%.3f "
      "result_s=%.3f steps_per_s=%.0f "
      "coord_idle_rss_kib=%ld coord_peak_rss_kib=%ld rss_per_step_b=%.0f coord_cpu_s=%.2f loadgen_cpu_s=%.2f\n",
      o.workers, o.slots, o.steps, runs, completed ? "completed" : "NOT-COMPLETED", total,
      Seconds(t_submit, t_submit_reply), Seconds(t_submit, t_first_run), Seconds(t_first_run, t_last_run),
      Seconds(t_last_run, t_done), static_cast<double>(o.steps) / total, idle_rss, hwm, per_step_bytes,
      coord_cpu, self_cpu);
  std::fflush(stdout);
  for (auto& s : workers) s->close();
  client.close();
  KillChild();
  return completed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  RaiseFdLimit();
  std::atexit(KillChild);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  try {
    return Run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    KillChild();
    return 1;
  }
}
