// CURVE key pairs and the files that hold them. A key file uses the ZPL
// certificate layout of CZMQ's zcert (zcert_save writes NAME and NAME_secret),
// so keys made by `cohort keygen` work with other ZeroMQ tools and the other
// way round:
//
//   NAME.key          metadata + curve/public-key = "<40 Z85 chars>"  (0644)
//   NAME.key_secret   the same plus curve/secret-key                   (0600)
//
// A secret key file that group or others may read is refused, as ssh does.
// An allowlist is a directory of public key files, one per peer (like ssh's
// authorized_keys); each key is known by its file's name without ".key".
//
// Also here: the socket options that make a socket a CURVE server or client,
// and the "is this endpoint loopback" test behind the secure-by-default rule.
// cppzmq's exceptions stop here: errors come back as Status.
//
// Thread contract: plain functions and values; a socket is used by one thread.
#ifndef COHORT_COMMON_CURVE_KEYS_H_
#define COHORT_COMMON_CURVE_KEYS_H_

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

// A public key file (a secret key file is accepted too; only its public half
// is taken).
Status LoadPublicKey(const std::string& path, std::string* public_z85);

// A secret key file: must be a regular file no one but its owner may read or
// write (mode & 077 == 0), like ssh's private keys.
Status LoadSecretKey(const std::string& path, CurveKeyPair* out);

// Every public key file in `dir` (hidden files and *_secret files skipped):
// key -> name (file name without ".key"). Files that cannot be read or parsed
// are left out and described in *problems, one line each; a directory that
// cannot be listed is an error.
Status LoadAllowlist(const std::string& dir, std::map<std::string, std::string>* key_to_name,
                     std::vector<std::string>* problems);

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
