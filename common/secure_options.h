// The security flags the three programs share, turned into keys: loading a
// CURVE identity for a peer (the worker and the CLI) and the
// secure-by-default rule for endpoints off loopback. Errors are Status with a
// message that says what to do (usually: run `cohort keygen`).
//
// Thread contract: plain functions.
#ifndef COHORT_COMMON_SECURE_OPTIONS_H_
#define COHORT_COMMON_SECURE_OPTIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "common/curve_keys.h"
#include "common/status.h"

namespace cohort::common {

// A CURVE client's identity: its own key pair and the server's public key.
struct PeerCurve {
  CurveKeyPair own;
  std::string server_public;
};

// How to make keys, for error messages.
std::string KeygenHint();

// Both files given: *out holds the keys. Neither: *out is empty (no CURVE).
// One without the other, an unreadable file, a secret key file others may
// read, or a libzmq without CURVE: an error naming the flag.
Status LoadPeerCurve(const std::string& secret_key_file, const std::string& coordinator_key_file,
                     std::optional<PeerCurve>* out);

// The endpoints in `endpoints` that are not loopback (see IsLoopbackEndpoint).
std::vector<std::string> NonLoopback(const std::vector<std::string>& endpoints);

// "tcp://a:5701, tcp://b:5701" -> each endpoint, spaces trimmed, empty
// entries dropped, "host:port" read as tcp://host:port (NormalizeEndpoint):
// how --coordinator names several coordinators that share a database. A list with no endpoint gives {list} itself, so the error
// names what was given.
std::vector<std::string> SplitEndpoints(const std::string& list);

}  // namespace cohort::common

#endif  // COHORT_COMMON_SECURE_OPTIONS_H_
