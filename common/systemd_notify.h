// The daemons' side of systemd's notify protocol (sd_notify(3)): datagrams of
// `KEY=VALUE` lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET.
// READY=1 once a daemon is bound and its state loaded (the units are
// Type=notify, so `systemctl start` returns only then and dependants start
// after it), STATUS= with a one-line summary for `systemctl status`,
// RELOADING=1 around SIGHUP's reread, STOPPING=1 when a stop begins, and
// WATCHDOG=1 from the event loop itself, so a loop that hangs stops the pings
// and systemd restarts the daemon (WatchdogSec= in the units).
//
// The protocol is spoken directly instead of through libsystemd: it is one
// sendto(2) of a short text, and the daemons then need no library that the
// hosts without systemd would have to carry.
//
// Without $NOTIFY_SOCKET (not started by systemd, or a unit of another type)
// every call does nothing. FromEnvironment() removes the variables from the
// environment, so the steps a worker starts never inherit a channel to
// systemd that speaks for the worker.
//
// Thread contract: one owner thread (the event loop); not copyable.
#ifndef COHORT_COMMON_SYSTEMD_NOTIFY_H_
#define COHORT_COMMON_SYSTEMD_NOTIFY_H_

#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"

namespace cohort::common {

class SystemdNotifier {
 public:
  // Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
  static SystemdNotifier FromEnvironment();
  SystemdNotifier() = default;  // one that sends nothing
  ~SystemdNotifier();
  SystemdNotifier(SystemdNotifier&& other) noexcept;
  SystemdNotifier& operator=(SystemdNotifier&& other) noexcept;
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return !path_.empty(); }

  // READY=1 with a STATUS= line. Again after a RELOADING=1.
  void Ready(std::string_view status);
  // STATUS=, only when it differs from the last one sent.
  void Status(std::string_view status);
  void Reloading();
  void Stopping(std::string_view status);

  // Sends WATCHDOG=1 when half the watchdog interval has passed since the
  // last one. Call it once per loop turn.
  void Watchdog(Time now);
  // When the loop must wake to call Watchdog; none without a watchdog.
  std::optional<Time> NextWatchdog() const;
  // Before work that cannot ping (a long state load): the watchdog waits up
  // to `allow` (WATCHDOG_USEC=), until EndLongWork restores the unit's.
  void BeginLongWork(Duration allow);
  void EndLongWork(Time now);

 private:
  // False when the datagram could not be sent.
  bool Send(const std::string& text);

  int fd_ = -1;
  std::string path_;  // the socket's address; a leading '\0' for an abstract one
  Duration watchdog_every_{};
  std::optional<Time> next_watchdog_;
  std::string last_status_;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_SYSTEMD_NOTIFY_H_
