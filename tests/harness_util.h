// What the harnesses that run a real server for tests (tests/pg_server.h,
// tests/prometheus_server.h) share: start a program with its output in a log
// file, wait for an event (a descriptor readable, a process gone) with a
// deadline and no fixed sleep, reap, read the end of a log for an error
// message, and percent-encode a value for a URL.
//
// Thread contract: plain functions. Spawn forks, so in a test with threads
// the child calls only async-signal-safe functions before exec.
#ifndef COHORT_TESTS_HARNESS_UTIL_H_
#define COHORT_TESTS_HARNESS_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace cohort::testing {

using TestClock = std::chrono::steady_clock;

struct SpawnOptions {
  std::string cwd;  // the child's working directory
  std::string log;  // stdout and stderr are appended here
  // Run as uid/gid with no supplementary groups (a server that refuses root).
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // Lead a process group of its own, so kill(-pid) reaches its children;
  // else it stays in the test's group, and a Ctrl-C of the run stops it too.
  bool own_group = false;
  // SIGKILL when the thread that spawned it exits (the test process dying),
  // so a crashed test leaves no server behind.
  bool die_with_parent = false;
};

// fork + exec of argv[0] with stdin from /dev/null and no other descriptor
// of the test's; every signal at its default and none blocked. -1 if fork
// fails; a failed exec shows as exit status 127 (126 for the setup).
pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// A descriptor that becomes readable when `pid` exits (a zombie counts);
// -1 if the process is gone already.
int PidFd(pid_t pid);

// Waits until one of `fds` (those >= 0) is readable or `deadline` passes;
// false at the deadline.
bool WaitReadable(const std::vector<int>& fds, TestClock::time_point deadline);

// Reaps `pid` if it has exited; true then. ECHILD (reaped elsewhere, or
// SIGCHLD ignored) means it is gone as well.
bool Exited(pid_t pid);
// Waits for `pid` to exit and reaps it.
void Reap(pid_t pid);

long FileSize(const std::string& path);
// The last `limit` bytes of what `path` gained past `offset`.
std::string Tail(const std::string& path, long offset, size_t limit = 2000);

// Every byte but RFC 3986's unreserved ones as %XX.
std::string PercentEncode(const std::string& v);

}  // namespace cohort::testing

#endif  // COHORT_TESTS_HARNESS_UTIL_H_
