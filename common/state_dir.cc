#include "common/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace cohort::common {
namespace {

constexpr char kLockName[] = "lock";

std::string Errno(int err) { return std::strerror(err); }

// The pid a lock holder wrote, or "" when it wrote none.
std::string HolderPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string pid;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
  return pid;
}

}  // namespace

std::string DefaultStateDir(const std::string& leaf) {
  if (const char* d = std::getenv("STATE_DIRECTORY"); d && *d) {
    std::string first(d);
    return first.substr(0, first.find(':'));  // systemd lists several with ':'
  }
  if (::geteuid() == 0) return "/var/lib/" + leaf;
  std::string base;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x == '/') {
    base = x;
  } else if (const char* h = std::getenv("HOME"); h && *h == '/') {
    base = std::string(h) + "/.local/state";
  } else {
    return "";
  }
  for (size_t at = 1; at <= base.size(); ++at) {
    if (at == base.size() || base[at] == '/') ::mkdir(base.substr(0, at).c_str(), 0700);
  }
  return base + "/" + leaf;
}

Status MakeStateDir(const std::string& dir, const std::string& program) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FailedPrecondition("cannot create the state directory " + dir + ": " + Errno(errno) +
                                      "; create it, writable by " + program + ", or choose another --state-dir");
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return Status::FailedPrecondition("cannot use the state directory " + dir + ": " + Errno(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("the state directory " + dir +
                                      " is not a directory; choose another --state-dir");
  }
  return Status::Ok();
}

Status CheckStateDir(const std::string& dir, const std::string& program) {
  if (dir.empty() || dir[0] != '/') {
    return Status::FailedPrecondition("the state directory \"" + dir + "\" is not an absolute path");
  }
  // The nearest directory that exists must let this process create (or,
  // being the state directory itself, use) what lies below it.
  std::string at = dir;
  while (true) {
    struct stat st;
    if (::stat(at.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return Status::FailedPrecondition((at == dir ? "the state directory " : "the state directory's parent ") +
                                          at + " is not a directory; choose another --state-dir");
      }
      if (::access(at.c_str(), W_OK | X_OK) != 0) {
        return Status::FailedPrecondition(
            (at == dir ? "the state directory " + dir : "cannot create the state directory " + dir + ": " + at) +
            " is not writable by " + program + " (" + Errno(errno) + "); make it so, or choose another --state-dir");
      }
      break;
    }
    if (errno != ENOENT) {
      return Status::FailedPrecondition("cannot use the state directory " + dir + ": " + at + ": " + Errno(errno));
    }
    const size_t slash = at.find_last_of('/');
    at = slash == 0 ? "/" : at.substr(0, slash);
  }
  const std::string lock = dir + "/" + kLockName;
  if (::access(lock.c_str(), F_OK) == 0 && ::access(lock.c_str(), R_OK | W_OK) != 0) {
    return Status::FailedPrecondition("cannot open " + lock + ": " + Errno(errno) + "; it must be writable by " +
                                      program);
  }
  return Status::Ok();
}

StateDirLock::~StateDirLock() { Release(); }

StateDirLock& StateDirLock::operator=(StateDirLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void StateDirLock::Release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status StateDirLock::Take(const std::string& dir, const std::string& program, StateDirLock* out) {
  const std::string path = dir + "/" + kLockName;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::FailedPrecondition("cannot open " + path + ": " + Errno(errno) + "; the state directory " +
                                      dir + " must be writable by " + program);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = HolderPid(fd);
    ::close(fd);
    if (err != EWOULDBLOCK) return Status::IoError("cannot lock " + path + ": " + Errno(err));
    return Status::FailedPrecondition(path + " is locked by another " + program +
                                      (pid.empty() ? "" : " (pid " + pid + ")") +
                                      ": stop it first, or start this one with another --state-dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  // The pid is only a courtesy to the next process: failing to write it
  // (a full disk) does not stop us.
  if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // Nothing to do.
  }
  out->Release();
  out->fd_ = fd;
  return Status::Ok();
}

}  // namespace cohort::common
