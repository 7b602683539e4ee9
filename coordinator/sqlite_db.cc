#include "coordinator/sqlite_db.h"

#include <sqlite3.h>

#include <cstring>
#include <utility>

namespace cohort::coordinator {

using common::Status;

// ---- Statement -----------------------------------------------------------------

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), index_(std::move(other.index_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    index_ = std::move(other.index_);
  }
  return *this;
}

void Statement::BindInt(int n, int64_t value) {
  if (n < static_cast<int>(index_.size()) && index_[n] > 0) sqlite3_bind_int64(stmt_, index_[n], value);
}

void Statement::BindText(int n, std::string_view value) {
  if (n < static_cast<int>(index_.size()) && index_[n] > 0) {
    sqlite3_bind_text64(stmt_, index_[n], value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
}

void Statement::BindBytes(int n, std::string_view value) {
  if (n < static_cast<int>(index_.size()) && index_[n] > 0) {
    // A null pointer would bind NULL; an empty tail is an empty BLOB.
    static const char kEmpty = 0;
    sqlite3_bind_blob64(stmt_, index_[n], value.empty() ? &kEmpty : value.data(), value.size(),
                        SQLITE_TRANSIENT);
  }
}

void Statement::BindNull(int n) {
  if (n < static_cast<int>(index_.size()) && index_[n] > 0) sqlite3_bind_null(stmt_, index_[n]);
}

int Statement::Step() { return sqlite3_step(stmt_); }

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::Text(int column) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, column)) : std::string();
}

std::string Statement::Bytes(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, column)) : std::string();
}

// ---- SqliteDb ------------------------------------------------------------------

Status SqliteDb::Open(const std::string& path, std::unique_ptr<SqliteDb>* out) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (db == nullptr) return Status::IoError(path + ": cannot open: out of memory");
  std::unique_ptr<SqliteDb> opened(new SqliteDb(db, path));
  if (rc != SQLITE_OK) return opened->Error(rc, "opening it");
  sqlite3_extended_result_codes(db, 1);
  *out = std::move(opened);
  return Status::Ok();
}

// close_v2: a statement still alive (an owner destroyed out of order) makes
// the close wait for its finalize rather than fail.
SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Prepare(std::string_view sql, Statement* out) {
  return Prepare(sql, "preparing \"" + std::string(sql.substr(0, 60)) + "...\"", out);
}

Status SqliteDb::Prepare(std::string_view sql, std::string_view doing, Statement* out) {
  Statement s;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &s.stmt_, &tail);
  if (rc != SQLITE_OK) return Error(rc, doing);
  // One statement per Prepare: SQLite would silently skip the rest.
  for (; tail != nullptr && tail < sql.data() + sql.size(); ++tail) {
    if (*tail != ' ' && *tail != '\n' && *tail != '\t' && *tail != ';') {
      return Status::InvalidArgument(std::string(doing) + ": more than one statement");
    }
  }
  const int count = sqlite3_bind_parameter_count(s.stmt_);
  s.index_.assign(count + 1, 0);
  for (int n = 1; n <= count; ++n) {
    std::string name = "$" + std::to_string(n);
    s.index_[n] = sqlite3_bind_parameter_index(s.stmt_, name.c_str());
  }
  *out = std::move(s);
  return Status::Ok();
}

Status SqliteDb::Run(Statement* statement, std::string_view doing) {
  int rc = SQLITE_OK;
  do {
    rc = statement->Step();
  } while (rc == SQLITE_ROW);
  Status s = rc == SQLITE_DONE ? Status::Ok() : Error(rc, doing);
  statement->Reset();
  return s;
}

Status SqliteDb::Exec(std::string_view sql, std::string_view doing) {
  Statement s;
  Status st = Prepare(sql, doing, &s);
  if (!st.ok()) return st;
  return Run(&s, doing);
}

Status SqliteDb::QueryText(std::string_view sql, std::string_view doing, std::string* out) {
  Statement s;
  Status st = Prepare(sql, doing, &s);
  if (!st.ok()) return st;
  int rc = s.Step();
  if (rc == SQLITE_ROW) {
    *out = s.Text(0);
  } else if (rc == SQLITE_DONE) {
    out->clear();
  } else {
    return Error(rc, doing);
  }
  s.Reset();
  return Status::Ok();
}

Status SqliteDb::Error(int rc, std::string_view doing) const {
  std::string what = std::string(doing) + ": " + sqlite3_errstr(rc);
  const char* detail = sqlite3_errmsg(db_);
  if (detail && std::strcmp(detail, sqlite3_errstr(rc)) != 0) what += std::string(" (") + detail + ")";
  const int primary = rc & 0xff;
  const int sys = sqlite3_system_errno(db_);
  if (sys != 0 && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL)) {
    what += std::string(": ") + std::strerror(sys);
  }
  switch (primary) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::Corruption(path_ + " is not a cohort state database or is damaged (" + what +
                                "); restore it from a backup (docs/OPERATIONS.md) or move it away");
    case SQLITE_FULL:
      return Status::Unavailable(path_ + ": " + what +
                                 " (disk full, or the database at its size limit): free space on its filesystem");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(path_ + ": " + what + "; another program (sqlite3?) holds the database");
    case SQLITE_CONSTRAINT:
      return Status::FailedPrecondition(what);
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return Status::InvalidArgument(what);
    default:
      return Status::IoError(path_ + ": " + what);
  }
}

int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

bool SqliteDb::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

}  // namespace cohort::coordinator
