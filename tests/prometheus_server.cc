#include "tests/prometheus_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "common/unique_fd.h"

namespace cohort::testing {

namespace {

using common::Status;
using common::UniqueFd;
using namespace std::chrono_literals;

constexpr auto kStartDeadline = 30s;
constexpr auto kStopDeadline = 10s;
constexpr const char* kListening = "msg=\"Listening on\" address=";
constexpr const char* kReady = "Server is ready to receive web requests.";

std::string TempBase() {
  const char* env = std::getenv("TMPDIR");
  std::string base = env != nullptr ? env : "";
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::error_code ec;
  if (base.empty() || base[0] != '/' || !std::filesystem::is_directory(base, ec)) return "/tmp";
  return base;
}

std::string Millis(std::chrono::milliseconds ms) { return std::to_string(std::max<long long>(ms.count(), 1)) + "ms"; }

// Sends `request` and reads the answer until the server closes.
Status Exchange(int port, const std::string& request, TestClock::time_point deadline, std::string* response) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // Bounds a connect to a listener whose backlog is full, and the send.
  const timeval bound{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    return Status::Unavailable("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  }
  // A few hundred bytes: a new socket's buffer takes them at once.
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return Status::Unavailable(std::string("send: ") + std::strerror(errno));
  }
  char buf[65536];
  while (true) {
    if (!WaitReadable({fd.get()}, deadline)) return Status::Unavailable("no answer before the deadline");
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      response->append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return Status::Ok();
    } else if (errno != EAGAIN && errno != EINTR) {
      return Status::Unavailable(std::string("recv: ") + std::strerror(errno));
    }
  }
}

}  // namespace

Status PrometheusServer::HttpGet(int port, const std::string& path, TestClock::time_point deadline, int* status,
                                 std::string* body) {
  // HTTP/1.0: the answer has a length or ends with the connection, never chunks.
  std::string response;
  Status s = Exchange(port, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", deadline, &response);
  if (!s.ok()) return s;
  const size_t head_end = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || response.size() < 12 || head_end == std::string::npos) {
    return Status::Corruption("not an HTTP answer: " + response.substr(0, 200));
  }
  *status = std::atoi(response.c_str() + 9);
  *body = response.substr(head_end + 4);
  return Status::Ok();
}

Status PrometheusServer::Start(const Options& options, std::unique_ptr<PrometheusServer>* out) {
  if (::access(options.binary.c_str(), X_OK) != 0) {
    return Status::Unavailable(options.binary + " is not installed (scripts/install-deps installs prometheus)");
  }
  std::unique_ptr<PrometheusServer> p(new PrometheusServer());
  p->owner_ = ::getpid();
  std::string tmpl = TempBase() + "/cohort-prometheus-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Status::IoError("mkdtemp " + tmpl + ": " + std::strerror(errno));
  p->dir_ = tmpl;
  p->log_ = p->dir_ + "/prometheus.log";
  if (Status s = p->WriteConfig(options); !s.ok()) return s;
  // The log says which port the system picked and when the server is
  // ready; each line written to it wakes the wait, as does an exit.
  UniqueFd changes(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!changes.valid() || ::inotify_add_watch(changes.get(), p->dir_.c_str(), IN_MODIFY | IN_CLOSE_WRITE) < 0) {
    return Status::IoError(std::string("inotify: ") + std::strerror(errno));
  }
  // Port 0: no free port to find first and lose to someone else.
  const std::vector<std::string> argv = {options.binary, "--config.file=" + p->dir_ + "/prometheus.yml",
                                         "--storage.tsdb.path=" + p->dir_ + "/data",
                                         "--web.listen-address=127.0.0.1:0", "--log.level=info"};
  p->pid_ = Spawn(argv, SpawnOptions{.cwd = p->dir_, .log = p->log_, .own_group = true, .die_with_parent = true});
  if (p->pid_ < 0) {
    p->pid_ = -1;
    return Status::IoError(std::string("fork: ") + std::strerror(errno));
  }
  UniqueFd exited(PidFd(p->pid_));
  const auto deadline = TestClock::now() + kStartDeadline;
  while (!p->ReadLog()) {
    if (Exited(p->pid_)) {
      p->pid_ = -1;
      return Status::Unavailable("prometheus exited at start: " + Tail(p->log_, 0));
    }
    if (!WaitReadable({changes.get(), exited.get()}, deadline)) {
      return Status::Unavailable("prometheus did not say it was ready within 30 s: " + Tail(p->log_, 0));
    }
    char events[4096];
    while (::read(changes.get(), events, sizeof events) > 0) {
    }
  }
  if (Status s = p->AwaitReady(deadline); !s.ok()) return s;
  *out = std::move(p);
  return Status::Ok();
}

Status PrometheusServer::WriteConfig(const Options& options) {
  // YAML reads JSON: the targets are written as JSON strings.
  const std::string interval = Millis(options.scrape_interval);
  std::ofstream config(dir_ + "/prometheus.yml");
  config << "global:\n  scrape_interval: " << interval << "\n  scrape_timeout: " << interval
         << "\n  evaluation_interval: " << interval << "\nscrape_configs:\n  - job_name: cohort\n"
         << "    static_configs:\n      - targets: " << nlohmann::json(options.targets).dump() << "\n";
  config.close();
  if (!config) return Status::IoError("cannot write " + dir_ + "/prometheus.yml");
  return Status::Ok();
}

bool PrometheusServer::ReadLog() {
  std::ifstream in(log_);
  std::string line;
  while (std::getline(in, line)) {
    if (const size_t at = line.find(kListening); at != std::string::npos && port_ == 0) {
      const std::string address = line.substr(at + std::strlen(kListening));
      const size_t colon = address.rfind(':');
      if (colon != std::string::npos) port_ = std::atoi(address.c_str() + colon + 1);
    }
    if (line.find(kReady) != std::string::npos) said_ready_ = true;
  }
  return port_ > 0 && said_ready_;
}

Status PrometheusServer::AwaitReady(TestClock::time_point deadline) {
  // The log's line comes right after the flag /-/ready reads, so one GET
  // should do; the backoff is for a server slower than its word.
  UniqueFd exited(PidFd(pid_));
  auto backoff = 5ms;
  std::string last;
  while (true) {
    int status = 0;
    std::string body;
    const Status s = HttpGet(port_, "/-/ready", deadline, &status, &body);
    if (s.ok() && status == 200) return Status::Ok();
    last = s.ok() ? std::to_string(status) + " " + body : s.ToString();
    if (WaitReadable({exited.get()}, std::min(deadline, TestClock::now() + backoff))) {
      Reap(std::exchange(pid_, -1));
      return Status::Unavailable("prometheus exited before it was ready: " + Tail(log_, 0));
    }
    if (TestClock::now() >= deadline) return Status::Unavailable("prometheus /-/ready said " + last);
    backoff = std::min(backoff * 2, 100ms);
  }
}

Status PrometheusServer::Query(const std::string& promql, nlohmann::json* data) {
  int status = 0;
  std::string body;
  if (Status s = HttpGet(port_, "/api/v1/query?query=" + PercentEncode(promql), TestClock::now() + 10s, &status,
                         &body);
      !s.ok()) {
    return s;
  }
  const nlohmann::json answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded() || !answer.is_object()) {
    return Status::Corruption("query " + promql + ": HTTP " + std::to_string(status) + ", not JSON: " + body);
  }
  if (answer.value("status", "") != "success" || !answer.contains("data")) {
    return Status::InvalidArgument("query " + promql + ": " + answer.value("errorType", "") + ": " +
                                   answer.value("error", body));
  }
  *data = answer["data"];
  return Status::Ok();
}

std::optional<double> PrometheusServer::SingleValue(const nlohmann::json& data) {
  if (!data.is_object() || !data.contains("result")) return std::nullopt;
  const nlohmann::json& result = data["result"];
  const std::string type = data.value("resultType", "");
  const nlohmann::json* value = nullptr;
  if (type == "scalar") {
    value = &result;
  } else if (type == "vector" && result.is_array() && result.size() == 1 && result[0].is_object() &&
             result[0].contains("value")) {
    value = &result[0]["value"];
  }
  // [unix time, "value as text"]
  if (value == nullptr || !value->is_array() || value->size() != 2 || !(*value)[1].is_string()) return std::nullopt;
  const std::string text = (*value)[1].get<std::string>();
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0') return std::nullopt;
  return v;
}

Status PrometheusServer::WaitForValue(const std::string& promql,
                                      const std::function<bool(const nlohmann::json&)>& holds,
                                      TestClock::time_point deadline, nlohmann::json* data) {
  UniqueFd exited(PidFd(pid_));
  auto backoff = 20ms;
  std::string last;
  while (true) {
    nlohmann::json got;
    const Status s = Query(promql, &got);
    if (s.ok() && holds(got)) {
      if (data != nullptr) *data = std::move(got);
      return Status::Ok();
    }
    if (s.code() == Status::Code::kInvalidArgument) return s;  // a bad query never gets better
    last = s.ok() ? got.dump() : s.ToString();
    // Woken early only if the server dies.
    if (WaitReadable({exited.get()}, std::min(deadline, TestClock::now() + backoff))) {
      Reap(std::exchange(pid_, -1));
      return Status::Unavailable("prometheus died: " + Tail(log_, 0));
    }
    if (TestClock::now() >= deadline) {
      return Status::Unavailable("query " + promql + " did not hold by the deadline; last answer " + last +
                                 "; targets: " + TargetHealth());
    }
    backoff = std::min(backoff * 2, 200ms);
  }
}

std::string PrometheusServer::TargetHealth() {
  int status = 0;
  std::string body;
  if (!HttpGet(port_, "/api/v1/targets", TestClock::now() + 5s, &status, &body).ok()) return "(no answer)";
  const nlohmann::json answer = nlohmann::json::parse(body, nullptr, false);
  if (answer.is_discarded() || !answer.contains("data") || !answer["data"].contains("activeTargets")) return body;
  std::string out;
  for (const nlohmann::json& t : answer["data"]["activeTargets"]) {
    if (!t.is_object()) continue;
    out += t.value("scrapeUrl", "?") + " " + t.value("health", "?") + " " + t.value("lastError", "") + "; ";
  }
  return out.empty() ? "none" : out;
}

void PrometheusServer::Kill() {
  if (pid_ <= 0) return;
  UniqueFd exited(PidFd(pid_));
  ::kill(-pid_, SIGTERM);
  WaitReadable({exited.get()}, TestClock::now() + kStopDeadline);
  // Unreaped, the server keeps its pid and so its group's id from reuse:
  // this reaches only what is left of its own group (all of it, if it
  // ignored the SIGTERM).
  ::kill(-pid_, SIGKILL);
  Reap(pid_);
  pid_ = -1;
}

PrometheusServer::~PrometheusServer() {
  // A forked child of the test that exits through exit() runs this too, and
  // the server and directory are its parent's.
  if (::getpid() != owner_) return;
  Kill();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // a leftover directory is harmless
  }
}

}  // namespace cohort::testing
