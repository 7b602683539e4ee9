// ZapHandler is the coordinator's ZeroMQ authentication handler (ZAP, RFC 27):
// libzmq asks it, over inproc://zeromq.zap.01, whether each CURVE peer may
// complete its handshake. It owns the REP socket bound there and two
// allowlists, one per role, each a directory of public key files. The role is
// the ZAP domain of the socket the peer connects to, so a key works only on
// the sockets of its role: a worker's key cannot reach the client port, and a
// client's key cannot register as a worker. The reply's User-Id is
// "NAME|KEY": the key's name (its file name) for logs and per-client limits,
// and the Z85 public key itself, which is what admission and revocation
// compare. Comparing names would let a session opened with a key that has
// since been rotated out (same file name, new key) keep its rights.
//
// A third, optional allowlist names the admin clients: their keys reach the
// client port and every client's groups. A worker key's entry also states
// what the key may register as (coordinator/worker_grant.h).
//
// It adds no thread: the server polls socket() in its own loop and calls
// HandleRequests() when it is readable. Reload() rereads both directories
// (on SIGHUP); a directory that cannot be read keeps its previous list.
// Each refusal is logged once per (role, address, key) until the next reload.
//
// Authorize() is the decision alone, with no socket, for tests.
//
// Thread contract: one thread (the server's loop); the socket shares the
// server's context.
#ifndef COHORT_COORDINATOR_ZAP_HANDLER_H_
#define COHORT_COORDINATOR_ZAP_HANDLER_H_

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/log.h"
#include "common/status.h"
#include "common/time.h"
#include "coordinator/worker_grant.h"

namespace cohort::coordinator {

// The ZAP domains of the coordinator's sockets: the client ROUTER is a
// client's, the worker ROUTER and the cancel PUB are a worker's.
inline constexpr char kClientDomain[] = "cohort-client";
inline constexpr char kWorkerDomain[] = "cohort-worker";

struct ZapRequest {
  std::string domain;
  std::string address;    // the peer's IP address
  std::string mechanism;  // "CURVE" for what cohort allows
  std::string key_z85;    // the peer's public key, empty if not CURVE
};

struct ZapVerdict {
  bool allowed = false;
  std::string user_id;  // "NAME|KEY" when allowed (MakeUserId)
  std::string reason;   // why not, when refused
};

// The User-Id the handler gives a peer, and its two halves back. Z85 has no
// '|', and the key is always the last 40 characters, so a name holding '|'
// still splits right. A User-Id of another form has an empty key (admitted
// by nothing) and is its own name.
std::string MakeUserId(const std::string& name, const std::string& key_z85);
std::string UserIdName(std::string_view user_id);
std::string UserIdKey(std::string_view user_id);

class ZapHandler {
 public:
  // `admins_dir` "" = no admin clients.
  ZapHandler(zmq::context_t& context, std::string clients_dir, std::string workers_dir, std::string admins_dir = "");
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Loads both allowlists (an unreadable directory is an error) and binds the
  // ZAP endpoint. Call before the CURVE sockets bind.
  common::Status Start();
  // Rereads both directories and logs what changed.
  void Reload();
  // Answers every request waiting on the socket.
  void HandleRequests(common::Time now);
  zmq::socket_t& socket() { return socket_; }

  ZapVerdict Authorize(const ZapRequest& request) const;
  // Whether the key in `user_id` (a User-Id this handler gave) is still in
  // the allowlist of `domain`: a reload revokes sessions opened before it,
  // including those of a key replaced by another under the same name.
  bool Admits(std::string_view domain, std::string_view user_id) const;
  // Whether the key in `user_id` is in the admin allowlist now.
  bool IsAdmin(std::string_view user_id) const;
  // What the worker key in `user_id` may register as; null if it is not in
  // the workers' allowlist (any more).
  const WorkerGrant* GrantOf(std::string_view user_id) const;
  size_t clients() const { return clients_.size() + admins_.size(); }
  size_t workers() const { return workers_.size(); }

 private:
  // Reads `dir` into *entries; false (keeping them) if it cannot be listed.
  bool LoadOne(const std::string& dir, const char* role, std::map<std::string, common::AllowlistEntry>* entries);
  // The name `key` has in the client or admin list, or null.
  const common::AllowlistEntry* ClientEntry(const std::string& key) const;
  void LogRefusal(const ZapRequest& request, const ZapVerdict& verdict, common::Time now);

  zmq::socket_t socket_;
  std::string clients_dir_, workers_dir_, admins_dir_;
  std::map<std::string, common::AllowlistEntry> clients_;  // by Z85 public key
  std::map<std::string, common::AllowlistEntry> admins_;
  std::map<std::string, common::AllowlistEntry> workers_;
  std::map<std::string, WorkerGrant> grants_;  // by key, for each of workers_
  std::set<std::string> refusals_logged_;
  common::RateLimiter overflow_log_{10, std::chrono::seconds(10)};
  common::RateLimiter bad_request_log_{10, std::chrono::seconds(10)};
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_ZAP_HANDLER_H_
