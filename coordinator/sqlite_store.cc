// SqliteStore: opening the state directory, the schema migrations and the
// transaction around a batch. The records themselves are applied and loaded
// in sqlite_store_records.cc.
#include "coordinator/sqlite_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace cohort::coordinator {

using common::Status;
using schema::Dialect;
using schema::Dml;

namespace {

constexpr char kDbName[] = "cohort.db";
// Only another program (a person with sqlite3) can hold the database
// against us, since the flock keeps other coordinators out: wait a little.
constexpr int kBusyTimeoutMs = 5000;

std::string Errno(int err) { return std::strerror(err); }

// Specs and output tails may hold secrets: the database is the owner's
// alone (SQLite gives its -wal and -shm files the same mode). An existing
// file keeps the mode it has.
Status CreatePrivate(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + Errno(errno));
  ::close(fd);
  return Status::Ok();
}

}  // namespace

Status SqliteStore::Open(const std::string& state_dir, SyncMode sync, std::unique_ptr<Store>* out) {
  Status s = common::MakeStateDir(state_dir, "cohort-coordinator");
  if (!s.ok()) return s;
  common::StateDirLock lock;
  s = common::StateDirLock::Take(state_dir, "cohort-coordinator", &lock);
  if (!s.ok()) return s;
  std::unique_ptr<SqliteDb> db;
  s = CreatePrivate(state_dir + "/" + kDbName);
  if (s.ok()) s = SqliteDb::Open(state_dir + "/" + kDbName, &db);
  if (!s.ok()) return s;
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(lock), std::move(db)));
  s = store->Configure(sync);
  if (s.ok()) s = store->Migrate();
  if (s.ok()) s = store->PrepareAll();
  if (s.ok()) s = WalCheckpointer::Attach(store->db_->handle(), store->db_->path(), &store->checkpointer_);
  if (!s.ok()) return s;
  *out = std::move(store);
  return Status::Ok();
}

SqliteStore::~SqliteStore() {
  // Statements first (a connection with live statements cannot close), then
  // the database (checkpointing the WAL), and only then the lock, so the
  // next coordinator never meets a file we are still writing.
  checkpointer_.reset();  // its thread reads the database: gone before the close
  for (Statement& s : statements_) s = Statement();
  begin_ = Statement();
  commit_ = Statement();
  rollback_ = Statement();
  db_.reset();
  lock_.Release();
}

Status SqliteStore::Configure(SyncMode sync) {
  // The first statement reads the file: a damaged one fails here.
  std::string mode;
  Status s = db_->QueryText("PRAGMA journal_mode = WAL", "switching to WAL mode", &mode);
  if (!s.ok()) return s;
  if (mode != "wal") {
    return Status::IoError(db_->path() + ": SQLite cannot use WAL mode there (journal mode \"" + mode +
                           "\"); put --state-dir on a local filesystem");
  }
  const std::string pragmas[] = {
      sync == SyncMode::kFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
      "PRAGMA foreign_keys = ON",
      "PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs),
  };
  for (const std::string& pragma : pragmas) {
    s = db_->Exec(pragma, pragma);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// All pending migrations run in one transaction with the version update: a
// crash midway leaves the old version, intact.
Status SqliteStore::Migrate() {
  Status s = db_->Exec("BEGIN IMMEDIATE", "starting the schema upgrade");
  if (!s.ok()) return s;
  std::string found;
  s = db_->Exec(schema::kCreateVersionTable, "creating the schema_version table");
  if (s.ok()) s = db_->QueryText(schema::kSelectVersion, "reading the schema version", &found);
  int64_t version = found.empty() ? 0 : std::strtoll(found.c_str(), nullptr, 10);
  std::string other_tables;
  if (s.ok() && version == 0) {
    // A database someone else made is not ours to add tables to.
    s = db_->QueryText("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'schema_version'",
                       "reading the table list", &other_tables);
  }
  if (s.ok() && !other_tables.empty()) {
    s = Status::Corruption(db_->path() + " is not a cohort state database (it has a table \"" + other_tables +
                           "\" and no schema version); move it away, or start with another --state-dir");
  } else if (s.ok() && version < 0) {
    s = Status::Corruption(db_->path() + " is damaged: schema version " + found +
                           "; restore it from a backup (docs/OPERATIONS.md) or move it away");
  } else if (s.ok() && version > schema::SupportedVersion()) {
    s = Status::FailedPrecondition(schema::NewerVersionMessage(db_->path(), version, "start with another --state-dir"));
  }
  for (int v = static_cast<int>(version) + 1; s.ok() && v <= schema::SupportedVersion(); ++v) {
    s = RunMigration(v);
  }
  if (s.ok()) s = db_->Exec("COMMIT", "committing the schema upgrade");
  if (!s.ok() && db_->InTransaction()) {
    // The upgrade's own error is the one to report; a failed rollback leaves
    // the transaction to be rolled back when the connection closes.
    db_->Exec("ROLLBACK", "rolling back the schema upgrade").IgnoreError();
  }
  return s;
}

Status SqliteStore::RunMigration(int version) {
  const std::string doing = "upgrading the schema to version " + std::to_string(version);
  for (std::string_view sql : schema::Migrations()[version - 1]) {
    const std::string statement = schema::ForDialect(sql, Dialect::kSqlite);
    if (statement.empty()) continue;
    Status s = db_->Exec(statement, doing);
    if (!s.ok()) return s;
  }
  Status s = db_->Exec(schema::kDeleteVersion, doing);
  if (!s.ok()) return s;
  Statement insert;
  s = db_->Prepare(schema::kInsertVersion, &insert);
  if (!s.ok()) return s;
  insert.BindInt(1, version);
  return db_->Run(&insert, doing);
}

Status SqliteStore::PrepareAll() {
  for (int i = 0; i < schema::kDmlCount; ++i) {
    Status s = db_->Prepare(schema::ForDialect(schema::DmlText(static_cast<Dml>(i)), Dialect::kSqlite),
                            &statements_[i]);
    if (!s.ok()) return s;
  }
  // IMMEDIATE: take the write lock at BEGIN, so a busy database fails the
  // batch before any record is applied rather than at COMMIT.
  Status s = db_->Prepare("BEGIN IMMEDIATE", &begin_);
  if (s.ok()) s = db_->Prepare("COMMIT", &commit_);
  if (s.ok()) s = db_->Prepare("ROLLBACK", &rollback_);
  return s;
}

Status SqliteStore::Commit(const std::vector<Record>& batch) {
  if (batch.empty()) return Status::Ok();
  for (const Record& r : batch) {
    Status s = schema::CheckRecord(r);
    if (!s.ok()) return s;
  }
  Status s = db_->Run(&begin_, "beginning a transaction");
  if (!s.ok()) return s;
  for (const schema::Op& op : schema::PlanBatch(batch)) {
    s = Run(op);
    if (!s.ok()) return Rollback(schema::RecordError(batch, op.record, s));
  }
  s = db_->Run(&commit_, "committing a batch of " + std::to_string(batch.size()) + " records");
  return s.ok() ? s : Rollback(s);
}

// SQLite rolls some failures (a full disk among them) back on its own;
// otherwise the transaction is still open and is rolled back here.
Status SqliteStore::Rollback(Status cause) {
  std::string message = cause.message() + "; nothing of the batch was written";
  if (db_->InTransaction()) {
    Status s = db_->Run(&rollback_, "rolling back");
    if (!s.ok()) message += " (but the rollback failed too: " + s.message() + ")";
  }
  return Status::FromCode(cause.code(), std::move(message));
}

Status SqliteStore::LimitSize(uint64_t bytes) {
  std::string page_size;
  Status s = db_->QueryText("PRAGMA page_size", "reading the page size", &page_size);
  if (!s.ok()) return s;
  const uint64_t page = std::strtoull(page_size.c_str(), nullptr, 10);
  // SQLite's own ceiling in 3.40 (SQLITE_MAX_PAGE_COUNT): no cap.
  uint64_t pages = 1073741823;
  if (bytes > 0 && page > 0 && bytes / page < pages) pages = bytes / page;
  std::string now;
  return db_->QueryText("PRAGMA max_page_count = " + std::to_string(pages), "limiting the size", &now);
}

}  // namespace cohort::coordinator
