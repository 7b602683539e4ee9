// Leadership on a real PostgreSQL database (coordinator/leadership.h): the
// first campaign wins epoch 1, a held lease is not taken, an expired or
// resigned one is, with a higher epoch; a deposed leader's commits and
// renewals are refused and write nothing; a store outlives a restart of
// its server. Leases in the past stand for leases that ran out, so nothing
// here waits on a clock.
#include <catch2/catch.hpp>

#include "coordinator/postgres_store.h"
#include "tests/pg_server.h"
#include "tests/unit/store_test_util.h"

namespace cohort {
namespace {

using common::Status;
using coordinator::GroupAccepted;
using coordinator::Leader;
using coordinator::LoadedState;
using coordinator::PostgresStore;
using namespace std::chrono_literals;
using testing::Engine;
using testing::TestDb;

std::unique_ptr<PostgresStore> OpenPg(const TestDb& db) {
  std::unique_ptr<PostgresStore> store;
  REQUIRE_OK(PostgresStore::Open(db.conninfo(), &store));
  return store;
}

Leader Me(const std::string& name) { return {0, name, "tcp://" + name + ":5700", "tcp://" + name + ":5701", 0}; }

GroupAccepted Group(uint64_t submission) {
  return {submission, "g" + std::to_string(submission), R"({"steps":[]})", "alice", 1700000000000, 1};
}

TEST_CASE("Election: the first campaign wins an epoch and a held lease is not taken", "[unit][election]") {
  TestDb db(Engine::kPostgres);
  auto a = OpenPg(db);
  auto b = OpenPg(db);
  Leader current;
  REQUIRE_OK(a->Current(&current));
  CHECK(current.epoch == 0);
  bool won = false;
  REQUIRE_OK(a->Campaign(Me("a"), 30s, &won, &current));
  CHECK(won);
  const uint64_t first = current.epoch;
  CHECK(first > 0);
  CHECK(current.holder == "a");
  REQUIRE_OK(b->Campaign(Me("b"), 30s, &won, &current));
  CHECK_FALSE(won);
  CHECK(current.epoch == first);
  CHECK(current.holder == "a");
  CHECK(current.client_endpoint == "tcp://a:5700");
  CHECK(current.worker_endpoint == "tcp://a:5701");
  CHECK(current.expires_in_ms > 25000);
  REQUIRE_OK(a->Renew(30s, &current));
  CHECK_FALSE(a->deposed());
}

TEST_CASE("Election: a lease that ran out is taken over with a higher epoch, and the old leader is fenced",
          "[unit][election]") {
  TestDb db(Engine::kPostgres);
  auto a = OpenPg(db);
  auto b = OpenPg(db);
  Leader current;
  bool won = false;
  // A lease in the past: its holder stopped renewing long ago.
  REQUIRE_OK(a->Campaign(Me("a"), -1s, &won, &current));
  REQUIRE(won);
  const uint64_t first = current.epoch;
  REQUIRE_OK(a->Commit({Group(1)}));
  REQUIRE_OK(b->Campaign(Me("b"), 30s, &won, &current));
  REQUIRE(won);
  CHECK(current.epoch > first);

  // The former leader wakes up: nothing it sends is written.
  Status s = a->Commit({Group(2)});
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("deposed") &&
                              Catch::Contains("b leads with epoch " + std::to_string(current.epoch)));
  CHECK(a->deposed());
  CHECK(a->Renew(30s, &current).code() == Status::Code::kFailedPrecondition);
  CHECK(a->Campaign(Me("a"), 30s, &won, &current).code() == Status::Code::kFailedPrecondition);
  CHECK(db.Count("submissions WHERE submission = 2") == 0);

  // The new leader reads what the old one committed before, and goes on.
  LoadedState state;
  REQUIRE_OK(b->Load(&state));
  REQUIRE(state.groups.size() == 1);
  CHECK(state.groups[0].accepted == Group(1));
  REQUIRE_OK(b->Commit({Group(2)}));
  CHECK(db.Count("submissions") == 2);
}

TEST_CASE("Election: a resigned lease is taken at once, and a renewal after it fails", "[unit][election]") {
  TestDb db(Engine::kPostgres);
  auto a = OpenPg(db);
  auto b = OpenPg(db);
  Leader current;
  bool won = false;
  REQUIRE_OK(a->Campaign(Me("a"), 30s, &won, &current));
  REQUIRE(won);
  const uint64_t first = current.epoch;
  REQUIRE_OK(a->Resign());
  REQUIRE_OK(b->Current(&current));
  CHECK(current.expires_in_ms < 0);
  REQUIRE_OK(b->Campaign(Me("b"), 30s, &won, &current));
  CHECK(won);
  CHECK(current.epoch > first);
  CHECK(a->Renew(30s, &current).code() == Status::Code::kFailedPrecondition);
  CHECK(current.holder == "b");
}

TEST_CASE("Election: an epoch is never handed out twice, even after the row went back in time",
          "[unit][election]") {
  TestDb db(Engine::kPostgres);
  auto a = OpenPg(db);
  Leader current;
  bool won = false;
  REQUIRE_OK(a->Campaign(Me("a"), -1s, &won, &current));
  const uint64_t given = current.epoch;
  // A backup from before: the row holds a small epoch again.
  db.Exec("UPDATE leadership SET epoch = 3");
  auto b = OpenPg(db);
  REQUIRE_OK(b->Campaign(Me("b"), 30s, &won, &current));
  REQUIRE(won);
  CHECK(current.epoch > given);
}

TEST_CASE("Election: a store without a lease commits unfenced, as the only coordinator", "[unit][election]") {
  TestDb db(Engine::kPostgres);
  auto a = OpenPg(db);
  REQUIRE_OK(a->Commit({Group(1)}));
  CHECK(db.Count("leadership") == 0);
  Leader current;
  CHECK(a->Renew(30s, &current).code() == Status::Code::kFailedPrecondition);
  CHECK_FALSE(a->deposed());
}

TEST_CASE("PostgresStore: a restarted server is reconnected to, one that is down fails calls with Unavailable",
          "[unit][store]") {
  std::unique_ptr<testing::PgServer> server;
  std::string error;
  INFO(error);
  REQUIRE(testing::PgServer::Start(&server, &error));
  REQUIRE(server->CreateDatabase("restart", &error));
  std::unique_ptr<PostgresStore> store;
  REQUIRE_OK(PostgresStore::Open(server->ConnInfo("restart"), &store));
  REQUIRE_OK(store->Commit({Group(1)}));
  // The server's goodbye to the idle connection is noticed before the next
  // batch, which goes whole on a new connection.
  REQUIRE(server->Restart(&error));
  REQUIRE_OK(store->Commit({Group(2)}));
  LoadedState state;
  REQUIRE_OK(store->Load(&state));
  CHECK(state.groups.size() == 2);

  server->Kill();
  CHECK(store->Commit({Group(3)}).code() == Status::Code::kUnavailable);
  CHECK(store->Load(&state).code() == Status::Code::kUnavailable);
  REQUIRE(server->StartAgain(&error));
  REQUIRE_OK(store->Commit({Group(3)}));
}

TEST_CASE("PostgresStore: a password on the command line is refused, naming where it belongs", "[unit][store]") {
  CHECK(PostgresStore::CheckConnInfo("postgresql://cohort@db.example/cohort").ok());
  Status s = PostgresStore::CheckConnInfo("postgresql://cohort:hunter2@db.example/cohort");
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("PGPASSFILE") && !Catch::Contains("hunter2"));
  CHECK(PostgresStore::CheckConnInfo("postgresql://db.example/cohort?password=x").code() ==
        Status::Code::kInvalidArgument);
  CHECK(PostgresStore::CheckConnInfo("postgresql://[broken").code() == Status::Code::kInvalidArgument);
  CHECK(PostgresStore::IsConnInfo("postgres://h/db"));
  CHECK_FALSE(PostgresStore::IsConnInfo("sqlite"));
}

TEST_CASE("PostgresStore: an unreachable server is Unavailable, naming what to check", "[unit][store]") {
  std::unique_ptr<PostgresStore> store;
  Status s = PostgresStore::Open("postgresql://cohort@%2Fnonexistent-dir:1/x", &store);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("cannot connect to PostgreSQL") && Catch::Contains("--store"));
  CHECK_FALSE(store);
}

}  // namespace
}  // namespace cohort
