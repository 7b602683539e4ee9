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

#include "common/unique_fd.h"
#include "common/utf8.h"

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

// Checks and reads a key file already opened as `path`.
Status ReadOpenKeyFile(int fd, const std::string& path, bool secret, std::string* text) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IoError("cannot stat " + path + ": " + Errno(errno));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  if (secret && (st.st_mode & 077) != 0) {
    return Status::FailedPrecondition("secret key file " + path + " has mode " + ModeText(st.st_mode) +
                                      ": it must not be readable or writable by group or others "
                                      "(chmod 600 " + path + ")");
  }
  if (Status t = CheckTrusted(st, secret ? "secret key file" : "public key file", path, secret); !t.ok()) return t;
  return ReadFd(fd, path, text);
}

// O_NONBLOCK: a fifo put where a key file should be must not stall start-up
// or a reload; it is refused as not a regular file instead.
Status ReadKeyFile(const std::string& path, bool secret, std::string* text) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::NotFound("cannot open " + path + ": " + Errno(errno));
  Status s = ReadOpenKeyFile(fd, path, secret, text);
  ::close(fd);
  return s;
}

// Parses a public key file's text (a secret key file's halves must agree).
Status ParsePublicKey(const std::string& text, const std::string& path, std::string* public_z85,
                      std::map<std::string, std::string>* metadata) {
  CurveKeyPair keys;
  if (Status s = ParseCertificate(text, path, &keys, metadata); !s.ok()) return s;
  if (!keys.secret_z85.empty()) {
    if (Status s = CheckKeyPair(keys, path); !s.ok()) return s;
  }
  *public_z85 = keys.public_z85;
  return Status::Ok();
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
                                      ": group or others may write it, and so choose what this program trusts "
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
  return ParsePublicKey(text, path, public_z85, nullptr);
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

Status LoadAllowlist(const std::string& dir, std::map<std::string, AllowlistEntry>* entries,
                     std::vector<std::string>* problems) {
  entries->clear();
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::NotFound("cannot read the key directory " + dir + ": " + Errno(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IoError("cannot stat the key directory " + dir + ": " + Errno(errno));
  // Whoever may add a file to the directory may authorize a key.
  if (Status s = CheckTrusted(st, "key directory", dir, false); !s.ok()) return s;
  // The listing gets a descriptor of its own; entries are opened relative to
  // `fd`, the directory that was checked, whatever its path points at now.
  UniqueFd listing(::dup(fd.get()));
  DIR* d = listing.valid() ? ::fdopendir(listing.get()) : nullptr;
  if (!d) return Status::IoError("cannot list the key directory " + dir + ": " + Errno(errno));
  listing.Release();  // the DIR owns it now
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    // Directories and the like are skipped silently; links and files of
    // other kinds are opened below and named.
    if (!n.empty() && n[0] != '.' && e->d_type != DT_DIR) names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());  // a stable name when two files hold one key
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
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
    UniqueFd file(::openat(fd.get(), n.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!file.valid()) {
      problems->push_back(errno == ELOOP ? path + ": a symbolic link; ignored (copy the key file into the directory)"
                                         : "cannot open " + path + ": " + Errno(errno));
      continue;
    }
    if (::fstat(file.get(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    std::string text, key;
    AllowlistEntry entry;
    Status s = ReadOpenKeyFile(file.get(), path, false, &text);
    if (s.ok()) s = ParsePublicKey(text, path, &key, &entry.metadata);
    if (!s.ok()) {
      problems->push_back(s.message());
      continue;
    }
    entry.name = n.substr(0, n.size() - kKeySuffix.size());
    // The name goes into logs, group ids and messages to workers: printable
    // UTF-8 only, so a file name cannot break any of them.
    if (FirstInvalidUtf8(entry.name) != std::string::npos ||
        std::any_of(entry.name.begin(), entry.name.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      problems->push_back(path + ": the name before .key must be printable UTF-8; ignored");
      continue;
    }
    entry.origin = path;
    entries->emplace(key, std::move(entry));
  }
  return Status::Ok();
}

Status LoadAllowlist(const std::string& dir, std::map<std::string, std::string>* key_to_name,
                     std::vector<std::string>* problems) {
  std::map<std::string, AllowlistEntry> entries;
  Status s = LoadAllowlist(dir, &entries, problems);
  key_to_name->clear();
  for (auto& [key, entry] : entries) key_to_name->emplace(key, std::move(entry.name));
  return s;
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
