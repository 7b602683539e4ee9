// What the state store's tests share: opening a store on a real engine
// (a SQLite file in a temporary directory, or a fresh database on the test
// binary's own PostgreSQL server), the test's own SQL on the same data, and
// requiring a Status to be OK with its message in the failure.
#ifndef COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_
#define COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "common/status.h"
#include "coordinator/sqlite_store.h"
#include "coordinator/store.h"
#include "tests/unit/temp_dir.h"

#define REQUIRE_OK(expr)                  \
  do {                                    \
    const ::cohort::common::Status s_ = (expr); \
    INFO(s_.ToString());                  \
    REQUIRE(s_.ok());                     \
  } while (0)

namespace cohort::testing {

inline std::unique_ptr<coordinator::Store> OpenOk(const std::string& dir,
                                                  coordinator::SyncMode sync = coordinator::SyncMode::kNormal) {
  std::unique_ptr<coordinator::Store> store;
  REQUIRE_OK(coordinator::SqliteStore::Open(dir, sync, &store));
  REQUIRE(store);
  return store;
}

enum class Engine { kSqlite, kPostgres };

// One empty database of one engine, for one test (store_test_util.cc).
class TestDb {
 public:
  explicit TestDb(Engine engine);
  ~TestDb();
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;

  Engine engine() const { return engine_; }
  const char* engine_name() const { return engine_ == Engine::kSqlite ? "sqlite" : "postgresql"; }
  // The store on it, opened anew each call.
  std::unique_ptr<coordinator::Store> Open() const;
  common::Status TryOpen(std::unique_ptr<coordinator::Store>* out) const;
  // How the store names the database in its messages.
  std::string where() const;
  // The test's own SQL, as a hand edit would run it: foreign keys are not
  // enforced (SQLite's sqlite3 default; a replica role in PostgreSQL).
  void Exec(const std::string& sql) const;
  // SELECT COUNT(*) FROM `table_and_condition`.
  int64_t Count(const std::string& table_and_condition) const;
  // The word each engine's refusal of a duplicate key contains.
  const char* unique_word() const { return engine_ == Engine::kSqlite ? "UNIQUE" : "unique constraint"; }
  // The PostgreSQL connection string ("" for SQLite).
  const std::string& conninfo() const { return conninfo_; }
  const std::string& dir() const { return dir_.path; }

 private:
  Engine engine_;
  TempDir dir_;
  std::string conninfo_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_
