// SqliteStore is the Store kept in one SQLite file, STATE_DIR/cohort.db, in
// WAL mode, on the schema and statements of store_schema.h. It owns the
// state directory while open: an exclusive flock on STATE_DIR/lock (holding
// the owner's pid) keeps a second coordinator off the same files, and is
// given up when the store is destroyed.
//
// Open brings an older database up to the current schema version and
// refuses a newer one, a damaged one, and a directory it cannot write, each
// with a message that names the file and what to do: it never starts empty
// in place of state it could not read.
//
// Commit is one BEGIN IMMEDIATE ... COMMIT over prepared statements kept for
// the store's life; any failure rolls the whole batch back. The WAL is
// checkpointed by a WalCheckpointer on a thread of the store's own, so a
// commit does not wait for the fsyncs of copying the log into the file.
//
// Thread contract: not thread-safe (see Store); one event loop owns it.
#ifndef COHORT_COORDINATOR_SQLITE_STORE_H_
#define COHORT_COORDINATOR_SQLITE_STORE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "common/state_dir.h"
#include "common/status.h"
#include "coordinator/sqlite_checkpointer.h"
#include "coordinator/sqlite_db.h"
#include "coordinator/store.h"
#include "coordinator/store_plan.h"
#include "coordinator/store_schema.h"

namespace cohort::coordinator {

enum class SyncMode {
  kNormal,  // a commit survives the process crashing, not the machine losing power
  kFull,    // a commit is on disk before Commit returns: survives power loss too
};

class SqliteStore : public Store {
 public:
  // Creates `state_dir` (mode 0700) if missing; its parent must exist.
  static common::Status Open(const std::string& state_dir, SyncMode sync, std::unique_ptr<Store>* out);
  ~SqliteStore() override;

  common::Status Commit(const std::vector<Record>& batch) override;
  common::Status Load(LoadedState* out) override;
  common::Status LoadGroup(uint64_t submission, LoadedGroup* out) override;
  common::Status LoadOutput(uint64_t submission, uint32_t step, uint32_t attempt, std::string* stdout_tail,
                            std::string* stderr_tail) override;

  // Caps the database at about `bytes` (0: no cap); a Commit that would
  // grow it past the cap fails as a full disk would. An operator's quota,
  // and how tests fill the disk.
  common::Status LimitSize(uint64_t bytes);

  const std::string& db_path() const { return db_->path(); }

 private:
  SqliteStore(common::StateDirLock lock, std::unique_ptr<SqliteDb> db) : lock_(std::move(lock)), db_(std::move(db)) {}

  common::Status Configure(SyncMode sync);
  common::Status Migrate();
  common::Status RunMigration(int version);
  common::Status PrepareAll();
  common::Status Rollback(common::Status cause);
  Statement& Sql(schema::Dml which) { return statements_[static_cast<int>(which)]; }

  // One statement of a batch's plan, inside the open transaction
  // (sqlite_store_records.cc).
  common::Status Run(const schema::Op& op);
  // The load statements' rows, for the shared loader (sqlite_store_records.cc).
  class Rows;

  common::StateDirLock lock_;  // released only after the database is closed (see the destructor)
  std::unique_ptr<WalCheckpointer> checkpointer_;
  std::unique_ptr<SqliteDb> db_;
  std::array<Statement, schema::kDmlCount> statements_;
  Statement begin_, commit_, rollback_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SQLITE_STORE_H_
