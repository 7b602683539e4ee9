#include "tests/harness_util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

namespace cohort::testing {

namespace {

void CloseFrom(int low) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, low, ~0U, 0) == 0) return;
#endif
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = low; fd < max; ++fd) ::close(fd);
}

}  // namespace

pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Only async-signal-safe calls from here: the test may have threads.
  const int in = ::open("/dev/null", O_RDONLY);
  const int out = ::open(options.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
  // The test's sockets and pipes would otherwise live as long as the server:
  // a listening port stays taken, a pipe's reader never sees EOF.
  CloseFrom(3);
  // A blocked mask and ignored signals survive exec; a server that never
  // sees SIGINT or SIGTERM would make every stop a SIGKILL at the deadline.
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  if (options.own_group && ::setpgid(0, 0) != 0) ::_exit(126);
  if (options.drop && (::setgroups(0, nullptr) != 0 || ::setgid(options.gid) != 0 || ::setuid(options.uid) != 0)) {
    ::_exit(126);
  }
  // After the change of user, which clears the parent-death signal; and the
  // parent may have died before the prctl took effect.
  if (options.die_with_parent && (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)) ::_exit(126);
  // The test's own directory (say /root/...) may be closed to that user.
  if (::chdir(options.cwd.c_str()) != 0) ::_exit(126);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int PidFd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool WaitReadable(const std::vector<int>& fds, TestClock::time_point deadline) {
  std::vector<pollfd> items;
  for (int fd : fds) {
    if (fd >= 0) items.push_back({fd, POLLIN, 0});
  }
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TestClock::now()).count();
    if (left <= 0) return false;
    const int n = ::poll(items.data(), items.size(), static_cast<int>(std::min<long long>(left, 60000)) + 1);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool Exited(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno != EINTR);
}

void Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

long FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : 0;
}

std::string Tail(const std::string& path, long offset, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no " + path + ")";
  in.seekg(std::max(offset, FileSize(path) - static_cast<long>(limit)));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string PercentEncode(const std::string& v) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace cohort::testing
