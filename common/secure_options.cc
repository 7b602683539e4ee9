#include "common/secure_options.h"

#include "common/transport.h"

namespace cohort::common {

std::string KeygenHint() {
  return "make keys with `cohort keygen NAME --dir /etc/cohort/keys` and see docs/SECURITY.md";
}

Status LoadPeerCurve(const std::string& secret_key_file, const std::string& coordinator_key_file,
                     std::optional<PeerCurve>* out) {
  out->reset();
  if (secret_key_file.empty() && coordinator_key_file.empty()) return Status::Ok();
  if (secret_key_file.empty() || coordinator_key_file.empty()) {
    return Status::InvalidArgument(
        "--curve-secret-key and --coordinator-key go together: CURVE needs both this peer's secret key and "
        "the coordinator's public key (" + KeygenHint() + ")");
  }
  if (!HasCurve()) return Status::FailedPrecondition("this libzmq was built without CURVE support");
  PeerCurve keys;
  if (Status s = LoadSecretKey(secret_key_file, &keys.own); !s.ok()) {
    return Status::FromCode(s.code(), "--curve-secret-key: " + s.message());
  }
  if (Status s = LoadPublicKey(coordinator_key_file, &keys.server_public); !s.ok()) {
    return Status::FromCode(s.code(), "--coordinator-key: " + s.message());
  }
  *out = std::move(keys);
  return Status::Ok();
}

std::vector<std::string> NonLoopback(const std::vector<std::string>& endpoints) {
  std::vector<std::string> out;
  for (const std::string& e : endpoints) {
    if (!IsLoopbackEndpoint(e)) out.push_back(e);
  }
  return out;
}

std::vector<std::string> SplitEndpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    std::string one = list.substr(at, comma - at);
    while (!one.empty() && one.front() == ' ') one.erase(0, 1);
    while (!one.empty() && one.back() == ' ') one.pop_back();
    // "host:5700" is tcp://host:5700, as people type it.
    if (!one.empty()) out.push_back(NormalizeEndpoint(one));
    at = comma + 1;
  }
  if (out.empty()) out.push_back(list);
  return out;
}

}  // namespace cohort::common
