#include "tests/unit/store_test_util.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>

#include "coordinator/pg_conn.h"
#include "coordinator/postgres_store.h"
#include "tests/pg_server.h"

namespace cohort::testing {

namespace {

PgServer& Server() {
  std::string error;
  PgServer* server = PgServer::Shared(&error);
  INFO(error);
  REQUIRE(server != nullptr);
  return *server;
}

// Runs `sql` on the test's own connection; rows, if any, are returned as
// the first column of the first row.
std::string PgExec(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  INFO(PQerrorMessage(conn));
  REQUIRE(PQstatus(conn) == CONNECTION_OK);
  PGresult* r = PQexec(conn, ("SET session_replication_role = replica; " + sql).c_str());
  const auto status = PQresultStatus(r);
  std::string error = PQresultErrorMessage(r);
  std::string first = status == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  PQfinish(conn);
  INFO(sql << ": " << error);
  REQUIRE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK));
  return first;
}

std::string SqliteExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  std::string first;
  char* err = nullptr;
  int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int, char** values, char**) {
        auto* s = static_cast<std::string*>(out);
        if (s->empty() && values[0]) *s = values[0];
        return 0;
      },
      &first, &err);
  INFO(sql << ": " << (err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
  return first;
}

}  // namespace

TestDb::TestDb(Engine engine) : engine_(engine) {
  if (engine_ == Engine::kSqlite) return;
  static std::atomic<int> next{0};
  const std::string name = "store_" + std::to_string(::getpid()) + "_" + std::to_string(next++);
  std::string error;
  INFO(error);
  REQUIRE(Server().CreateDatabase(name, &error));
  conninfo_ = Server().ConnInfo(name);
}

TestDb::~TestDb() = default;

std::unique_ptr<coordinator::Store> TestDb::Open() const {
  if (engine_ == Engine::kSqlite) return OpenOk(dir_.path);
  std::unique_ptr<coordinator::PostgresStore> store;
  REQUIRE_OK(coordinator::PostgresStore::Open(conninfo_, &store));
  REQUIRE(store);
  return store;
}

common::Status TestDb::TryOpen(std::unique_ptr<coordinator::Store>* out) const {
  if (engine_ == Engine::kSqlite) return coordinator::SqliteStore::Open(dir_.path, coordinator::SyncMode::kNormal, out);
  std::unique_ptr<coordinator::PostgresStore> store;
  common::Status s = coordinator::PostgresStore::Open(conninfo_, &store);
  if (s.ok()) *out = std::move(store);
  return s;
}

std::string TestDb::where() const {
  if (engine_ == Engine::kSqlite) return dir_.path + "/cohort.db";
  std::unique_ptr<coordinator::PgConn> conn;
  REQUIRE_OK(coordinator::PgConn::Connect(conninfo_, &conn));
  return "PostgreSQL " + conn->name();
}

void TestDb::Exec(const std::string& sql) const {
  if (engine_ == Engine::kSqlite) {
    SqliteExec(dir_.path + "/cohort.db", "PRAGMA foreign_keys = OFF; " + sql);
  } else {
    PgExec(conninfo_, sql);
  }
}

int64_t TestDb::Count(const std::string& table_and_condition) const {
  const std::string sql = "SELECT COUNT(*) FROM " + table_and_condition;
  const std::string n =
      engine_ == Engine::kSqlite ? SqliteExec(dir_.path + "/cohort.db", sql) : PgExec(conninfo_, sql);
  return std::stoll(n);
}

}  // namespace cohort::testing
