// SqliteStore: a batch's plan run statement by statement, and the load
// statements' rows handed to the shared loader.
#include <sqlite3.h>

#include "coordinator/sqlite_store.h"
#include "coordinator/store_loader.h"
#include "coordinator/store_plan.h"

namespace cohort::coordinator {

using common::Status;
using schema::Dml;
using schema::Param;

namespace {

class StatementRow : public schema::Row {
 public:
  explicit StatementRow(const Statement& st) : st_(st) {}
  bool IsNull(int column) const override { return st_.IsNull(column); }
  int64_t Int(int column) const override { return st_.Int(column); }
  std::string Text(int column) const override { return st_.Text(column); }
  std::string Bytes(int column) const override { return st_.Bytes(column); }

 private:
  const Statement& st_;
};

}  // namespace

class SqliteStore::Rows : public schema::RowSource {
 public:
  explicit Rows(SqliteStore* store) : store_(store) {}

  Status ForEachRow(Dml which, uint64_t submission, const std::function<Status(const schema::Row&)>& fn) override {
    Statement& st = store_->Sql(which);
    st.BindInt(1, static_cast<int64_t>(submission));
    Status s;
    int rc = SQLITE_DONE;
    while (s.ok() && (rc = st.Step()) == SQLITE_ROW) s = fn(StatementRow(st));
    if (s.ok() && rc != SQLITE_DONE) s = store_->db_->Error(rc, "loading the state");
    st.Reset();
    return s;
  }

  std::string where() const override { return store_->db_->path(); }

 private:
  SqliteStore* store_;
};

Status SqliteStore::Run(const schema::Op& op) {
  Statement& st = Sql(op.which);
  for (size_t i = 0; i < op.params.size(); ++i) {
    const Param& p = op.params[i];
    const int n = static_cast<int>(i) + 1;
    switch (p.kind) {
      case Param::Kind::kNull: st.BindNull(n); break;
      case Param::Kind::kInt: st.BindInt(n, p.integer); break;
      case Param::Kind::kText: st.BindText(n, p.text); break;
      case Param::Kind::kBytes: st.BindBytes(n, p.text); break;
    }
  }
  Status s = db_->Run(&st, "writing");
  if (s.ok() && !op.missing.empty() && db_->Changes() == 0) return Status::FailedPrecondition(op.missing);
  return s;
}

Status SqliteStore::Load(LoadedState* out) {
  Rows rows(this);
  return schema::LoadState(&rows, out);
}

Status SqliteStore::LoadGroup(uint64_t submission, LoadedGroup* out) {
  Rows rows(this);
  return schema::LoadOneGroup(&rows, submission, out);
}

Status SqliteStore::LoadOutput(uint64_t submission, uint32_t step, uint32_t attempt, std::string* stdout_tail,
                               std::string* stderr_tail) {
  const std::string what = "attempt " + std::to_string(attempt) + " of step " + std::to_string(step) +
                           " of submission " + std::to_string(submission);
  if (submission > kMaxStoredUnsigned) return Status::NotFound("no stored " + what);
  Statement& st = Sql(Dml::kLoadOutput);
  st.BindInt(1, static_cast<int64_t>(submission));
  st.BindInt(2, step);
  st.BindInt(3, attempt);
  const int rc = st.Step();
  Status s;
  if (rc == SQLITE_ROW) {
    *stdout_tail = st.Bytes(0);
    *stderr_tail = st.Bytes(1);
  } else if (rc == SQLITE_DONE) {
    s = Status::NotFound("no stored ended " + what);
  } else {
    s = db_->Error(rc, "reading the output of " + what);
  }
  st.Reset();
  return s;
}

}  // namespace cohort::coordinator
