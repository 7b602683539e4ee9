// CURVE key files and sockets: generating key pairs, writing and loading
// key files (their text is parsed by common/certificate.h), allowlist
// directories, and the options that make a socket a CURVE server or client.
// A key file uses the zcert layout:
//
//   NAME.key          metadata + curve/public-key = "<40 Z85 chars>"  (0644)
//   NAME.key_secret   the same plus curve/secret-key                   (0600)
//
// A secret key file that group or others may read is refused, as ssh does.
// Like sshd's StrictModes, every file and directory that decides whom cohort
// trusts (key files, allowlist directories) must belong to root or to the
// program's effective user, and public ones must not be writable by group or
// others. An allowlist is a directory of NAME.key public key files, one per
// peer (like ssh's authorized_keys); each key is known by NAME.
//
// cppzmq's exceptions stop here: errors come back as Status.
//
// Thread contract: plain functions and values; a socket is used by one thread.
#ifndef COHORT_COMMON_CURVE_KEYS_H_
#define COHORT_COMMON_CURVE_KEYS_H_

#include <sys/stat.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/certificate.h"
#include "common/status.h"

namespace cohort::common {

// True if this libzmq was built with CURVE (libsodium or tweetnacl).
bool HasCurve();

// A fresh key pair from libzmq's random source.
Status GenerateKeyPair(CurveKeyPair* out);

// Writes DIR/NAME.key (0644) and DIR/NAME.key_secret (0600, created with that
// mode, never widened afterwards). Refuses to overwrite either file.
Status WriteKeyFiles(const std::string& dir, const std::string& name, const CurveKeyPair& keys,
                     std::string* public_path, std::string* secret_path);

// Whether `keys.public_z85` is the public half of `keys.secret_z85`
// (Corruption naming `origin` if not).
Status CheckKeyPair(const CurveKeyPair& keys, const std::string& origin);

// A trusted public key file (a secret key file is accepted too; only its
// public half is taken): owned by root or the euid, not writable by group or
// others.
Status LoadPublicKey(const std::string& path, std::string* public_z85);

// A secret key file: must be a regular file no one but its owner may read or
// write (mode & 077 == 0), like ssh's private keys, owned by root or the euid,
// and its public key must belong to its secret key.
Status LoadSecretKey(const std::string& path, CurveKeyPair* out);

// One key of an allowlist: its NAME, the file it came from, and the values
// of the file's metadata section.
struct AllowlistEntry {
  std::string name;
  std::string origin;
  std::map<std::string, std::string> metadata;
};

// Every NAME.key file in `dir`, each opened relative to the directory that
// was checked, never through a symbolic link, and without blocking on a fifo. Hidden files and what is not a
// regular file are skipped silently; other files (not *.key, *_secret, or
// *.key files that cannot be read, parse, or are not trusted) are left out and
// described in *problems, one line each. A directory that cannot be listed,
// or that is not trusted (see above), is an error.
Status LoadAllowlist(const std::string& dir, std::map<std::string, AllowlistEntry>* entries,
                     std::vector<std::string>* problems);
// The same, as key -> NAME.
Status LoadAllowlist(const std::string& dir, std::map<std::string, std::string>* key_to_name,
                     std::vector<std::string>* problems);

// The ownership and mode rule above, on the stat of a file or directory
// called `what` `path` (e.g. "key directory", "/etc/cohort/keys/clients").
// `secret`: the owner only (the caller checks the stricter mode).
Status CheckTrusted(const struct stat& st, const std::string& what, const std::string& path, bool secret);

// The options that make `socket` a CURVE server whose ZAP requests carry
// `domain` (set before bind).
Status MakeCurveServer(zmq::socket_t& socket, const CurveKeyPair& own, const std::string& domain);
// The options that make `socket` a CURVE client that accepts only a server
// holding `server_public` (set before connect).
Status MakeCurveClient(zmq::socket_t& socket, const CurveKeyPair& own, const std::string& server_public);

}  // namespace cohort::common

#endif  // COHORT_COMMON_CURVE_KEYS_H_
