// CURVE certificates as text: the key pair type and the parser of the ZPL
// certificate layout of CZMQ's zcert (zcert_save writes NAME and
// NAME_secret), so keys made by `cohort keygen` work with other ZeroMQ tools
// and the other way round. Parsing checks the form of each key (40
// characters of Z85 that decode to 32 bytes); whether a secret key's public
// half is the public key needs the CURVE arithmetic of libzmq and is checked
// where key files are loaded (common/curve_keys.h).
//
// Also here: the "is this endpoint loopback" test behind the
// secure-by-default rule. Everything here is pure: no files, no sockets.
//
// Thread contract: plain functions and values.
#ifndef COHORT_COMMON_CERTIFICATE_H_
#define COHORT_COMMON_CERTIFICATE_H_

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cohort::common {

// Keys as their 40-character Z85 text, the form ZeroMQ's options and the key
// files use. A public key is not secret: logs print it whole, so it can be
// matched against the files with grep.
struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;  // empty when only the public half is known
};

constexpr size_t kZ85KeyChars = 40;

// True if `z85` is 40 characters of the Z85 alphabet that decode to 32 bytes.
bool IsZ85Key(std::string_view z85);

// The parsed text of a ZPL certificate: its curve/public-key and, if present,
// curve/secret-key, both checked for form. `origin` names the file in errors.
// The values of its metadata section go to *metadata when it is given: that
// is where an operator states what an allowlisted key may be.
Status ParseCertificate(std::string_view text, const std::string& origin, CurveKeyPair* out,
                        std::map<std::string, std::string>* metadata = nullptr);

// The text of a certificate named `name`, as zcert_save lays it out; the
// secret file's text when `secret`. `generated` is shown in the header
// comment ("2026-12-02 09:00:00").
std::string CertificateText(const std::string& name, const CurveKeyPair& keys, bool secret,
                            const std::string& generated);

// Endpoints safe without CURVE: filesystem ipc:// and inproc:// ones, and
// tcp:// ones whose host is in 127.0.0.0/8, ::1 or "localhost". Anything
// else (a wildcard, a name, a routable address, an abstract ipc://@name
// socket, which every local user may reach, another transport) is not.
bool IsLoopbackEndpoint(const std::string& endpoint);

}  // namespace cohort::common

#endif  // COHORT_COMMON_CERTIFICATE_H_
