// Several tenants on one coordinator, decided without sockets or a clock:
// which group a client's request names and whether it may reach it, what a
// worker key's allowlist entry grants it, per-client WAIT shares, and the
// core keeping each client's group ids apart.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <zmq.hpp>

#include "common/curve_keys.h"
#include "coordinator/client_limits.h"
#include "coordinator/group_access.h"
#include "coordinator/worker_grant.h"
#include "coordinator/zap_handler.h"
#include "tests/unit/scheduler_harness.h"
#include "tests/unit/temp_dir.h"

namespace cohort::coordinator {
namespace {

using common::Status;

TEST_CASE("a client's group ids carry its name and without CURVE they carry nothing", "[unit][tenancy]") {
  CHECK(QualifiedGroupId("alice", "nightly") == "alice/nightly");
  CHECK(QualifiedGroupId("", "nightly") == "nightly");
  auto exists = [](std::string_view id) { return id == "alice/nightly" || id == "alice/alice/x"; };
  const Caller alice{"alice", false}, bob{"bob", false}, root{"root", true}, anonymous{"", false};
  CHECK(ResolveGroup(alice, "nightly", exists) == "alice/nightly");
  CHECK(ResolveGroup(alice, "alice/nightly", exists) == "alice/nightly");
  // Its own group named "alice/x" wins over reading the name as a full id.
  CHECK(ResolveGroup(alice, "alice/x", exists) == "alice/alice/x");
  // Not its own: read as a full id, which then names no group.
  CHECK(ResolveGroup(bob, "nightly", exists) == "nightly");
  CHECK(ResolveGroup(bob, "alice/nightly", exists) == "alice/nightly");
  CHECK(ResolveGroup(anonymous, "nightly", exists) == "nightly");
  CHECK(MayReach(alice, "alice"));
  CHECK_FALSE(MayReach(bob, "alice"));
  CHECK(MayReach(root, "alice"));
  CHECK(MayReach(anonymous, ""));
  CHECK_FALSE(MayReach(anonymous, "alice"));
}

TEST_CASE("two clients may submit one id, and a group records who submitted it", "[unit][tenancy]") {
  testing::Harness h;
  h.Join("w", 4);
  for (const char* client : {"alice", "bob"}) {
    SubmitGroup e;
    e.spec = testing::MakeGroup("nightly", 1);
    e.client = client;
    std::string id;
    h.out.clear();
    REQUIRE(h.core.Submit(std::move(e), h.now, &h.out, &id).ok());
    CHECK(id == std::string(client) + "/nightly");
    REQUIRE(h.core.OwnerOf(id));
    CHECK(*h.core.OwnerOf(id) == client);
    // The RUN names the client, so the worker runs it as that client's user.
    REQUIRE(h.Dispatches().size() == 1);
    CHECK(h.Dispatches()[0].client == client);
    CHECK(h.Dispatches()[0].ref.group == id);
  }
  CHECK(h.core.OwnerOf("nightly") == nullptr);
  // An id that the client's prefix makes too long is refused, naming both.
  SubmitGroup long_id;
  long_id.spec = testing::MakeGroup(std::string(common::kMaxIdBytes, 'x'), 1);
  long_id.client = "alice";
  Status s = h.core.Submit(std::move(long_id), h.now, &h.out);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("with the client's prefix \"alice/\"") != std::string::npos);
}

TEST_CASE("WAIT shares are per client", "[unit][tenancy]") {
  ClientLimits limits(0, 0, 2);
  limits.WaitHeld("alice");
  CHECK(limits.CheckWait("alice").ok());
  limits.WaitHeld("alice");
  Status full = limits.CheckWait("alice");
  CHECK(full.code() == Status::Code::kUnavailable);
  CHECK(full.message() == "client \"alice\" already holds 2 WAITs; the limit is 2 (--max-waits-per-client): poll "
                          "with STATUS instead");
  CHECK(limits.CheckWait("bob").ok());
  limits.WaitsEnded("alice", 1);
  CHECK(limits.CheckWait("alice").ok());
  limits.WaitsEnded("alice", 5);  // more than held: none left, never below
  CHECK(limits.Waits("alice") == 0);
  CHECK(ClientLimits(0, 0, 0).CheckWait("alice").ok());
  // Without keys every client is the anonymous one: no share of its own.
  ClientLimits anonymous(0, 0, 1);
  anonymous.WaitHeld("");
  CHECK(anonymous.CheckWait("").ok());
}

common::AllowlistEntry Entry(std::map<std::string, std::string> metadata) {
  return {"node7", "/etc/cohort/keys/workers/node7.key", std::move(metadata)};
}

common::RegisterMsg Reg(std::string name, uint32_t slots, std::vector<std::string> agents) {
  common::RegisterMsg r;
  r.name = std::move(name);
  r.slots = slots;
  r.agents = std::move(agents);
  return r;
}

TEST_CASE("a worker key's entry grants a name, slots and labels, and nothing more", "[unit][tenancy]") {
  WorkerGrant g;
  REQUIRE(ParseWorkerGrant(Entry({}), &g).ok());
  CHECK(g.name == "node7");
  CHECK(g.max_slots == kDefaultGrantSlots);
  CHECK(g.labels.empty());
  REQUIRE(ParseWorkerGrant(Entry({{"name", "ignored"}, {"worker-name", "gpu-1"}, {"max-slots", "8"}, {"labels", " gpu ,ssd,, "}}), &g).ok());
  CHECK(g.name == "gpu-1");
  CHECK(g.max_slots == 8);
  CHECK(g.labels == std::set<std::string>{"gpu", "ssd"});

  CHECK(CheckRegistration(g, Reg("gpu-1", 8, {"ssd", "gpu"})).ok());
  Status slots = CheckRegistration(g, Reg("gpu-1", 4000000000u, {}));
  CHECK(slots.message() == "worker \"gpu-1\" offers 4000000000 slots; its key may offer at most 8 (metadata "
                           "max-slots in its allowlist entry)");
  Status label = CheckRegistration(g, Reg("gpu-1", 1, {"gpu", "prod-db"}));
  CHECK(label.message().find("offers label \"prod-db\", which its key is not granted") != std::string::npos);
  Status name = CheckRegistration(g, Reg("node7", 1, {}));
  CHECK(name.message().find("may register only as worker \"gpu-1\", not \"node7\"") != std::string::npos);

  for (const char* bad : {"0", "-1", "8 slots", "", "99999999999"}) {
    INFO(bad);
    Status s = ParseWorkerGrant(Entry({{"max-slots", bad}}), &g);
    CHECK(s.message().find("/etc/cohort/keys/workers/node7.key: metadata/max-slots must be a whole number") == 0);
  }
  std::string many;
  for (size_t i = 0; i <= common::kMaxAgents; ++i) many += "l" + std::to_string(i) + ",";
  CHECK(ParseWorkerGrant(Entry({{"labels", many}}), &g).message().find("a worker may offer at most 64") !=
        std::string::npos);
  CHECK_FALSE(ParseWorkerGrant(Entry({{"worker-name", ""}}), &g).ok());
}

// A public key file `name`.key in `dir`, with `metadata` lines before the key.
common::CurveKeyPair KeyFile(const std::string& dir, const std::string& name,
                             const std::vector<std::string>& metadata = {}) {
  common::CurveKeyPair k;
  REQUIRE(common::GenerateKeyPair(&k).ok());
  std::ofstream out(dir + "/" + name + ".key");
  out << "metadata\n";
  for (const std::string& line : metadata) out << "    " << line << "\n";
  out << "curve\n    public-key = \"" << k.public_z85 << "\"\n";
  return k;
}

TEST_CASE("ZAP admits admin keys on the client port, grants worker keys, refuses a name in two lists",
          "[unit][tenancy]") {
  testing::TempDir d;
  const std::string clients = d.path + "/clients", workers = d.path + "/workers", admins = d.path + "/admins";
  for (const std::string& dir : {clients, workers, admins}) REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  auto alice = KeyFile(clients, "alice");
  auto root = KeyFile(admins, "root");
  auto twin = KeyFile(admins, "alice");  // another key under a client's name
  auto node = KeyFile(workers, "node7", {"worker-name = \"gpu-7\"", "labels = \"gpu\""});
  auto broken = KeyFile(workers, "node8", {"max-slots = \"many\""});
  zmq::context_t context(1);
  ZapHandler zap(context, clients, workers, admins);
  REQUIRE(zap.Start().ok());

  ZapVerdict v = zap.Authorize({kClientDomain, "10.0.0.1", "CURVE", root.public_z85});
  REQUIRE(v.allowed);
  CHECK(zap.IsAdmin(v.user_id));
  v = zap.Authorize({kClientDomain, "10.0.0.1", "CURVE", alice.public_z85});
  REQUIRE(v.allowed);
  CHECK_FALSE(zap.IsAdmin(v.user_id));
  // The second "alice" would share alice's groups, with an admin's rights.
  CHECK_FALSE(zap.Authorize({kClientDomain, "10.0.0.1", "CURVE", twin.public_z85}).allowed);
  CHECK_FALSE(zap.Authorize({kWorkerDomain, "10.0.0.1", "CURVE", root.public_z85}).allowed);

  v = zap.Authorize({kWorkerDomain, "10.0.0.1", "CURVE", node.public_z85});
  REQUIRE(v.allowed);
  const WorkerGrant* g = zap.GrantOf(v.user_id);
  REQUIRE(g);
  CHECK(g->name == "gpu-7");
  CHECK(g->labels == std::set<std::string>{"gpu"});
  // A grant that cannot be read admits nothing, rather than everything.
  CHECK_FALSE(zap.Authorize({kWorkerDomain, "10.0.0.1", "CURVE", broken.public_z85}).allowed);
}

}  // namespace
}  // namespace cohort::coordinator
