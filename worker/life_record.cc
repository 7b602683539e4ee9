#include "worker/life_record.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace cohort::worker {
namespace {

using common::Status;

constexpr char kLifeFile[] = "life";
constexpr size_t kTokenBytes = 16;
constexpr size_t kMaxTokenChars = 64;

std::string Errno() { return std::strerror(errno); }

bool IsToken(const std::string& t) {
  if (t.empty() || t.size() > kMaxTokenChars) return false;
  for (char ch : t) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("cannot write " + path + ": " + Errno());
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + dir + ": " + Errno());
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : Status::IoError("cannot sync " + dir + ": " + Errno());
}

}  // namespace

Status LifeRecord::Open(const std::string& dir, LifeRecord* out) {
  if (Status s = common::MakeStateDir(dir, "cohort-worker"); !s.ok()) return s;
  if (Status s = common::StateDirLock::Take(dir, "cohort-worker", &out->lock_); !s.ok()) return s;
  out->dir_ = dir;
  out->previous_.clear();
  const std::string path = dir + "/" + kLifeFile;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError("cannot read " + path + ": " + Errno());
  }
  char buf[kMaxTokenChars + 2] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  // A torn or foreign file names nothing to kill: better to leave a
  // leftover running than to match processes on a guess.
  if (IsToken(text)) out->previous_ = text;
  return Status::Ok();
}

Status LifeRecord::Begin(std::string* token) {
  unsigned char raw[kTokenBytes];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    return Status::IoError("cannot read random bytes for the life token: " + Errno());
  }
  std::string t;
  for (unsigned char b : raw) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    t += hex;
  }
  const std::string path = dir_ + "/" + kLifeFile;
  const std::string tmp = path + ".new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create " + tmp + ": " + Errno());
  Status s = WriteAll(fd, t + "\n", tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Status::IoError("cannot sync " + tmp + ": " + Errno());
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::IoError("cannot rename " + tmp + " to " + path + ": " + Errno());
  }
  if (s.ok()) s = SyncDir(dir_);
  if (!s.ok()) return s;
  *token = t;
  return Status::Ok();
}

}  // namespace cohort::worker
