#include "coordinator/pg_conn.h"

#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>

#include <cstring>

#include "common/utf8.h"

namespace cohort::coordinator {

using common::Status;

namespace {

// What the server calls an SQLSTATE class, mapped to what the caller can do.
Status::Code CodeOf(const char* sqlstate) {
  const std::string_view state = sqlstate ? sqlstate : "";
  if (state.size() != 5) return Status::Code::kUnavailable;  // no server answer: the connection
  const std::string_view cls = state.substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "40" || state.substr(0, 4) == "57P0") return Status::Code::kUnavailable;
  if (cls == "23") return Status::Code::kFailedPrecondition;
  if (state == "XX001" || state == "XX002") return Status::Code::kCorruption;
  return Status::Code::kIoError;
}

std::string Trimmed(const char* message) {
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m.empty() ? "no answer from the server" : m;
}

// PostgreSQL text is valid UTF-8 without NUL: a string that is not is sent
// repaired, one byte for one, as the wire codec repairs free text.
std::string_view ServerText(std::string_view s, std::string* storage) {
  if (common::FirstInvalidUtf8(s) == std::string_view::npos && s.find('\0') == std::string_view::npos) return s;
  storage->assign(s);
  common::RepairUtf8InPlace(storage);
  for (char& c : *storage) {
    if (c == '\0') c = '?';
  }
  return *storage;
}

}  // namespace

// ---- PgResult ------------------------------------------------------------------------

PgResult::~PgResult() { PQclear(r_); }

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    PQclear(r_);
    r_ = other.r_;
    other.r_ = nullptr;
  }
  return *this;
}

int PgResult::rows() const { return r_ ? PQntuples(r_) : 0; }

bool PgResult::IsNull(int row, int column) const { return PQgetisnull(r_, row, column) != 0; }

int64_t PgResult::Int(int row, int column) const {
  if (IsNull(row, column)) return 0;
  const char* v = PQgetvalue(r_, row, column);
  switch (PQgetlength(r_, row, column)) {
    case 8: {
      uint64_t x;
      std::memcpy(&x, v, 8);
      return static_cast<int64_t>(be64toh(x));
    }
    case 4: {
      uint32_t x;
      std::memcpy(&x, v, 4);
      return static_cast<int32_t>(be32toh(x));
    }
    case 2: {
      uint16_t x;
      std::memcpy(&x, v, 2);
      return static_cast<int16_t>(be16toh(x));
    }
    default:
      return 0;
  }
}

std::string PgResult::Bytes(int row, int column) const {
  if (IsNull(row, column)) return "";
  return std::string(PQgetvalue(r_, row, column), PQgetlength(r_, row, column));
}

int64_t PgResult::Changes() const {
  const char* n = PQcmdTuples(r_);
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

// ---- PgConn --------------------------------------------------------------------------

Status PgConn::Connect(const std::string& conninfo, std::unique_ptr<PgConn>* out) {
  // Earlier keywords are defaults the connection string may override; the
  // timeouts bound how long a lost network can hold the event loop.
  const char* keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "tcp_user_timeout", "application_name", "client_encoding", "dbname", nullptr};
  const char* values[] = {"5", "5", "2", "3", "10000", "cohort-coordinator", "UTF8", conninfo.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Status::Unavailable("PostgreSQL: out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s = Status::Unavailable("cannot connect to PostgreSQL (" + Trimmed(PQerrorMessage(conn)) +
                                   "); check --store's connection string and that the server runs");
    PQfinish(conn);
    return s;
  }
  // Notices ("relation already exists, skipping") are the server talking
  // to itself about statements written to be repeatable; libpq would print
  // them on stderr, in the middle of the log.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  std::string where = std::string("database ") + PQdb(conn) + " on " + PQhost(conn) + ":" + PQport(conn);
  out->reset(new PgConn(conn, std::move(where)));
  return Status::Ok();
}

PgConn::~PgConn() { PQfinish(conn_); }

bool PgConn::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

Status PgConn::Error(const pg_result* r, std::string_view doing) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (r != nullptr) sqlstate_ = state ? state : "";
  const std::string message = Trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
  Status::Code code = broken() ? Status::Code::kUnavailable : CodeOf(state);
  return Status::FromCode(code, "PostgreSQL " + name_ + ": " + std::string(doing) + ": " + message);
}

Status PgConn::Exec(std::string_view sql, std::string_view doing) {
  PgResult r(PQexecParams(conn_, std::string(sql).c_str(), 0, nullptr, nullptr, nullptr, nullptr, 1));
  const auto status = PQresultStatus(r.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Status::Ok();
  return Error(r.get(), doing);
}

Status PgConn::Query(std::string_view sql, const std::vector<std::string>& params, std::string_view doing,
                     PgResult* out) {
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  PgResult r(PQexecParams(conn_, std::string(sql).c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                          nullptr, nullptr, 1));
  const auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error(r.get(), doing);
  *out = std::move(r);
  return Status::Ok();
}

Status PgConn::Prepare(const std::string& name, std::string_view sql, int* params) {
  const std::string doing = "preparing " + std::string(sql.substr(0, 60));
  PgResult r(PQprepare(conn_, name.c_str(), std::string(sql).c_str(), 0, nullptr));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return Error(r.get(), doing);
  PgResult d(PQdescribePrepared(conn_, name.c_str()));
  if (PQresultStatus(d.get()) != PGRES_COMMAND_OK) return Error(d.get(), doing);
  *params = PQnparams(d.get());
  return Status::Ok();
}

Status PgConn::Send(const Call& call) {
  const size_t n = call.params->size();
  std::vector<const char*> values(n);
  std::vector<int> lengths(n), formats(n);
  std::vector<std::string> numbers(n);
  scratch_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const schema::Param& p = (*call.params)[i];
    switch (p.kind) {
      case schema::Param::Kind::kNull:
        values[i] = nullptr;
        break;
      case schema::Param::Kind::kInt:
        numbers[i] = std::to_string(p.integer);
        values[i] = numbers[i].c_str();
        break;
      case schema::Param::Kind::kText: {
        // Text goes in text format, which ends at its NUL: hence a copy.
        numbers[i] = std::string(ServerText(p.text, &scratch_[i]));
        values[i] = numbers[i].c_str();
        break;
      }
      case schema::Param::Kind::kBytes:
        values[i] = p.text.data();
        lengths[i] = static_cast<int>(p.text.size());
        formats[i] = 1;
        break;
    }
  }
  const int ok = PQsendQueryPrepared(conn_, call.statement->c_str(), static_cast<int>(n), values.data(),
                                     lengths.data(), formats.data(), 1);
  return ok ? Status::Ok() : Error(nullptr, "sending a statement");
}

void PgConn::Poll() {
  // A server that shut down sent an error and then closed: the error is one
  // read, the close another. Read while the socket has something, so that a
  // closed connection shows in broken(); what the server said is dropped.
  for (int reads = 0; reads < 8 && !broken(); ++reads) {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !PQconsumeInput(conn_)) break;
    while (PQisBusy(conn_) == 0) {
      PgResult r(PQgetResult(conn_));
      if (r.get() == nullptr) break;
    }
  }
}

Status PgConn::Pipeline(const std::vector<Call>& calls, size_t* failed) {
  *failed = calls.size();
  // In pieces of kMaxStarted calls: the server's answers to one piece (a few
  // dozen bytes each) always fit the socket buffers, so a blocking send can
  // never wait on a server that waits on us to read. A piece that fails
  // stops the rest; its transaction is aborted.
  for (size_t begin = 0; begin < calls.size(); begin += kMaxStarted) {
    const std::vector<Call> piece(calls.begin() + static_cast<long>(begin),
                                  calls.begin() + static_cast<long>(std::min(calls.size(), begin + kMaxStarted)));
    Status s = StartPipeline(piece);
    size_t at = piece.size();
    for (bool done = !s.ok(); !done;) {
      pollfd p{fd(), POLLIN, 0};
      ::poll(&p, 1, -1);
      s = PollPipeline(&done, &at);
    }
    if (!s.ok()) {
      if (at < piece.size()) *failed = begin + at;  // else unknown: calls.size()
      return s;
    }
  }
  return Status::Ok();
}

int PgConn::fd() const { return PQsocket(conn_); }

Status PgConn::StartPipeline(const std::vector<Call>& calls) {
  sqlstate_.clear();
  started_ = calls.size();
  next_ = 0;
  first_failed_ = calls.size();
  started_status_ = Status::Ok();
  if (calls.size() > kMaxStarted) return Status::InvalidArgument("a started pipeline takes at most 256 calls");
  if (!PQenterPipelineMode(conn_)) return Error(nullptr, "entering pipeline mode");
  for (const Call& call : calls) {
    Status s = Send(call);
    if (!s.ok()) return s;
  }
  if (!PQpipelineSync(conn_)) return Error(nullptr, "sending a batch");
  return Status::Ok();
}

Status PgConn::PollPipeline(bool* done, size_t* failed) {
  *done = false;
  *failed = started_;
  if (!PQconsumeInput(conn_)) {
    *done = true;
    Status s = Error(nullptr, "reading a batch's answers");
    PQexitPipelineMode(conn_);
    *failed = first_failed_ < started_ ? first_failed_ : started_;
    return started_status_.ok() ? s : started_status_;
  }
  while (!PQisBusy(conn_)) {
    PgResult r(PQgetResult(conn_));
    if (next_ < started_) {
      if (r.get() == nullptr) {
        ++next_;  // the end of this call's answers
        continue;
      }
      const auto status = PQresultStatus(r.get());
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_PIPELINE_ABORTED &&
          started_status_.ok()) {
        started_status_ = Error(r.get(), "writing");
        first_failed_ = sqlstate_.empty() ? started_ : next_;  // as in Pipeline
      }
      continue;
    }
    // Every call answered: the sync ends the pipeline.
    *done = true;
    if (PQresultStatus(r.get()) != PGRES_PIPELINE_SYNC && started_status_.ok()) {
      started_status_ = Error(r.get(), "ending a batch");
      first_failed_ = started_;
    }
    if (!PQexitPipelineMode(conn_) && started_status_.ok()) started_status_ = Error(nullptr, "leaving pipeline mode");
    *failed = first_failed_;
    return started_status_;
  }
  return Status::Ok();
}

Status PgConn::StartRows(const Call& call, std::string_view doing) {
  Status s = Send(call);
  if (s.ok() && !PQsetSingleRowMode(conn_)) s = Error(nullptr, doing);
  return s;
}

bool PgConn::NextRow(std::string_view doing, PgResult* row, Status* status) {
  for (;;) {
    PgResult r(PQgetResult(conn_));
    if (r.get() == nullptr) return false;
    switch (PQresultStatus(r.get())) {
      case PGRES_SINGLE_TUPLE:
        *row = std::move(r);
        return true;
      case PGRES_TUPLES_OK:
      case PGRES_COMMAND_OK:
        break;  // the end of the rows; a NULL follows
      default:
        if (status->ok()) *status = Error(r.get(), doing);
        break;
    }
  }
}

}  // namespace cohort::coordinator
