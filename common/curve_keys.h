// CURVE key pairs and the files that hold them. A key file uses the ZPL
// certificate layout of CZMQ's zcert (zcert_save writes NAME and NAME_secret),
// so keys made by `cohort keygen` work with other ZeroMQ tools and the other
// way round:
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
// Also here: the socket options that make a socket a CURVE server or client,
// and the "is this endpoint loopback" test behind the secure-by-default rule.
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

#include "common/status.h"

namespace cohort::common {

// Keys as their 40-character Z85 text, the form ZeroMQ's options and the key
// files use. A public key is not secret: logs print it whole, so it can be
// matched against the files with grep.
struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;  // empty when only the public half is known
};

// True if this libzmq was built with CURVE (libsodium or tweetnacl).
bool HasCurve();

// A fresh key pair from libzmq's random source.
Status GenerateKeyPair(CurveKeyPair* out);

// Writes DIR/NAME.key (0644) and DIR/NAME.key_secret (0600, created with that
// mode, never widened afterwards). Refuses to overwrite either file.
Status WriteKeyFiles(const std::string& dir, const std::string& name, const CurveKeyPair& keys,
                     std::string* public_path, std::string* secret_path);

// The parsed text of a ZPL certificate: its curve/public-key and, if present,
// curve/secret-key, both checked (40 Z85 chars, and the secret key's public
// half must be the public key). `origin` names the file in errors.
Status ParseCertificate(std::string_view text, const std::string& origin, CurveKeyPair* out);

// A trusted public key file (a secret key file is accepted too; only its
// public half is taken): owned by root or the euid, not writable by group or
// others.
Status LoadPublicKey(const std::string& path, std::string* public_z85);

// A secret key file: must be a regular file no one but its owner may read or
// write (mode & 077 == 0), like ssh's private keys, owned by root or the euid.
Status LoadSecretKey(const std::string& path, CurveKeyPair* out);

// Every NAME.key file in `dir`: key -> NAME. Hidden files and what is not a
// regular file are skipped silently; other files (not *.key, *_secret, or
// *.key files that cannot be read, parse, or are not trusted) are left out and
// described in *problems, one line each. A directory that cannot be listed,
// or that is not trusted (see above), is an error.
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

// ipc:// and inproc:// endpoints, and tcp:// ones whose host is in
// 127.0.0.0/8, ::1 or "localhost". Anything else (a wildcard, a name, a
// routable address, another transport) is not.
bool IsLoopbackEndpoint(const std::string& endpoint);

}  // namespace cohort::common

#endif  // COHORT_COMMON_CURVE_KEYS_H_
