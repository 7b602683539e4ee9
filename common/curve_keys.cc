#include "common/curve_keys.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace cohort::common {
namespace {

constexpr size_t kMaxKeyFileBytes = 64 * 1024;
constexpr std::string_view kSecretSuffix = "_secret";
constexpr std::string_view kKeySuffix = ".key";

std::string Errno(int error) { return std::strerror(error); }

// Reads a whole (small) file from an open descriptor.
Status ReadFd(int fd, const std::string& path, std::string* out) {
  out->clear();
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("cannot read " + path + ": " + Errno(errno));
    if (n == 0) return Status::Ok();
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxKeyFileBytes) return Status::Corruption(path + " is too large to be a key file");
  }
}

std::string ModeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Status ReadKeyFile(const std::string& path, bool secret, std::string* text) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("cannot open " + path + ": " + Errno(errno));
  struct stat st {};
  Status s;
  if (::fstat(fd, &st) != 0) {
    s = Status::IoError("cannot stat " + path + ": " + Errno(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = Status::InvalidArgument(path + " is not a regular file");
  } else if (secret && (st.st_mode & 077) != 0) {
    s = Status::FailedPrecondition("secret key file " + path + " has mode " + ModeText(st.st_mode) +
                                   ": it must not be readable or writable by group or others "
                                   "(chmod 600 " + path + ")");
  } else if (Status t = CheckTrusted(st, secret ? "secret key file" : "public key file", path, secret); !t.ok()) {
    s = t;
  } else {
    s = ReadFd(fd, path, text);
  }
  ::close(fd);
  return s;
}

Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists(path + " exists already; not overwriting it");
    return Status::IoError("cannot create " + path + ": " + Errno(errno));
  }
  size_t done = 0;
  Status s;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = Status::IoError("cannot write " + path + ": " + Errno(errno));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (s.ok() && ::fsync(fd) != 0) s = Status::IoError("cannot sync " + path + ": " + Errno(errno));
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

// "2026-12-02 09:00:00", local time, for a new certificate's header.
std::string GeneratedAt() {
  char when[32] = "";
  std::time_t t = std::time(nullptr);
  struct tm tm {};
  if (::localtime_r(&t, &tm)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  return when;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

// sshd's StrictModes for what decides whom cohort trusts: whoever may replace
// a trusted file or directory may make cohort trust their own key. So it must
// belong to root or to this program's user, and, unless `secret` (checked
// more strictly by the caller), no group or other may write it.
Status CheckTrusted(const struct stat& st, const std::string& what, const std::string& path, bool secret) {
  const uid_t euid = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != euid) {
    return Status::FailedPrecondition(what + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
                                      ", not by root or by the user this program runs as (uid " +
                                      std::to_string(euid) + "): chown it to one of them");
  }
  if (!secret && (st.st_mode & 022) != 0) {
    return Status::FailedPrecondition(what + " " + path + " has mode " + ModeText(st.st_mode) +
                                      ": group or others may write it, and so choose which keys are trusted "
                                      "(chmod go-w " + path + ")");
  }
  return Status::Ok();
}

bool HasCurve() { return zmq_has("curve") == 1; }

Status GenerateKeyPair(CurveKeyPair* out) {
  char pub[kZ85KeyChars + 1] = {}, sec[kZ85KeyChars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Status::FailedPrecondition("cannot generate a CURVE key pair: " + std::string(zmq_strerror(zmq_errno())) +
                                      " (is libzmq built with CURVE?)");
  }
  out->public_z85 = pub;
  out->secret_z85 = sec;
  return Status::Ok();
}

Status WriteKeyFiles(const std::string& dir, const std::string& name, const CurveKeyPair& keys,
                     std::string* public_path, std::string* secret_path) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return Status::InvalidArgument("key name \"" + name + "\" must be non-empty, without '/', not start with '.'");
  }
  const std::string base = (dir.empty() ? "." : dir) + "/" + name + std::string(kKeySuffix);
  *public_path = base;
  *secret_path = base + std::string(kSecretSuffix);
  const std::string generated = GeneratedAt();
  // The secret first: if it cannot be written, no public half is left behind.
  if (Status s = WriteNew(*secret_path, CertificateText(name, keys, true, generated), 0600); !s.ok()) return s;
  if (Status s = WriteNew(*public_path, CertificateText(name, keys, false, generated), 0644); !s.ok()) {
    ::unlink(secret_path->c_str());
    return s;
  }
  return Status::Ok();
}

Status CheckKeyPair(const CurveKeyPair& keys, const std::string& origin) {
  char derived[kZ85KeyChars + 1] = {};
  if (zmq_curve_public(derived, keys.secret_z85.c_str()) != 0 || keys.public_z85 != derived) {
    return Status::Corruption(origin + ": curve/public-key does not belong to curve/secret-key");
  }
  return Status::Ok();
}

Status LoadPublicKey(const std::string& path, std::string* public_z85) {
  std::string text;
  if (Status s = ReadKeyFile(path, false, &text); !s.ok()) return s;
  CurveKeyPair keys;
  if (Status s = ParseCertificate(text, path, &keys); !s.ok()) return s;
  // A secret key file given as a public one: its halves must still agree.
  if (!keys.secret_z85.empty()) {
    if (Status s = CheckKeyPair(keys, path); !s.ok()) return s;
  }
  *public_z85 = keys.public_z85;
  return Status::Ok();
}

Status LoadSecretKey(const std::string& path, CurveKeyPair* out) {
  std::string text;
  if (Status s = ReadKeyFile(path, true, &text); !s.ok()) return s;
  if (Status s = ParseCertificate(text, path, out); !s.ok()) return s;
  if (out->secret_z85.empty()) {
    return Status::InvalidArgument(path + " holds no curve/secret-key: give the NAME.key_secret file, not NAME.key");
  }
  return CheckKeyPair(*out, path);
}

Status LoadAllowlist(const std::string& dir, std::map<std::string, std::string>* key_to_name,
                     std::vector<std::string>* problems) {
  key_to_name->clear();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("cannot read the key directory " + dir + ": " + Errno(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = Status::IoError("cannot stat the key directory " + dir + ": " + Errno(errno));
    ::close(fd);
    return s;
  }
  // Whoever may add a file to the directory may authorize a key.
  if (Status s = CheckTrusted(st, "key directory", dir, false); !s.ok()) {
    ::close(fd);
    return s;
  }
  DIR* d = ::fdopendir(fd);
  if (!d) {
    Status s = Status::IoError("cannot list the key directory " + dir + ": " + Errno(errno));
    ::close(fd);
    return s;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (!n.empty() && n[0] != '.') names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());  // a stable name when two files hold one key
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // Only NAME.key counts, as in pyzmq's load_certificates: renaming a file
    // (alice.key.revoked, alice.key.bak) must take it out of the list.
    if (EndsWith(n, kSecretSuffix)) {
      problems->push_back(path + ": a secret key does not belong in an allowlist; ignored (move it away, and "
                          "treat the key as exposed if others could read this directory)");
      continue;
    }
    if (!EndsWith(n, kKeySuffix)) {
      problems->push_back(path + ": not a NAME.key file; ignored");
      continue;
    }
    std::string key;
    if (Status s = LoadPublicKey(path, &key); !s.ok()) {
      problems->push_back(s.message());
      continue;
    }
    key_to_name->emplace(key, n.substr(0, n.size() - kKeySuffix.size()));
  }
  return Status::Ok();
}

Status MakeCurveServer(zmq::socket_t& socket, const CurveKeyPair& own, const std::string& domain) {
  try {
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, own.secret_z85);
    socket.set(zmq::sockopt::zap_domain, domain);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::FailedPrecondition(std::string("cannot enable CURVE on a socket: ") + e.what());
  }
}

Status MakeCurveClient(zmq::socket_t& socket, const CurveKeyPair& own, const std::string& server_public) {
  try {
    socket.set(zmq::sockopt::curve_serverkey, server_public);
    socket.set(zmq::sockopt::curve_publickey, own.public_z85);
    socket.set(zmq::sockopt::curve_secretkey, own.secret_z85);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::FailedPrecondition(std::string("cannot enable CURVE on a socket: ") + e.what());
  }
}

}  // namespace cohort::common
