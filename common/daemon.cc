#include "common/daemon.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace cohort::common {
namespace {

std::atomic<StopSignal*> g_stop{nullptr};
std::atomic<StopSignal*> g_reload{nullptr};

void OnTerminate(int) {
  if (StopSignal* s = g_stop.load()) s->Raise();
}

void OnHangup(int) {
  if (StopSignal* s = g_reload.load()) s->Raise();
}

}  // namespace

StopSignal::StopSignal() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

StopSignal::~StopSignal() {
  StopSignal* self = this;
  g_stop.compare_exchange_strong(self, nullptr);
  self = this;
  g_reload.compare_exchange_strong(self, nullptr);
  if (fd_ >= 0) ::close(fd_);
}

void StopSignal::Raise() {
  uint64_t one = 1;
  ssize_t ignored = ::write(fd_, &one, sizeof one);
  (void)ignored;
}

bool StopSignal::Consume() {
  uint64_t count = 0;
  return ::read(fd_, &count, sizeof count) == static_cast<ssize_t>(sizeof count) && count > 0;
}

void RaiseOnHangup(StopSignal* reload) {
  g_reload.store(reload);
  struct sigaction sa {};
  sa.sa_handler = OnHangup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

void RaiseOnTermination(StopSignal* stop) {
  g_stop.store(stop);
  struct sigaction sa {};
  sa.sa_handler = OnTerminate;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

std::string HostName(const std::string& fallback) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return fallback;
  return host;
}

int PollTimeoutMs(Time now, Time until) {
  if (until <= now) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now + std::chrono::microseconds(999));
  return static_cast<int>(std::min<int64_t>(ms.count(), 60'000));
}

void HardenProcess() { ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

}  // namespace cohort::common
