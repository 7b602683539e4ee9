#include "tests/integration/pty_process.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace cohort::testing {

PtyProcess::PtyProcess(const std::vector<std::string>& argv) {
  struct winsize size {};
  size.ws_row = 40;
  size.ws_col = 120;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::forkpty(&master_, nullptr, nullptr, &size);
  if (pid_ == 0) {
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  if (master_ >= 0) ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
}

PtyProcess::~PtyProcess() {
  if (pid_ > 0 && !ExitCode()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (master_ >= 0) ::close(master_);
}

void PtyProcess::Type(const std::string& keys) {
  [[maybe_unused]] ssize_t n = ::write(master_, keys.data(), keys.size());
}

const std::string& PtyProcess::Screen() {
  char buf[4096];
  ssize_t n;
  // EIO once the program has ended and everything it wrote was read.
  while (master_ >= 0 && (n = ::read(master_, buf, sizeof buf)) > 0) screen_.append(buf, static_cast<size_t>(n));
  return screen_;
}

std::optional<int> PtyProcess::ExitCode() {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

}  // namespace cohort::testing
