// What the two daemons' event loops share: a stop flag that a signal handler
// can raise and poll() can watch, the SIGTERM/SIGINT (and SIGHUP) wiring to it, and the
// poll timeout that ends at the nearest deadline (redis ae.c style).
//
// Thread contract: StopSignal::Raise is async-signal-safe; the rest belongs
// to the loop's thread.
#ifndef COHORT_COMMON_DAEMON_H_
#define COHORT_COMMON_DAEMON_H_

#include <string>

#include "common/status.h"
#include "common/time.h"

namespace cohort::common {

// Makes the process non-dumpable: no core files, and no ptrace or
// /proc/PID/mem by other processes of the same uid (such as steps run as
// the daemon's own user), which would otherwise reach its secret key.
void HardenProcess();

class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }  // readable once raised
  void Raise();                   // async-signal-safe
  // Lowers the flag; true if it was raised. For flags raised more than once
  // (SIGHUP's reload).
  bool Consume();

 private:
  int fd_ = -1;
};

// SIGTERM and SIGINT raise `stop`; SIGPIPE is ignored (a vanished peer is an
// error code, not a death). `stop` must outlive the process's signal use.
void RaiseOnTermination(StopSignal* stop);

// SIGHUP raises `reload` (the coordinator rereads its allowlists).
void RaiseOnHangup(StopSignal* reload);

// This host's name, or `fallback` when it has none.
std::string HostName(const std::string& fallback);

// Milliseconds from `now` until `until`, rounded up (waking early would only
// spin once more), 0 if past, at most 60 s.
int PollTimeoutMs(Time now, Time until);

}  // namespace cohort::common

#endif  // COHORT_COMMON_DAEMON_H_
