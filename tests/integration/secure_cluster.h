// CURVE clusters for the security tests: keys made with the real
// `cohort keygen`, allowlist directories, and a coordinator started with them.
#ifndef COHORT_TESTS_INTEGRATION_SECURE_CLUSTER_H_
#define COHORT_TESTS_INTEGRATION_SECURE_CLUSTER_H_

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/transport.h"

#include "tests/integration/cluster.h"

namespace cohort::testing {

inline const std::string kBin = COHORT_BIN_DIR;

inline size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

inline bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// The public key (Z85) from a key file written by keygen.
inline std::string PublicKeyOf(const std::string& key_file) {
  std::string text = ReadFile(key_file);
  const std::string tag = "public-key = \"";
  size_t at = text.find(tag);
  REQUIRE(at != std::string::npos);
  return text.substr(at + tag.size(), 40);
}

// Keys for one cluster, all made by `cohort keygen` in the cluster's temp
// dir: the coordinator's, and any number of peers'. Allowlists are the
// directories clients/ and workers/ holding copies of public key files.
class Keys {
 public:
  explicit Keys(const std::string& dir) : dir_(dir + "/keys") {
    ::mkdir(dir_.c_str(), 0700);
    ::mkdir(clients().c_str(), 0755);
    ::mkdir(workers().c_str(), 0755);
    ::mkdir(admins().c_str(), 0755);
    Make("coordinator");
  }

  // Writes NAME.key and NAME.key_secret; returns their common prefix.
  std::string Make(const std::string& name) {
    RunOutput r = RunProgram({kBin + "/cohort", "keygen", name, "--dir", dir_}, std::chrono::seconds(30));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return dir_ + "/" + name + ".key";
  }
  // Copies NAME's public key into `allowlist` as AS.key (NAME.key by default).
  void Authorize(const std::string& name, const std::string& allowlist, const std::string& as = "") {
    const std::string path = allowlist + "/" + (as.empty() ? name : as) + ".key";
    WriteFile(path, ReadFile(Public(name)));
    REQUIRE(::chmod(path.c_str(), 0644) == 0);  // whatever the umask: group-writable keys are refused
  }

  std::string Public(const std::string& name) const { return dir_ + "/" + name + ".key"; }
  std::string Secret(const std::string& name) const { return dir_ + "/" + name + ".key_secret"; }
  std::string clients() const { return dir_ + "/clients"; }
  std::string workers() const { return dir_ + "/workers"; }
  std::string admins() const { return dir_ + "/admins"; }

  std::vector<std::string> CoordinatorFlags() const {
    return {"--curve-secret-key", Secret("coordinator"), "--authorized-clients", clients(), "--authorized-workers",
            workers()};
  }
  // Flags of a peer (CLI or worker) holding `name`'s key.
  std::vector<std::string> PeerFlags(const std::string& name, const std::string& coordinator = "coordinator") const {
    return {"--coordinator-key", Public(coordinator), "--curve-secret-key", Secret(name)};
  }

 private:
  std::string dir_;
};

// A cluster whose coordinator runs CURVE, with client "alice" and worker
// "w1" authorized; the CLI speaks as alice unless told otherwise.
struct SecureCluster {
  Cluster c;
  Keys keys{c.dir()};
  int launched = 0;

  SecureCluster() {
    keys.Make("alice");
    keys.Make("w1");
    keys.Authorize("alice", keys.clients());
    keys.Authorize("w1", keys.workers());
    c.SetCliFlags(keys.PeerFlags("alice"));
  }
  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = keys.CoordinatorFlags();
    flags.insert(flags.end(), extra.begin(), extra.end());
    c.StartCoordinator(flags);
  }
  // A worker started without waiting for it to join (it may never). Its
  // state directory is its own: another worker of that name may still run.
  std::unique_ptr<Daemon> LaunchWorker(const std::string& name, std::vector<std::string> key_flags) {
    std::vector<std::string> argv = {kBin + "/cohort-worker", "--coordinator",
                                     "tcp://127.0.0.1:" + std::to_string(c.port(1)), "--name", name,
                                     "--heartbeat-ms", "200", "--log-level", "debug", "--state-dir",
                                     c.dir() + "/launched-" + std::to_string(++launched) + "-state"};
    for (const std::string& f : StepUserFlags()) argv.push_back(f);
    argv.insert(argv.end(), key_flags.begin(), key_flags.end());
    return std::make_unique<Daemon>(argv, c.dir() + "/worker-" + name + ".log");
  }
  // The CLI as someone else (their flags replace alice's for this call).
  RunOutput CliAs(const std::vector<std::string>& flags, std::vector<std::string> args) {
    c.SetCliFlags(flags);
    RunOutput r = c.Cli(std::move(args));
    c.SetCliFlags(keys.PeerFlags("alice"));
    return r;
  }
  bool Refused(const std::string& key_name) {
    return c.coordinator().Log().find("event=peer_refused") != std::string::npos &&
           c.coordinator().Log().find(PublicKeyOf(keys.Public(key_name))) != std::string::npos;
  }
};

// A session held open: one CURVE DEALER connection holding `name`'s key, as
// the CLI or a worker makes one, speaking the protocol message by message.
class HeldSession {
 public:
  HeldSession(const Keys& keys, const std::string& name, int port) : socket_(context_, zmq::socket_type::dealer) {
    common::CurveKeyPair own;
    std::string server;
    REQUIRE(common::LoadSecretKey(keys.Secret(name), &own).ok());
    REQUIRE(common::LoadPublicKey(keys.Public("coordinator"), &server).ok());
    common::ConfigureSocket(socket_);
    REQUIRE(common::MakeCurveClient(socket_, own, server).ok());
    REQUIRE(common::ConnectSocket(socket_, "tcp://127.0.0.1:" + std::to_string(port)).ok());
  }
  // Sends `request` as it is (a client request's `req` numbered first).
  uint64_t Send(common::Message request) {
    const uint64_t req = ++next_req_;
    std::visit([&](auto& m) {
      if constexpr (requires { m.req; }) m.req = req;
    }, request);
    common::SendMessage(socket_, std::nullopt, request);
    return req;
  }
  // The next message that decodes, or nullopt if none came within `timeout`.
  std::optional<common::Message> Receive(std::chrono::milliseconds timeout) {
    std::optional<common::Message> got;
    WaitUntil([&] {
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      common::Envelope env;
      common::Message msg;
      if (common::ReceiveEnvelope(socket_, false, &env) && common::DecodeEnvelope(env, &msg).ok()) got = msg;
      return got.has_value();
    }, timeout);
    return got;
  }
  // The reply to `request`, skipping anything else, or nullopt after 10 s.
  std::optional<common::ReplyMsg> Call(common::Message request) {
    const uint64_t req = Send(std::move(request));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      auto m = Receive(std::chrono::seconds(1));
      auto* r = m ? std::get_if<common::ReplyMsg>(&*m) : nullptr;
      if (r && r->req == req) return *r;
    }
    return std::nullopt;
  }
  std::optional<common::ReplyMsg> Groups() { return Call(common::GroupsMsg{}); }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  uint64_t next_req_ = 0;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_SECURE_CLUSTER_H_
