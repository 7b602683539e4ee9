#include "worker/result_spill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "common/codec.h"
#include "common/protocol.h"

namespace cohort::worker {
namespace {

using common::Status;

std::string Errno() { return std::strerror(errno); }

}  // namespace

Status ResultSpill::Open(const std::string& dir, size_t* discarded, ResultSpill* out) {
  *discarded = 0;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create " + dir + " for unconfirmed results: " + Errno());
  }
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::IoError("cannot read " + dir + ": " + Errno());
  Status s = Status::Ok();
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    if (::unlink(path.c_str()) != 0) {
      s = Status::IoError("cannot delete " + path + " (a result an earlier life kept): " + Errno());
      break;
    }
    ++*discarded;
  }
  ::closedir(d);
  if (!s.ok()) return s;
  out->dir_ = dir;
  return Status::Ok();
}

Status ResultSpill::Write(uint64_t seq, const common::Message& msg) const {
  std::string body;
  common::EncodeBody(msg, &body);
  const std::string path = PathOf(seq);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create " + path + ": " + Errno());
  size_t done = 0;
  Status s = Status::Ok();
  while (done < body.size()) {
    ssize_t n = ::write(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = Status::IoError("cannot write " + path + ": " + Errno());
      break;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

Status ResultSpill::Read(uint64_t seq, common::Message* out) const {
  const std::string path = PathOf(seq);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + Errno());
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < 0 || static_cast<uint64_t>(st.st_size) > common::kMaxMessageBytes) {
    ::close(fd);
    return Status::Corruption(path + " is not a kept result (its size is wrong)");
  }
  std::string body(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  Status s = Status::Ok();
  while (done < body.size()) {
    ssize_t n = ::read(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      s = Status::IoError("cannot read " + path + ": " + (n < 0 ? Errno() : "it shrank"));
      break;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (!s.ok()) return s;
  common::Message msg;
  if (Status d = common::Decode({std::string_view(common::kProtocol), "FINISHED", body}, &msg); !d.ok()) {
    return Status::Corruption(path + " is not a kept result: " + d.message());
  }
  if (!std::holds_alternative<common::FinishedMsg>(msg)) {
    return Status::Corruption(path + " is not a kept result");
  }
  *out = std::move(msg);
  return Status::Ok();
}

void ResultSpill::Remove(uint64_t seq) const { ::unlink(PathOf(seq).c_str()); }

}  // namespace cohort::worker
