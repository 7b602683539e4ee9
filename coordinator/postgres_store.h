// PostgresStore is the Store kept in a PostgreSQL database (15 or later),
// on the same schema, migrations and statements as SqliteStore
// (store_schema.h), so several coordinators can share it: it is also the
// Election among them (leadership.h), and once it has won the lease every
// Commit is fenced by the epoch.
//
// Open connects with a libpq connection string or postgresql:// URI (the
// password from PGPASSWORD or PGPASSFILE, never the command line), brings
// the schema up to date under an advisory lock (two coordinators starting at
// once migrate one after the other) and refuses a newer schema, a database
// not in UTF8, and tables that are not cohort's, naming what to do.
//
// Commit is group commit as in SqliteStore, in one round trip: BEGIN, the
// epoch fence, the batch's statements (postgres_bulk.h) and COMMIT go in
// one pipeline, each write checked on the server. StartCommit and
// FinishCommit split it, so the coordinator's loop goes on while the
// database works. A connection that broke
// (the server restarted) fails with Unavailable and is made again on the
// next call, so the caller's retry goes on where it left off.
//
// Thread contract: not thread-safe (see Store); one event loop owns it.
#ifndef COHORT_COORDINATOR_POSTGRES_STORE_H_
#define COHORT_COORDINATOR_POSTGRES_STORE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "coordinator/leadership.h"
#include "coordinator/pg_conn.h"
#include "coordinator/store.h"
#include "coordinator/store_plan.h"
#include "coordinator/store_schema.h"

namespace cohort::coordinator {

class PostgresStore : public Store, public Election {
 public:
  static common::Status Open(const std::string& conninfo, std::unique_ptr<PostgresStore>* out);
  // InvalidArgument when `conninfo` cannot be parsed or holds a password
  // (which belongs in PGPASSFILE or the environment, not on a command line
  // every local user can read).
  static common::Status CheckConnInfo(const std::string& conninfo);
  // Whether --store names PostgreSQL: a postgresql:// or postgres:// URI.
  static bool IsConnInfo(const std::string& store);
  ~PostgresStore() override;

  common::Status Commit(const std::vector<Record>& batch) override;
  common::Status Load(LoadedState* out) override;
  common::Status LoadGroup(uint64_t submission, LoadedGroup* out) override;
  common::Status LoadOutput(uint64_t submission, uint32_t step, uint32_t attempt, std::string* stdout_tail,
                            std::string* stderr_tail) override;
  bool pipelined() const override { return true; }
  common::Status StartCommit(const std::vector<Record>& batch) override;
  common::Status FinishCommit(const std::vector<Record>& batch, bool* done) override;
  int fd() const override;

  common::Status Campaign(const Leader& me, common::Duration lease, bool* won, Leader* current) override;
  common::Status Renew(common::Duration lease, Leader* current) override;
  common::Status Resign() override;
  common::Status Current(Leader* out) override;
  bool deposed() const override { return deposed_; }

  // "database cohort on /run/postgresql:5432", for the log.
  const std::string& where() const { return where_; }

 private:
  explicit PostgresStore(std::string conninfo);

  // Connects (again, after a break) and prepares every statement.
  common::Status Connect();
  // A connection that works, made again if it broke.
  common::Status Ready();
  common::Status Migrate();
  common::Status CheckDatabase();
  // Runs the migrations from `version` up, inside Migrate's transaction.
  common::Status RunMigrations(int64_t version);
  // One statement of a batch's pipeline: a record's own (`op`), or a bulk
  // statement over several (op null; postgres_bulk.h).
  struct Step {
    const std::string* statement;
    const std::vector<schema::Param>* params;
    const schema::Op* op;
  };
  struct Batch;
  static Step SingleStep(const schema::Op& op);
  // What every batch passes before it is sent: not deposed, valid records,
  // a working connection.
  common::Status Check(const std::vector<Record>& batch);
  // Lays out the pipeline: bulk statements where they fit, or (`exact`)
  // record by record in batch order.
  void Lay(const std::vector<Record>& batch, bool exact, Batch* b);
  // Sends `b` and waits for its answers. *exact: a bulk statement failed,
  // and the batch should go again record by record.
  common::Status RunBatch(const std::vector<Record>& batch, Batch* b, bool* exact);
  // RunBatch, and again record by record when a bulk check failed.
  common::Status RunLaid(const std::vector<Record>& batch, Batch* b);
  // A failed pipeline's Status, naming the record at fault.
  common::Status Outcome(const std::vector<Record>& batch, const Batch& b, common::Status s, size_t failed,
                         bool* exact);
  // Ends an open transaction with ROLLBACK, keeping `cause` as the error.
  common::Status Rollback(common::Status cause);
  // The fence failed: who took over, for the message.
  common::Status Deposed(const std::string& doing);
  common::Status ReadLeader(const PgResult& r, Leader* out) const;

  class Rows;

  std::string conninfo_;
  std::string where_;
  std::unique_ptr<PgConn> conn_;
  std::array<int, schema::kDmlCount> params_{};  // parameters each statement takes
  std::optional<uint64_t> epoch_;  // won by Campaign: every Commit is fenced by it
  common::Duration lease_{};       // as won, for the renewals during a long load
  bool deposed_ = false;
  std::unique_ptr<Batch> pending_;           // a started commit
  std::optional<common::Status> finished_;  // its outcome, when it was done at once
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_POSTGRES_STORE_H_
