// PostgresStore: connecting, the schema, the fenced group commit and the
// loads. The lease statements are in postgres_election.cc.
#include "coordinator/postgres_store.h"

#include <libpq-fe.h>

#include "coordinator/postgres_bulk.h"
#include "coordinator/store_loader.h"
#include "coordinator/store_plan.h"

namespace cohort::coordinator {

using common::Status;
using schema::Dialect;
using schema::Dml;
using schema::Param;

namespace {

// Serializes schema upgrades between coordinators starting at once; any
// constant of cohort's own ("cohort" in ASCII) would do.
constexpr char kMigrationLock[] = "SELECT pg_advisory_xact_lock(111542068810356)";

// The names the statements are prepared under: each of store_schema.h's,
// each again checked by the server (see Checked), and the bulk ones.
struct Names {
  std::array<std::string, schema::kDmlCount> plain, checked;
  std::array<std::string, bulk::kKinds> bulk;
};

const Names& StatementNames() {
  static const Names kNames = [] {
    Names n;
    for (int i = 0; i < schema::kDmlCount; ++i) {
      n.plain[i] = "cohort_" + std::to_string(i);
      n.checked[i] = "cohort_checked_" + std::to_string(i);
    }
    for (int k = 0; k < bulk::kKinds; ++k) n.bulk[k] = "cohort_bulk_" + std::to_string(k);
    return n;
  }();
  return kNames;
}
const std::string& StatementName(int i) { return StatementNames().plain[i]; }
const std::string& CheckedName(int i) { return StatementNames().checked[i]; }
const std::string& BulkName(int k) { return StatementNames().bulk[k]; }

// A checked statement fails (division by zero, SQLSTATE 22012) when its
// write changes no row, and so aborts the batch's transaction, which the
// pipeline's COMMIT then never commits. So a batch is one round trip, with
// no row counts to read in between.
constexpr char kNoRowChanged[] = "22012";

std::string Checked(std::string_view write) {
  return "WITH changed AS (" + std::string(write) + " RETURNING 1) SELECT 1 / COUNT(*) FROM changed";
}

// The statements a batch's plan may require to change a row.
bool IsWrite(Dml which) {
  return static_cast<int>(which) <= static_cast<int>(Dml::kForgetGroup) && which != Dml::kSelectMaxSubmission;
}

const std::string kBegin = "cohort_begin";
const std::string kCommit = "cohort_commit";
const std::string kFence = "cohort_fence";
// The fence locks the leadership row until the batch commits: a takeover
// waits for it, and a batch after a takeover finds another epoch.
constexpr char kFenceSql[] = "UPDATE leadership SET epoch = epoch WHERE name = 'leader' AND epoch = $1";

class PgRow : public schema::Row {
 public:
  explicit PgRow(const PgResult& r) : r_(r) {}
  bool IsNull(int column) const override { return r_.IsNull(0, column); }
  int64_t Int(int column) const override { return r_.Int(0, column); }
  std::string Text(int column) const override { return r_.Bytes(0, column); }
  std::string Bytes(int column) const override { return r_.Bytes(0, column); }

 private:
  const PgResult& r_;
};

}  // namespace

class PostgresStore::Rows : public schema::RowSource {
 public:
  // `renew`: renew the lease after each table (a restore's long load).
  explicit Rows(PostgresStore* store, bool renew = true) : store_(store), renew_(renew) {}

  Status ForEachRow(Dml which, uint64_t submission, const std::function<Status(const schema::Row&)>& fn) override {
    const int i = static_cast<int>(which);
    std::vector<Param> params;
    if (store_->params_[i] > 0) params.push_back(Param::Int(static_cast<int64_t>(submission)));
    PgConn::Call call{&StatementName(i), &params};
    Status s =
        store_->conn_->ForEachRow(call, "loading the state", [&fn](const PgResult& r) { return fn(PgRow(r)); });
    if (s.ok() && renew_ && store_->epoch_) {
      Leader current;
      s = store_->Renew(store_->lease_, &current);
    }
    return s;
  }

  std::string where() const override { return "PostgreSQL " + store_->where_; }

 private:
  PostgresStore* store_;
  bool renew_;
};

Status PostgresStore::Open(const std::string& conninfo, std::unique_ptr<PostgresStore>* out) {
  std::unique_ptr<PostgresStore> store(new PostgresStore(conninfo));
  Status s = PgConn::Connect(conninfo, &store->conn_);
  if (s.ok()) {
    store->where_ = store->conn_->name();
    s = store->CheckDatabase();
  }
  if (s.ok()) s = store->Migrate();
  if (s.ok()) s = store->Connect();
  if (!s.ok()) return s;
  *out = std::move(store);
  return Status::Ok();
}

PostgresStore::PostgresStore(std::string conninfo) : conninfo_(std::move(conninfo)) {}

PostgresStore::~PostgresStore() = default;

bool PostgresStore::IsConnInfo(const std::string& store) {
  return store.rfind("postgresql://", 0) == 0 || store.rfind("postgres://", 0) == 0;
}

Status PostgresStore::CheckConnInfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string why = error ? error : "out of memory";
    PQfreemem(error);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return Status::InvalidArgument("not a PostgreSQL connection string: " + why);
  }
  bool password = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val != nullptr && *o->val != '\0') password = true;
  }
  PQconninfoFree(options);
  if (password) {
    return Status::InvalidArgument(
        "the connection string holds a password, which every local user can read on a command line: put it in "
        "PGPASSFILE (or ~/.pgpass) or PGPASSWORD instead");
  }
  return Status::Ok();
}

Status PostgresStore::CheckDatabase() {
  PgResult r;
  Status s = conn_->Query("SELECT current_setting('server_version_num')::BIGINT,"
                          " pg_encoding_to_char(encoding)::TEXT FROM pg_database WHERE datname = current_database()",
                          {}, "checking the server", &r);
  if (!s.ok()) return s;
  if (r.rows() != 1) return Status::IoError("PostgreSQL " + where_ + ": cannot read the database's encoding");
  if (r.Int(0, 0) < 150000) {
    return Status::FailedPrecondition("PostgreSQL " + where_ + " is version " + std::to_string(r.Int(0, 0)) +
                                      "; cohort-coordinator needs PostgreSQL 15 or later");
  }
  if (r.Bytes(0, 1) != "UTF8") {
    return Status::FailedPrecondition("PostgreSQL " + where_ + " has encoding " + r.Bytes(0, 1) +
                                      "; create the database with ENCODING 'UTF8' (docs/OPERATIONS.md)");
  }
  return Status::Ok();
}

Status PostgresStore::Connect() {
  if (!conn_ || conn_->broken()) {
    conn_.reset();
    Status s = PgConn::Connect(conninfo_, &conn_);
    if (!s.ok()) return s;
  }
  int unused = 0;
  for (int i = 0; i < schema::kDmlCount; ++i) {
    const std::string sql = schema::ForDialect(schema::DmlText(static_cast<Dml>(i)), Dialect::kPostgres);
    Status s = conn_->Prepare(StatementName(i), sql, &params_[i]);
    if (s.ok() && IsWrite(static_cast<Dml>(i))) s = conn_->Prepare(CheckedName(i), Checked(sql), &unused);
    if (!s.ok()) return s;
  }
  for (int k = 0; k < bulk::kKinds; ++k) {
    Status s = conn_->Prepare(BulkName(k), bulk::Sql(static_cast<bulk::Kind>(k)), &unused);
    if (!s.ok()) return s;
  }
  Status s = conn_->Prepare(kBegin, "BEGIN", &unused);
  if (s.ok()) s = conn_->Prepare(kCommit, "COMMIT", &unused);
  if (s.ok()) s = conn_->Prepare(kFence, Checked(kFenceSql), &unused);
  return s;
}

Status PostgresStore::Ready() {
  if (conn_ && !conn_->broken()) return Status::Ok();
  Status s = Connect();
  if (!s.ok()) conn_.reset();
  return s;
}

// All pending migrations run in one transaction with the version update,
// as in SqliteStore: a crash midway leaves the old version, intact.
Status PostgresStore::Migrate() {
  Status s = conn_->Exec("BEGIN", "starting the schema upgrade");
  if (s.ok()) s = conn_->Exec(kMigrationLock, "waiting for another coordinator's schema upgrade");
  if (s.ok()) s = conn_->Exec(schema::kCreateVersionTable, "creating the schema_version table");
  PgResult version;
  if (s.ok()) s = conn_->Query(schema::kSelectVersion, {}, "reading the schema version", &version);
  int64_t found = version.rows() > 0 ? version.Int(0, 0) : 0;
  PgResult others;
  if (s.ok() && found == 0) {
    // A database someone else filled is not ours to add tables to.
    s = conn_->Query("SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()"
                     " AND table_name <> 'schema_version'",
                     {}, "reading the table list", &others);
  }
  if (s.ok() && others.rows() > 0) {
    s = Status::Corruption("PostgreSQL " + where_ + " is not a cohort state database (it has a table \"" +
                           others.Bytes(0, 0) + "\" and no schema version); give --store a database of cohort's own");
  } else if (s.ok() && found < 0) {
    s = Status::Corruption("PostgreSQL " + where_ + " is damaged: schema version " + std::to_string(found));
  } else if (s.ok() && found > schema::SupportedVersion()) {
    s = Status::FailedPrecondition(
        schema::NewerVersionMessage("PostgreSQL " + where_, found, "give --store another database"));
  }
  if (s.ok()) s = RunMigrations(found);
  if (s.ok()) s = conn_->Exec("COMMIT", "committing the schema upgrade");
  if (!s.ok()) conn_->Exec("ROLLBACK", "rolling back the schema upgrade").IgnoreError();
  return s;
}

Status PostgresStore::RunMigrations(int64_t version) {
  for (int v = static_cast<int>(version) + 1; v <= schema::SupportedVersion(); ++v) {
    const std::string doing = "upgrading the schema to version " + std::to_string(v);
    for (std::string_view sql : schema::Migrations()[v - 1]) {
      const std::string statement = schema::ForDialect(sql, Dialect::kPostgres);
      if (statement.empty()) continue;
      Status s = conn_->Exec(statement, doing);
      if (!s.ok()) return s;
    }
    PgResult r;
    Status s = conn_->Exec(schema::kDeleteVersion, doing);
    if (s.ok()) s = conn_->Query(schema::kInsertVersion, {std::to_string(v)}, doing, &r);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// A batch on its way: its plan, how its pipeline is laid out, and the
// parameters the calls point to. Never moved once laid out.
struct PostgresStore::Batch {
  std::vector<schema::Op> ops;
  bulk::Arranged arranged;
  std::vector<Step> steps;
  std::vector<Param> none, fence;
  std::vector<PgConn::Call> calls;
  size_t first = 0, commit = 0;  // where the steps begin, and the COMMIT
};

Status PostgresStore::Check(const std::vector<Record>& batch) {
  if (deposed_) return Deposed("committing");
  for (const Record& r : batch) {
    Status s = schema::CheckRecord(r);
    if (!s.ok()) return s;
  }
  // A server that shut down told the idle connection so: notice it now,
  // before the batch, while a new connection can still take it whole.
  if (conn_) conn_->Poll();
  return Ready();
}

void PostgresStore::Lay(const std::vector<Record>& batch, bool exact, Batch* b) {
  if (b->ops.empty()) {
    b->ops = schema::PlanBatch(batch);
    bulk::Arrange(batch, b->ops, &b->arranged);
  }
  b->steps.clear();
  if (exact) {
    // Record by record, in the batch's own order: to name the record a bulk
    // statement's check refused (or to write the batch, should the order
    // have mattered after all).
    for (const schema::Op& op : b->ops) b->steps.push_back(SingleStep(op));
  } else {
    for (const schema::Op* op : b->arranged.head) b->steps.push_back(SingleStep(*op));
    for (int k = 0; k < bulk::kKinds; ++k) {
      if (b->arranged.rows[k] > 0) b->steps.push_back({&BulkName(k), &b->arranged.params[k], nullptr});
    }
    for (const schema::Op* op : b->arranged.tail) b->steps.push_back(SingleStep(*op));
  }
  b->fence = {Param::Int(static_cast<int64_t>(epoch_.value_or(0)))};
  b->calls.clear();
  b->calls.push_back({&kBegin, &b->none});
  if (epoch_) b->calls.push_back({&kFence, &b->fence});
  b->first = b->calls.size();
  for (const Step& step : b->steps) b->calls.push_back({step.statement, step.params});
  b->commit = b->calls.size();
  b->calls.push_back({&kCommit, &b->none});
}

Status PostgresStore::Commit(const std::vector<Record>& batch) {
  if (batch.empty()) return Status::Ok();
  Status s = Check(batch);
  if (!s.ok()) return s;
  Batch b;
  Lay(batch, false, &b);
  return RunLaid(batch, &b);
}

Status PostgresStore::RunLaid(const std::vector<Record>& batch, Batch* b) {
  bool exact = false;
  Status s = RunBatch(batch, b, &exact);
  if (s.ok() || !exact) return s;
  Lay(batch, true, b);
  return RunBatch(batch, b, &exact);
}

Status PostgresStore::StartCommit(const std::vector<Record>& batch) {
  pending_.reset();
  finished_.reset();
  Status s = batch.empty() ? Status::Ok() : Check(batch);
  if (!s.ok()) return s;
  pending_ = std::make_unique<Batch>();
  Lay(batch, false, pending_.get());
  if (batch.empty() || pending_->calls.size() > PgConn::kMaxStarted) {
    // Nothing to send, or more than one round trip's worth: done here.
    finished_ = batch.empty() ? Status::Ok() : RunLaid(batch, pending_.get());
    return Status::Ok();
  }
  s = conn_->StartPipeline(pending_->calls);
  if (!s.ok()) {
    // Sending failed, so the COMMIT, last, never ran: nothing was written.
    pending_.reset();
    return conn_->broken() ? Status::Unavailable(s.message() + "; nothing of the batch was written") : s;
  }
  return Status::Ok();
}

Status PostgresStore::FinishCommit(const std::vector<Record>& batch, bool* done) {
  *done = true;
  if (finished_) {
    Status s = *finished_;
    finished_.reset();
    pending_.reset();
    return s;
  }
  if (!pending_) return Status::FailedPrecondition("no commit was started");
  size_t failed = 0;
  Status s = conn_->PollPipeline(done, &failed);
  if (!*done) return Status::Ok();
  bool exact = false;
  s = Outcome(batch, *pending_, s, failed, &exact);
  if (exact) {
    Lay(batch, true, pending_.get());
    s = RunBatch(batch, pending_.get(), &exact);
  }
  pending_.reset();
  return s;
}

int PostgresStore::fd() const { return conn_ ? conn_->fd() : -1; }

PostgresStore::Step PostgresStore::SingleStep(const schema::Op& op) {
  const int i = static_cast<int>(op.which);
  return {op.missing.empty() ? &StatementName(i) : &CheckedName(i), &op.params, &op};
}

Status PostgresStore::RunBatch(const std::vector<Record>& batch, Batch* b, bool* exact) {
  *exact = false;
  Status s = Ready();
  if (!s.ok()) return s;
  size_t failed = 0;
  s = conn_->Pipeline(b->calls, &failed);
  return s.ok() ? s : Outcome(batch, *b, s, failed, exact);
}

Status PostgresStore::Outcome(const std::vector<Record>& batch, const Batch& b, Status s, size_t failed,
                              bool* exact) {
  *exact = false;
  if (s.ok()) return s;
  if (failed == b.calls.size()) {
    // The connection broke before the answers: the COMMIT may or may not
    // have landed. The batch goes again (the caller retries Unavailable);
    // had it landed, the retry's records are refused as ones already stored
    // (an attempt started twice, a step ended twice, a submission reused),
    // which stops the daemon, and a restart reads what the database holds.
    // Only cancel requests, whose rows carry no key of their own, would be
    // stored twice; a duplicate request changes nothing.
    return Status::Unavailable(s.message() + "; whether the batch was written is unknown: it goes again, and is "
                               "refused should it have landed");
  }
  const bool no_row = conn_->sqlstate() == kNoRowChanged;
  if (epoch_ && failed == b.first - 1 && no_row) {
    Rollback(Status::Ok()).IgnoreError();
    deposed_ = true;
    return Deposed("committing");
  }
  if (failed >= b.first && failed < b.commit) {
    const Step& step = b.steps[failed - b.first];
    if (step.op == nullptr) {
      *exact = !conn_->broken();
      Rollback(Status::Ok()).IgnoreError();
      return s;
    }
    s = schema::RecordError(batch, step.op->record, no_row ? Status::FailedPrecondition(step.op->missing) : s);
  }
  // Any failure before the COMMIT aborted the transaction, and the COMMIT
  // with it; one of the COMMIT itself ended it.
  return failed == b.commit ? Status::FromCode(s.code(), s.message() + "; nothing of the batch was written")
                            : Rollback(s);
}

Status PostgresStore::Rollback(Status cause) {
  if (cause.ok()) {
    if (conn_ && !conn_->broken()) conn_->Exec("ROLLBACK", "rolling back").IgnoreError();
    return cause;
  }
  std::string message = cause.message() + "; nothing of the batch was written";
  if (conn_ && !conn_->broken()) {
    Status s = conn_->Exec("ROLLBACK", "rolling back");
    if (!s.ok()) message += " (but the rollback failed too: " + s.message() + ")";
  }
  return Status::FromCode(cause.code(), std::move(message));
}

Status PostgresStore::Load(LoadedState* out) {
  Status s = Ready();
  if (!s.ok()) return s;
  // No snapshot transaction: once a campaign is won nobody else can write
  // (a former leader's commit is fenced, and one under way held the row's
  // lock the campaign waited for), and the lease is renewed between the
  // tables, which a transaction would hide from the standbys until the end:
  // a load longer than the lease must not hand the leadership over.
  Rows rows(this);
  return schema::LoadState(&rows, out);
}

Status PostgresStore::LoadGroup(uint64_t submission, LoadedGroup* out) {
  Status s = Ready();
  if (!s.ok()) return s;
  // As Load: only this process writes, and not while it reads.
  Rows rows(this, /*renew=*/false);
  return schema::LoadOneGroup(&rows, submission, out);
}

Status PostgresStore::LoadOutput(uint64_t submission, uint32_t step, uint32_t attempt, std::string* stdout_tail,
                                 std::string* stderr_tail) {
  const std::string what = "attempt " + std::to_string(attempt) + " of step " + std::to_string(step) +
                           " of submission " + std::to_string(submission);
  if (submission > kMaxStoredUnsigned) return Status::NotFound("no stored " + what);
  Status s = Ready();
  if (!s.ok()) return s;
  const std::vector<Param> params = {Param::Int(static_cast<int64_t>(submission)), Param::Int(step),
                                     Param::Int(attempt)};
  bool found = false;
  s = conn_->ForEachRow({&StatementName(static_cast<int>(Dml::kLoadOutput)), &params},
                        "reading the output of " + what, [&](const PgResult& r) {
                          *stdout_tail = r.Bytes(0, 0);
                          *stderr_tail = r.Bytes(0, 1);
                          found = true;
                          return Status::Ok();
                        });
  if (s.ok() && !found) return Status::NotFound("no stored ended " + what);
  return s;
}

}  // namespace cohort::coordinator
