// SqliteDb is one open SQLite connection, and Statement one statement
// prepared on it: thin owners of the C handles that turn every SQLite result
// code into a common::Status naming the database file and what to do about
// it (a damaged file, a full disk, a busy or unwritable one). They know
// nothing of cohort's records; SqliteStore builds on them.
//
// Statements bind their parameters by the names $1, $2, ... (the spelling
// store_schema.h uses), so a parameter may appear more than once or out of
// order in the SQL.
//
// Thread contract: not thread-safe; the connection is opened in SQLite's
// no-mutex mode, so its owner and the owner's statements stay on one thread.
// A Statement must not outlive the SqliteDb it was prepared on.
#ifndef COHORT_COORDINATOR_SQLITE_DB_H_
#define COHORT_COORDINATOR_SQLITE_DB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cohort::coordinator {

class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return stmt_ != nullptr; }

  // Binds parameter $n. A name the SQL does not use is ignored, so one
  // binding routine may serve statements that read fewer fields.
  void BindInt(int n, int64_t value);
  void BindText(int n, std::string_view value);
  void BindBytes(int n, std::string_view value);  // a BLOB, even when empty
  void BindNull(int n);

  // sqlite3_step: SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step();
  // Ready for the next use: no bindings, not stepping.
  void Reset();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  std::string Text(int column) const;
  std::string Bytes(int column) const;

 private:
  friend class SqliteDb;
  sqlite3_stmt* stmt_ = nullptr;
  std::vector<int> index_;  // index_[n]: the position of $n, 0 when unused
};

class SqliteDb {
 public:
  // Opens (creating if missing) the database at `path` for reading and
  // writing. SQLite reads the file lazily: a damaged one is reported by the
  // first statement, not here.
  static common::Status Open(const std::string& path, std::unique_ptr<SqliteDb>* out);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  common::Status Prepare(std::string_view sql, Statement* out);
  // The same, with `doing` (e.g. "reading the schema version") for its error.
  common::Status Prepare(std::string_view sql, std::string_view doing, Statement* out);
  // Runs a statement to its end (rows, if any, are dropped) and resets it.
  common::Status Run(Statement* statement, std::string_view doing);
  // Prepares, runs and finalizes one statement.
  common::Status Exec(std::string_view sql, std::string_view doing);
  // The first column of the first row, as text ("" when there is no row).
  common::Status QueryText(std::string_view sql, std::string_view doing, std::string* out);

  // The Status for SQLite result `rc` met while `doing` (e.g. "reading the
  // schema version"), with SQLite's own message.
  common::Status Error(int rc, std::string_view doing) const;

  // Rows the last INSERT, UPDATE or DELETE changed.
  int64_t Changes() const;
  bool InTransaction() const;
  const std::string& path() const { return path_; }
  // The connection itself, for what SQLite offers only on it (a WAL hook).
  sqlite3* handle() const { return db_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SQLITE_DB_H_
