// PgConn is one libpq connection to PostgreSQL, and PgResult one result on
// it: thin owners of the C handles that turn libpq's outcomes into
// common::Status values naming the database and what to do (a server that
// cannot be reached, a full disk, a constraint a row broke). They know
// nothing of cohort's records; PostgresStore builds on them.
//
// Statements are prepared once per connection by name and run with their
// parameters as text (integers, text) or binary (bytes); results come back
// binary, so bytes need no unescaping and integers no parsing. A pipeline
// sends many prepared statements in one round trip.
//
// Status codes: Unavailable when the server cannot be reached or the
// connection broke (the caller reconnects and retries), or the server is
// out of resources (disk full, too many connections); FailedPrecondition
// for an integrity constraint a write broke; Corruption for data the server
// calls corrupt; IoError otherwise.
//
// Thread contract: not thread-safe; one thread owns a connection and its
// results.
#ifndef COHORT_COORDINATOR_PG_CONN_H_
#define COHORT_COORDINATOR_PG_CONN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "coordinator/store_plan.h"

struct pg_conn;
struct pg_result;

namespace cohort::coordinator {

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* r) : r_(r) {}
  ~PgResult();
  PgResult(PgResult&& other) noexcept : r_(other.r_) { other.r_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  pg_result* get() const { return r_; }
  int rows() const;
  bool IsNull(int row, int column) const;
  // A binary integer column (BIGINT, INTEGER or SMALLINT); 0 when NULL.
  int64_t Int(int row, int column) const;
  // A binary text or bytea column, as its bytes; "" when NULL.
  std::string Bytes(int row, int column) const;
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t Changes() const;

 private:
  pg_result* r_ = nullptr;
};

class PgConn {
 public:
  // Connects with a libpq connection string (or postgresql:// URI). A
  // password comes from the environment (PGPASSWORD) or PGPASSFILE, as
  // libpq reads them. `name` is what messages call the database.
  static common::Status Connect(const std::string& conninfo, std::unique_ptr<PgConn>* out);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // "database cohort on /tmp/pg:5432": where this connection goes, for messages.
  const std::string& name() const { return name_; }
  bool broken() const;

  // Runs one statement without parameters; its rows, if any, are dropped.
  common::Status Exec(std::string_view sql, std::string_view doing);
  // Runs one statement with text parameters ("" stands for NULL only when
  // `nulls` says so) and returns its result.
  common::Status Query(std::string_view sql, const std::vector<std::string>& params, std::string_view doing,
                       PgResult* out);
  // Prepares `sql` as statement `name`; *params is how many parameters it takes.
  common::Status Prepare(const std::string& name, std::string_view sql, int* params);

  // A prepared statement's run in a pipeline or a row-by-row read.
  struct Call {
    const std::string* statement;  // a prepared name
    const std::vector<schema::Param>* params;
  };
  // Sends every call in one pipeline, in one round trip (or a few, for a
  // long one). On the first failure the server skips the calls after it;
  // *failed is then its index, or calls.size() when the connection broke
  // before that call's answer came (whether the calls after the last answer
  // ran is then unknown), and sqlstate() its SQLSTATE.
  common::Status Pipeline(const std::vector<Call>& calls, size_t* failed);
  // The same in two halves, for a caller that goes on with other work:
  // StartPipeline sends at most kMaxStarted calls and one sync (waiting only
  // while the socket is full); PollPipeline reads what has arrived, never
  // waiting, until *done, and then returns Pipeline's outcome. Between the
  // two the connection takes nothing else.
  static constexpr size_t kMaxStarted = 256;
  common::Status StartPipeline(const std::vector<Call>& calls);
  common::Status PollPipeline(bool* done, size_t* failed);
  // The socket, to poll for the answers of a started pipeline.
  int fd() const;
  // Reads what the server sent meanwhile (a shutdown notice to an idle
  // connection), so broken() is true of now.
  void Poll();
  // The SQLSTATE of the last error, "" when it had none (a broken connection).
  const std::string& sqlstate() const { return sqlstate_; }
  // Runs one prepared statement and calls fn(result, row) row by row
  // (libpq's single-row mode), so a large result is never held whole.
  template <typename Fn>
  common::Status ForEachRow(const Call& call, std::string_view doing, Fn fn);

  // The Status for a failed result (or the connection's error when null).
  common::Status Error(const pg_result* r, std::string_view doing) const;

 private:
  PgConn(pg_conn* conn, std::string name) : conn_(conn), name_(std::move(name)) {}
  common::Status Send(const Call& call);
  common::Status StartRows(const Call& call, std::string_view doing);
  // The next single-row result; false at the end (or on an error in *status).
  bool NextRow(std::string_view doing, PgResult* row, common::Status* status);

  pg_conn* conn_;
  std::string name_;
  std::vector<std::string> scratch_;  // parameters repaired for the server's text rules
  mutable std::string sqlstate_;
  // A started pipeline: how many calls, the one whose answers come next,
  // and the first failure so far.
  size_t started_ = 0;
  size_t next_ = 0;
  size_t first_failed_ = 0;
  common::Status started_status_;
};

template <typename Fn>
common::Status PgConn::ForEachRow(const Call& call, std::string_view doing, Fn fn) {
  common::Status s = StartRows(call, doing);
  if (!s.ok()) return s;
  PgResult row;
  common::Status failed;
  while (NextRow(doing, &row, &s)) {
    // After fn fails the remaining rows are still read, so the connection
    // is ready for the next statement.
    if (failed.ok()) failed = fn(row);
  }
  return failed.ok() ? s : failed;
}

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_PG_CONN_H_
