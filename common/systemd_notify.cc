#include "common/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/clock.h"
#include "common/log.h"

namespace cohort::common {

SystemdNotifier SystemdNotifier::FromEnvironment() {
  SystemdNotifier n;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  std::string path = socket ? socket : "";
  // The watchdog is ours unless systemd named another process for it.
  const bool watchdog_ours = !pid || std::strtoll(pid, nullptr, 10) == ::getpid();
  const long long us = usec ? std::strtoll(usec, nullptr, 10) : 0;
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  sockaddr_un addr{};
  // Only absolute paths and abstract names ('@') are valid addresses; a
  // path needs room for its terminating NUL, an abstract name does not.
  if (path.empty() || (path[0] != '/' && path[0] != '@') ||
      path.size() > sizeof addr.sun_path - (path[0] == '/' ? 1 : 0)) {
    return n;
  }
  if (path[0] == '@') path[0] = '\0';
  n.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (n.fd_ < 0) {
    LogWarn("notify_failed").Kv("error", std::strerror(errno));
    return n;
  }
  n.path_ = std::move(path);
  if (us > 0 && watchdog_ours) n.watchdog_every_ = std::chrono::microseconds(us / 2);
  return n;
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

SystemdNotifier::SystemdNotifier(SystemdNotifier&& other) noexcept { *this = std::move(other); }

SystemdNotifier& SystemdNotifier::operator=(SystemdNotifier&& other) noexcept {
  if (this == &other) return *this;
  if (fd_ >= 0) ::close(fd_);
  fd_ = std::exchange(other.fd_, -1);
  path_ = std::move(other.path_);
  other.path_.clear();
  watchdog_every_ = other.watchdog_every_;
  next_watchdog_ = other.next_watchdog_;
  last_status_ = std::move(other.last_status_);
  return *this;
}

namespace {

// A STATUS= value is one line: a newline would start another assignment.
std::string OneLine(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace

bool SystemdNotifier::Send(const std::string& text) {
  if (fd_ < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
  // Non-blocking: a stuck service manager must not stall the loop. A lost
  // STATUS is redrawn at the next change; a lost WATCHDOG at the next turn.
  if (::sendto(fd_, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr),
               len) < 0) {
    static RateLimiter limiter{1, std::chrono::seconds(60)};
    uint64_t suppressed = 0;
    if (limiter.Allow(Clock::now(), &suppressed)) {
      LogWarn("notify_failed").Kv("error", std::strerror(errno)).Kv("suppressed", suppressed);
    }
    return false;
  }
  return true;
}

void SystemdNotifier::Ready(std::string_view status) {
  const std::string line = OneLine(status);
  last_status_ = Send("READY=1\nSTATUS=" + line) ? line : "";
}

void SystemdNotifier::Status(std::string_view status) {
  if (!enabled()) return;
  std::string line = OneLine(status);
  // Remembered only once sent: a datagram dropped while systemd was busy is
  // sent again at the next call.
  if (line == last_status_ || !Send("STATUS=" + line)) return;
  last_status_ = std::move(line);
}

void SystemdNotifier::Reloading() {
  // MONOTONIC_USEC lets systemd tell this reload from an earlier one.
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now().time_since_epoch()).count();
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(us));
}

void SystemdNotifier::Stopping(std::string_view status) {
  const std::string line = OneLine(status);
  last_status_ = Send("STOPPING=1\nSTATUS=" + line) ? line : "";
}

void SystemdNotifier::BeginLongWork(Duration allow) {
  if (watchdog_every_ <= Duration::zero()) return;
  Send("WATCHDOG=1\nWATCHDOG_USEC=" +
       std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(allow).count()));
}

void SystemdNotifier::EndLongWork(Time now) {
  if (watchdog_every_ <= Duration::zero()) return;
  Send("WATCHDOG=1\nWATCHDOG_USEC=" +
       std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(watchdog_every_ * 2).count()));
  next_watchdog_ = now + watchdog_every_;
}

void SystemdNotifier::Watchdog(Time now) {
  if (watchdog_every_ <= Duration::zero()) return;
  if (next_watchdog_ && now < *next_watchdog_) return;
  Send("WATCHDOG=1");
  next_watchdog_ = now + watchdog_every_;
}

std::optional<Time> SystemdNotifier::NextWatchdog() const {
  if (watchdog_every_ <= Duration::zero()) return std::nullopt;
  return next_watchdog_ ? *next_watchdog_ : Time{};
}

}  // namespace cohort::common
