#include "worker/client_users.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/curve_keys.h"

namespace cohort::worker {

using common::Status;

namespace {

constexpr char kDefaultClient[] = "*";
constexpr size_t kMaxFileBytes = 1 << 20;

std::vector<std::string> Fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string field; in >> field;) out.push_back(field);
  return out;
}

}  // namespace

Status ClientUsers::Load(const std::string& file, ClientUsers* out) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("--client-users: cannot open " + file + ": " + std::strerror(errno));
  struct stat st {};
  Status s;
  std::string text;
  if (::fstat(fd, &st) != 0) {
    s = Status::IoError("--client-users: cannot stat " + file + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = Status::InvalidArgument("--client-users: " + file + " is not a regular file");
  } else if (Status t = common::CheckTrusted(st, "--client-users file", file, false); !t.ok()) {
    s = t;
  } else {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() <= kMaxFileBytes) text.append(buf, static_cast<size_t>(n));
    if (n < 0) s = Status::IoError("--client-users: cannot read " + file + ": " + std::strerror(errno));
    if (text.size() > kMaxFileBytes) s = Status::InvalidArgument("--client-users: " + file + " is larger than 1 MiB");
  }
  ::close(fd);
  if (!s.ok()) return s;
  return Parse(text, file, out);
}

Status ClientUsers::Parse(const std::string& text, const std::string& file, ClientUsers* out) {
  ClientUsers parsed;
  parsed.file_ = file;
  std::map<std::string, int> line_of;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = "--client-users: " + file + ":" + std::to_string(line_no) + ": ";
    std::vector<std::string> fields = Fields(line);
    if (fields.empty() || fields[0][0] == '#') continue;
    if (fields.size() != 2) {
      return Status::InvalidArgument(where + "expected `CLIENT-NAME USER` (or `* USER`), got " +
                                     std::to_string(fields.size()) + " fields");
    }
    const std::string& client = fields[0];
    if (auto it = line_of.find(client); it != line_of.end()) {
      return Status::InvalidArgument(where + "client \"" + client + "\" is mapped already on line " +
                                     std::to_string(it->second));
    }
    RunAsUser user;
    if (!LookUpUser(fields[1], &user).ok()) {
      return Status::NotFound(where + "no user \"" + fields[1] + "\" on this host");
    }
    if (user.credentials.uid == 0) {
      return Status::InvalidArgument(where + "client \"" + client + "\" would run steps as root (uid 0); map it to "
                                     "an unprivileged user");
    }
    line_of[client] = line_no;
    if (client == kDefaultClient) {
      parsed.default_ = std::move(user);
    } else {
      parsed.by_client_[client] = std::move(user);
    }
  }
  *out = std::move(parsed);
  return Status::Ok();
}

Status ClientUsers::Resolve(const std::string& client, const RunAsUser** user) const {
  *user = nullptr;
  if (client.empty()) return Status::Ok();
  if (auto it = by_client_.find(client); it != by_client_.end()) {
    *user = &it->second;
  } else if (default_) {
    *user = &*default_;
  } else {
    return Status::FailedPrecondition("client \"" + client + "\" is not mapped to a user on this worker (--client-users " +
                                      file_ + ")");
  }
  return Status::Ok();
}

}  // namespace cohort::worker
