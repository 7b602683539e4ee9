// ClientUsers is the worker's map from the key names of clients (the
// `client` of a RUN) to the Unix users their steps run as, read from the
// --client-users file, so that the steps of one team cannot read another's
// secrets from /proc/PID/environ or their files. Lines are `CLIENT-NAME USER`;
// `* USER` is the user of every client not listed; `#` starts a comment line.
// Without `*`, a step of an unlisted client is refused. Users are looked up
// when the file is read; root (uid 0) is refused as a target.
//
// Thread contract: immutable after Load or Parse; Resolve may be called from
// any thread.
#ifndef COHORT_WORKER_CLIENT_USERS_H_
#define COHORT_WORKER_CLIENT_USERS_H_

#include <map>
#include <optional>
#include <string>

#include "common/status.h"
#include "worker/step_policy.h"  // RunAsUser

namespace cohort::worker {

class ClientUsers {
 public:
  // Reads `file`, which must be a regular file owned by root or the worker's
  // user and not writable by group or others (common::CheckTrusted), then
  // Parse. Errors name the file, and the line where one is to blame.
  static common::Status Load(const std::string& file, ClientUsers* out);
  // Parses `text` as the contents of `file`.
  static common::Status Parse(const std::string& text, const std::string& file, ClientUsers* out);

  // The user a step of `client` runs as: *user is null for an empty client
  // (a RUN without one runs as the worker's --run-as user). FailedPrecondition
  // naming the client and the file for a client the file does not map.
  common::Status Resolve(const std::string& client, const RunAsUser** user) const;

  size_t size() const { return by_client_.size() + (default_ ? 1 : 0); }

 private:
  std::string file_;
  std::map<std::string, RunAsUser> by_client_;
  std::optional<RunAsUser> default_;  // `*`
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_CLIENT_USERS_H_
