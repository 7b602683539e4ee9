#include "cli/interrupt.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>

namespace cohort::cli {
namespace {

std::atomic<int> write_fd{-1};

void OnInterrupt(int) {
  const int saved = errno;
  const int fd = write_fd.load();
  if (fd >= 0) {
    const char byte = 1;
    // A full pipe already holds more Ctrl-Cs than anyone reads.
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved;
}

}  // namespace

InterruptPipe::InterruptPipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
  read_fd_ = fds[0];
  write_fd.store(fds[1]);
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  installed_ = ::sigaction(SIGINT, &action, &previous_) == 0;
}

InterruptPipe::~InterruptPipe() {
  if (installed_) ::sigaction(SIGINT, &previous_, nullptr);
  const int fd = write_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
  if (read_fd_ >= 0) ::close(read_fd_);
}

int InterruptPipe::Take() {
  if (read_fd_ < 0) return 0;
  int count = 0;
  char buf[64];
  ssize_t n;
  while ((n = ::read(read_fd_, buf, sizeof buf)) > 0) count += static_cast<int>(n);
  return count;
}

}  // namespace cohort::cli
